"""The TMDB movies, the two query sets and the catalogues of ``search_quality.py``.

* Keyword queries: TMDB keywords carried by 15 to 150 movies, minus production
  notes no text can reveal, every 4th by frequency; relevant: the movies
  carrying the keyword.
* Descriptive queries: ``data/descriptive_queries.json``, natural-language
  descriptions written before any result was seen; relevant: the movies
  carrying any of the query's keywords. No query may name a genre or one of its
  own keywords (checked here).

Every query keyword is *held out*: removed from every movie's tags before
import, so no figure is a keyword finding itself. Splits: queries at even
positions of each set are the development split, odd positions the test split.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.embeddings.lexical import tokenize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tmdb-movies-3000.csv"
DESCRIPTIVE = Path(__file__).resolve().parent / "data" / "descriptive_queries.json"
#: Production notes among TMDB keywords: no title or overview can reveal them.
META_KEYWORDS = {
    "aftercreditsstinger",
    "duringcreditsstinger",
    "3d",
    "sequel",
    "remake",
    "independent film",
    "woman director",
    "imax",
}
SPLITS = ("dev", "test")


@dataclass(frozen=True)
class Query:
    text: str
    keywords: frozenset[str]
    split: str  # dev | test


def read_movies(path: Path, limit: int | None) -> list[dict[str, Any]]:
    def names(raw: str) -> list[str]:
        return [item["name"] for item in json.loads(raw or "[]")]

    movies = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            movies.append(
                {
                    "external_id": f"tmdb:{row['id']}",
                    "title": row["title"],
                    "overview": row["overview"],
                    "genres": names(row["genres"]),
                    "keywords": names(row["keywords"]),
                    "year": row["release_date"][:4],
                    "runtime": row["runtime"],
                }
            )
    return movies[:limit] if limit else movies


def keyword_queries(movies: list[dict[str, Any]], every: int = 4) -> list[Query]:
    frequency = Counter(k for movie in movies for k in set(movie["keywords"]))
    eligible = sorted(
        (k for k, n in frequency.items() if 15 <= n <= 150 and k not in META_KEYWORDS),
        key=lambda k: (-frequency[k], k),
    )
    chosen = eligible[::every]
    return [Query(k, frozenset({k}), SPLITS[i % 2]) for i, k in enumerate(chosen)]


def descriptive_queries(movies: list[dict[str, Any]], path: Path = DESCRIPTIVE) -> list[Query]:
    """The descriptive set; refuses a query that names a genre or one of its keywords."""
    genres = {g for movie in movies for g in movie["genres"]}
    queries = []
    for i, entry in enumerate(json.loads(path.read_text(encoding="utf-8"))["queries"]):
        words = tokenize(entry["query"])
        for name in [*sorted(genres), *entry["relevant_keywords"]]:
            if _contains(words, tokenize(name)):
                raise SystemExit(f"descriptive query {entry['query']!r} names {name!r}")
        queries.append(Query(entry["query"], frozenset(entry["relevant_keywords"]), SPLITS[i % 2]))
    return queries


def _contains(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return bool(n) and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def relevant(query: Query, movies: list[dict[str, Any]], ids: dict[str, int]) -> set[int]:
    return {ids[m["external_id"]] for m in movies if query.keywords & set(m["keywords"])}


def write_catalogue(
    movies: list[dict[str, Any]], held_out: set[str], path: Path, *, genres: bool = True
) -> None:
    """The catalogue to import: keywords as tags minus ``held_out``; genres or none."""
    columns = ["external_id", "title", "description", "genres", "tags", "year", "runtime"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for movie in movies:
            writer.writerow(
                {
                    "external_id": movie["external_id"],
                    "title": movie["title"],
                    "description": movie["overview"],
                    "genres": json.dumps(movie["genres"] if genres else []),
                    "tags": json.dumps([k for k in movie["keywords"] if k not in held_out]),
                    "year": movie["year"],
                    "runtime": movie["runtime"],
                }
            )
