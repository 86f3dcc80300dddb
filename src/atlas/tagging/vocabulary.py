"""The tag vocabulary: the genres and topics the zero-shot source knows.

A default vocabulary ships with Atlas (``default_vocabulary.txt``: general genres
and topics, not tied to any one catalogue). The setting ``tagging.vocabulary_file``
replaces it with the user's own list, a UTF-8 text file with one tag per line::

    # comments and blank lines are ignored
    genre: Science Fiction: space, aliens, the future, advanced technology
    topic: Cooking: recipes, chefs, kitchens, baking
    Travel

``[KIND:] NAME [: DESCRIPTION]``: KIND is ``genre`` or ``topic`` (no kind means
``topic``); the DESCRIPTION, a few words of what the tag is about, is what the
zero-shot source compares an item's text with (together with the name). A name
cannot contain a colon. A line that cannot be read is refused with its number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from atlas.caches import CACHES
from atlas.config import TaggingSettings
from atlas.errors import InvalidInput, NotFound
from atlas.media.tags import clean_tag, normalise_tag

__all__ = [
    "DEFAULT_VOCABULARY",
    "VOCABULARY_KINDS",
    "Vocabulary",
    "VocabularyEntry",
    "load_vocabulary",
    "parse_vocabulary",
]

DEFAULT_VOCABULARY = "default_vocabulary.txt"
VOCABULARY_KINDS = ("genre", "topic")
_MAX_ENTRIES = 2000


@dataclass(frozen=True)
class VocabularyEntry:
    name: str
    kind: str = "topic"
    description: str = ""

    @property
    def norm(self) -> str:
        return normalise_tag(self.name)

    @property
    def label(self) -> str:
        """The text the zero-shot source embeds: ``Name: description``."""
        return f"{self.name}: {self.description}" if self.description else self.name


@dataclass(frozen=True)
class Vocabulary:
    entries: tuple[VocabularyEntry, ...]
    #: Where it came from: ``default`` or the file's path.
    origin: str
    #: SHA-256 of the entries: part of every item's tagging input hash.
    digest: str

    def get(self, norm: str) -> VocabularyEntry | None:
        return self._index().get(norm)

    def kinds(self) -> dict[str, str]:
        """Each entry's kind by its normalised name (what a tag typed by hand is stored as)."""
        return {norm: entry.kind for norm, entry in self._index().items()}

    def __contains__(self, norm: object) -> bool:
        return norm in self._index()

    def __len__(self) -> int:
        return len(self.entries)

    def _index(self) -> dict[str, VocabularyEntry]:
        index: dict[str, VocabularyEntry] | None = self.__dict__.get("_by_norm")
        if index is None:
            index = {entry.norm: entry for entry in self.entries}
            object.__setattr__(self, "_by_norm", index)
        return index


def parse_vocabulary(text: str, origin: str) -> Vocabulary:
    """Read a vocabulary; raises ``InvalidInput`` naming the first bad line."""
    entries: list[VocabularyEntry] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{origin}, line {number}"
        kind = "topic"
        head, sep, rest = line.partition(":")
        if sep and head.strip().lower() in VOCABULARY_KINDS:
            kind, line = head.strip().lower(), rest.strip()
        elif sep and head.strip().lower() == "keyword":
            raise InvalidInput(f"{where}: the kind must be genre or topic, not keyword")
        name, _, description = line.partition(":")
        try:
            name = clean_tag(name)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}") from None
        norm = normalise_tag(name)
        if norm in seen:
            raise InvalidInput(f"{where}: {name!r} is already on line {seen[norm]}")
        seen[norm] = number
        entries.append(VocabularyEntry(name, kind, " ".join(description.split())))
    if not entries:
        raise InvalidInput(f"{origin}: the vocabulary has no tags")
    if len(entries) > _MAX_ENTRIES:
        raise InvalidInput(f"{origin}: {len(entries)} tags; the limit is {_MAX_ENTRIES}")
    digest = hashlib.sha256(
        "\n".join(f"{e.kind}|{e.name}|{e.description}" for e in entries).encode()
    ).hexdigest()
    return Vocabulary(tuple(entries), origin, digest)


def load_vocabulary(settings: TaggingSettings) -> Vocabulary:
    """The configured vocabulary (cached per file and modification time).

    Raises ``NotFound`` for a ``tagging.vocabulary_file`` that does not exist and
    ``InvalidInput`` for one that cannot be read.
    """
    path = settings.vocabulary_file
    if path is None:
        key: tuple[str, float | None] = ("default", None)
    else:
        path = Path(path).expanduser()
        try:
            key = (str(path.resolve()), path.stat().st_mtime)
        except OSError:
            raise NotFound(
                f"the tag vocabulary {path} does not exist; fix or unset tagging.vocabulary_file"
            ) from None
    return CACHES.vocabularies.get(key, lambda: _read_vocabulary(path))


def _read_vocabulary(path: Path | None) -> Vocabulary:
    if path is None:
        text = resources.files("atlas.tagging").joinpath(DEFAULT_VOCABULARY).read_text("utf-8")
        return parse_vocabulary(text, "the default vocabulary")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(
            f"the tag vocabulary {path} cannot be read ({reason}); check tagging.vocabulary_file"
        ) from None
    return parse_vocabulary(text, str(path))
