"""The content words of an item's texts (title, description, transcript), stored with it.

A learned rule can be conditioned on a word ("items whose text mentions 'heist'"),
so mining counts the words of every reviewed item and rules test them. Splitting
the texts into words is the costliest part of reading an item's context, so the
words are kept in ``media.words`` (space-separated, in text order) beside
``media.words_key``, a hash of the texts they were made from and of this
tokeniser. A reader uses the stored words only while the key matches the texts it
reads (:func:`words_of`), so words are never stale, only recomputed: writers call
:func:`refresh_words` after changing a text so that readers rarely have to.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, bindparam, select, update

from atlas.db.tables import media, transcripts

__all__ = [
    "MAX_WORDS",
    "WORD_FIELDS",
    "refresh_words",
    "stored_words",
    "text_words",
    "words_key",
    "words_of",
]

#: Words of an item's title, description and transcript that conditions can test:
#: the first this many distinct content words (title first).
MAX_WORDS = 64
#: The columns of ``media`` the words are made from (the transcript's text too).
WORD_FIELDS = frozenset({"title", "description"})
#: Only this much of each text is read.
_MAX_TEXT = 20_000
#: Changes whenever what :func:`text_words` returns for the same texts changes.
_VERSION = "1"
_VERSION_BYTES = _VERSION.encode()
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_STOPWORD_TEXT = """
about above after again against all also and any are around because been before being
below between both but can could did does doing down during each few for from further
had has have having her here hers herself him himself his how into its itself just more
most much must not now off once only other our ours out over own same she should some
such than that the their theirs them then there these they this those through too under
until upon very was were what when where which while who whom why will with would you
your yours yourself one two three who's it's he's she's they're when's can't don't won't
get gets got make makes made take takes took new year years life find finds must
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_CHUNK = 500


def text_words(*texts: str | None) -> frozenset[str]:
    """The first :data:`MAX_WORDS` distinct content words of the texts, normalised."""
    return frozenset(_words(texts))


def words_key(*texts: str | None) -> str:
    """What the words of these texts were made from: a hash of the texts read and the
    tokeniser's version."""
    parts = [_VERSION_BYTES]
    for text in texts:
        data = text[:_MAX_TEXT].encode("utf-8", "surrogatepass") if text else b""
        parts.append(len(data).to_bytes(8, "little"))  # no two splits of one text hash alike
        parts.append(data)
    # One update with the parts joined hashes as one update per part would.
    return hashlib.blake2b(b"".join(parts), digest_size=16).hexdigest()


def stored_words(stored: str | None, key: str | None, *texts: str | None) -> str:
    """:func:`words_of` as text: the words space-separated, in text order (the stored
    ones while their key matches the texts). Cheaper where the words are only counted."""
    if stored is not None and key is not None and key == words_key(*texts):
        return stored
    return " ".join(_words(texts))


def words_of(stored: str | None, key: str | None, *texts: str | None) -> frozenset[str]:
    """An item's words: the stored ones while their key matches its texts (title,
    description, transcript), else computed."""
    if stored is not None and key is not None and key == words_key(*texts):
        return frozenset(stored.split())
    return text_words(*texts)


def refresh_words(connection: Connection, media_ids: Iterable[int]) -> int:
    """Store the words of these items where the stored ones are missing or stale.

    Call it after changing an item's title, description or transcript, in the same
    transaction. Returns how many items got new words.
    """
    ids = sorted(set(media_ids))
    refreshed = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        texts: dict[int, str] = {
            media_id: text
            for media_id, text in connection.execute(
                select(transcripts.c.media_id, transcripts.c.text).where(
                    transcripts.c.media_id.in_(chunk)
                )
            )
        }
        rows = connection.execute(
            select(media.c.id, media.c.title, media.c.description, media.c.words_key).where(
                media.c.id.in_(chunk)
            )
        )
        changes = []
        for media_id, title, description, known in rows:
            key = words_key(title, description, texts.get(media_id))
            if key != known:
                words = " ".join(_words((title, description, texts.get(media_id))))
                changes.append({"item": media_id, "new_words": words, "new_key": key})
        if changes:
            connection.execute(
                update(media)
                .where(media.c.id == bindparam("item"))
                .values(words=bindparam("new_words"), words_key=bindparam("new_key")),
                changes,
            )
            refreshed += len(changes)
    return refreshed


def _words(texts: Sequence[str | None]) -> list[str]:
    joined = "\n".join(text[:_MAX_TEXT] for text in texts if text)
    # NFKC leaves ASCII as it is, and lower() is casefold() there.
    folded = (
        joined.lower() if joined.isascii() else unicodedata.normalize("NFKC", joined).casefold()
    )
    words = [w for w in dict.fromkeys(_WORD.findall(folded)) if len(w) > 2 and w not in _STOPWORDS]
    return words[:MAX_WORDS]
