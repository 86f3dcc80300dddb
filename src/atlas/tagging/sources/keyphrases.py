"""Keyphrase tags from an item's description and transcript, KeyBERT-style.

Candidates are runs of one or two words of the description and transcript
with no stopword among them (at most 40 per item: the most frequent, then the
earliest). Without a part-of-speech tagger, the forms of common verbs count as
stopwords, so that "a crew follows a comet" gives "crew" and "comet", not
"crew follows". Each is embedded with the configured model (phrases are cached per
process) and scored by its cosine similarity to the item's whole text; Maximal
Marginal Relevance then picks up to ``tagging.keyphrases`` of them that are
close to the text but not to each other (``0.6 * relevance - 0.4 * redundancy``).
A phrase is kept with a score of ``clip((similarity - 0.25) / 0.35, 0, 1)``, as
a ``keyword`` tag, or as evidence for a vocabulary tag of the same name.

Words keep their capitals only when the text never writes them in lower case
(names: "Mars", "Jupiter"); everything else is lower case.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from atlas.caches import CACHES
from atlas.config import Settings
from atlas.embeddings import embed_texts, get_provider
from atlas.media.tags import normalise_tag
from atlas.tagging.inputs import TagInput
from atlas.tagging.sources import Evidence, SourceResult
from atlas.tagging.vocabulary import Vocabulary

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = ["candidate_phrases", "keyphrases"]

MAX_CANDIDATES = 40
MAX_WORDS = 2
DIVERSITY = 0.4
FLOOR = 0.25
SPAN = 0.35
_TEXT_LIMIT = 20_000
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|[.!?;:,()\"“”]")
_BREAKS = frozenset('.!?;:,()"“”')
_STOPWORD_TEXT = """
a aboard about above across after again against ago all almost alone along already also although
amid amongst beneath despite inside outside past
always am among an and another any anyone anything are around as at away back be became
because become becomes been before began behind being below beside besides between beyond
both but by came can cannot could did do does doing done down during each either else
enough even ever every everyone everything far few finally find finds first for found from
further get gets getting give given gives go goes going gone got had has have having he
her here hers herself him himself his how however i if in inside into is it its itself
just last later least less like made make makes making many may me meanwhile might more
most much must my myself near nearly never new next no nobody none nor not nothing now of
off often on once one only onto or other others our ours out over own part per perhaps
put rather really same see seems several she should since so some someone something soon
still such take takes taken than that the their theirs them themselves then there these
they thing things this those though through throughout thus to together too toward
towards under until up upon us very via was way we well were what whatever when where
whether which while who whom whose why will with within without would yet you your yours
yourself two three four five six seven eight nine ten year years day days time times life
lives world man men woman women people story film movie must s t don won isn
"""
#: Verbs that plot summaries and talk use a lot (base forms; -s, -ed, -ing added).
_VERB_TEXT = """
accept achieve add agree allow appear arrive ask attempt avoid believe belong bring
call care carry cause change chase check choose claim climb collect come confront
consider contain continue convince count cover create cross decide defend deliver
depend describe destroy determine develop die discover drag embark encounter end
enjoy ensure enter escape establish expect experience explain explore face fail fall
feel fill finish fix follow forget form gather give grow guess handle happen hate hear
help hide hire hit hold hope hunt identify imagine include intend introduce investigate
invite involve join jump keep kill know last laugh learn leave let lie like listen live
look lose manage marry mean meet mention miss move need notice obtain occur offer open
own pass pay pick plan play prefer prepare prevent protect prove provide pull pursue
push reach read realise realize receive recognise recognize recruit refuse remain
remember remove repair replace rescue reveal revisit rise rob run save say search seek
seem sell send serve set settle share shoot show sit speak spend stand start stay steal
stop struggle suggest suppose survive take talk teach tell tend thank think threaten
throw touch transform travel treat try turn uncover understand unite use visit vow wait
wake walk want warn watch wear win wish wonder work worry write doubt fold lead launch land
build crash break drift fly float reach
"""
_IRREGULAR_TEXT = """
became began bought brought came caught chose did drew drove fell felt fled flew forgot
found gave got grew had heard held hid kept knew laid led left lost made meant met paid
ran rang rose said sang sat saw sent shot showed slept sold spent spoke stole stood
swore taught thought threw told took understood went woke won wore wrote done gone
known seen taken given written spoken stolen hidden driven fallen forgotten grown risen
"""


def _verb_forms(text: str) -> set[str]:
    forms = set()
    for base in text.split():
        stem = base[:-1] if base.endswith("e") else base
        third = base + "es" if base.endswith(("s", "sh", "ch", "x", "o")) else base + "s"
        if base.endswith("y") and base[-2:-1] not in "aeiou":
            third, past = base[:-1] + "ies", base[:-1] + "ied"
        else:
            past = base + "d" if base.endswith("e") else base + "ed"
        forms.update({base, third, past, stem + "ing"})
    return forms


_STOPWORDS = (
    frozenset(_STOPWORD_TEXT.split()) | _verb_forms(_VERB_TEXT) | set(_IRREGULAR_TEXT.split())
)


def candidate_phrases(text: str, limit: int = MAX_CANDIDATES) -> list[str]:
    """The candidate phrases of a text, most frequent then earliest first, as displayed."""
    # Possessives count as the word itself: "the comet's ice" speaks of the comet.
    tokens = [re.sub(r"['’]s$", "", t) for t in _WORD.findall(text[:_TEXT_LIMIT])]
    # A word is a name when the text capitalises it other than at a sentence's start
    # and never writes it in lower case.
    names = set()
    lower_seen = set()
    for before, token in zip([".", *tokens], tokens, strict=False):
        if token[:1].islower():
            lower_seen.add(token.lower())
        elif token[:1].isupper() and before not in (".", "!", "?"):
            names.add(token.lower())
    lower_seen |= {t.lower() for t in tokens if t[:1].isupper()} - names
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    shown: dict[str, str] = {}
    run: list[str] = []
    position = 0

    def flush() -> None:
        nonlocal position
        for size in range(1, MAX_WORDS + 1):
            for start in range(len(run) - size + 1):
                words = run[start : start + size]
                if not any(len(word) >= 4 for word in words):
                    continue
                display = " ".join(w.lower() if w.lower() in lower_seen else w for w in words)
                key = normalise_tag(display)
                counts[key] += 1
                if key not in first:
                    first[key] = position
                    shown[key] = display
                position += 1
        run.clear()

    for token in tokens:
        if token in _BREAKS or token.lower() in _STOPWORDS or len(token) < 2:
            flush()
        else:
            run.append(token)
    flush()
    ranked = sorted(counts, key=lambda key: (-counts[key], first[key]))
    return [shown[key] for key in ranked[:limit]]


def _phrase_vectors(settings: Settings, phrases: Sequence[str]) -> dict[str, Any]:
    model_id = get_provider(settings).model_id
    found: dict[str, Any] = {}
    cached = CACHES.phrase_vectors
    for phrase in phrases:
        vector = cached.lookup((model_id, phrase))
        if vector is not None:
            found[phrase] = vector
    missing = [phrase for phrase in dict.fromkeys(phrases) if phrase not in found]
    if missing:
        # One batch for all the phrases not seen yet: faster than one build per phrase.
        vectors = embed_texts(settings, missing)
        for phrase, vector in zip(missing, vectors, strict=True):
            cached.put((model_id, phrase), vector)
            found[phrase] = vector
    return found


def keyphrases(
    settings: Settings,
    vocabulary: Vocabulary,
    items: Sequence[TagInput],
    vectors: Vectors,
) -> dict[int, SourceResult]:
    """Keyphrase evidence for the items (rows of ``vectors`` in the same order)."""
    import numpy as np

    top = settings.tagging.keyphrases
    per_item: list[list[tuple[str, str]]] = []
    for item in items:
        found = []
        for where, text in (("description", item.description), ("transcript", item.transcript)):
            if text and top:
                found += [(phrase, where) for phrase in candidate_phrases(text)]
        seen: set[str] = set()
        unique = []
        for phrase, where in found:
            key = normalise_tag(phrase)
            if key not in seen:
                seen.add(key)
                unique.append((phrase, where))
        per_item.append(unique[: MAX_CANDIDATES * 2])
    phrase_vectors = _phrase_vectors(settings, [p for found in per_item for p, _ in found])

    results = {}
    for row, (item, found) in enumerate(zip(items, per_item, strict=True)):
        result = SourceResult("keyphrases")
        results[item.media_id] = result
        if not found:
            continue
        matrix = np.stack([phrase_vectors[phrase] for phrase, _ in found])
        relevance = matrix @ vectors[row]
        result.judged.update(normalise_tag(phrase) for phrase, _ in found)
        for index in _mmr(matrix, relevance, top):
            phrase, where = found[index]
            similarity = float(relevance[index])
            score = min(1.0, max(0.0, (similarity - FLOOR) / SPAN))
            if score <= 0:
                continue
            norm = normalise_tag(phrase)
            entry = vocabulary.get(norm)
            result.add(
                Evidence(
                    tag=entry.name if entry else phrase,
                    norm=norm,
                    kind=entry.kind if entry else "keyword",
                    score=score,
                    detail=f"keyphrase of the {where} ({similarity:.2f})",
                )
            )
    return results


def _mmr(matrix: Any, relevance: Any, top: int) -> list[int]:
    """Indices chosen by Maximal Marginal Relevance, best first."""
    chosen: list[int] = []
    left = list(range(len(relevance)))
    while left and len(chosen) < top:
        redundancy = (matrix[left] @ matrix[chosen].T).max(axis=1) if chosen else [0.0] * len(left)
        best = max(
            range(len(left)),
            key=lambda i: (1 - DIVERSITY) * relevance[left[i]] - DIVERSITY * redundancy[i],
        )
        chosen.append(left.pop(best))
    return chosen
