"""``atlas search-similar`` (also ``atlas-search-similar``) and ``atlas clusters``."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from atlas.cli._common import JSON_OPTION, console, emit_json, state
from atlas.embeddings import (
    ClusterReport,
    SearchHit,
    SearchResult,
)
from atlas.errors import InvalidInput


def search_similar(
    ctx: typer.Context,
    media: int | None = typer.Option(None, "--media", help="Find media like this media id."),
    query: str | None = typer.Option(None, "--query", "-q", help="Find media about this text."),
    top: int = typer.Option(10, "--top", help="How many results."),
    threshold: float | None = typer.Option(None, "--threshold", help="Minimum similarity, 0..1."),
    mode: str | None = typer.Option(
        None, "--mode", help="For --query: vector, lexical or hybrid (default hybrid)."
    ),
    media_type: str | None = typer.Option(None, "--type", help="Only video or audio (...)."),
    genre: str | None = typer.Option(None, "--genre", help="Only media of this genre."),
    cluster: bool = typer.Option(
        False, "--cluster", help="Group the results into clusters named by their tags."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Find media similar to an item (--media ID) or matching a text (--query TEXT)."""
    if (media is None) == (query is None):
        raise InvalidInput("give --media ID or --query TEXT (one of them)")
    library = state(ctx).library()
    if media is not None:
        if mode not in (None, "vector"):
            raise InvalidInput("--mode applies to --query; --media always compares vectors")
        result = library.similar(
            media,
            top=top,
            threshold=threshold,
            media_type=media_type,
            genre=genre,
            cluster=cluster,
        )
    else:
        result = library.search(
            query or "",
            top=top,
            mode=mode or "hybrid",
            threshold=threshold,
            media_type=media_type,
            genre=genre,
            cluster=cluster,
        )
    if as_json:
        emit_json(result.to_dict())
        return
    render_search(result)


def render_search(result: SearchResult) -> None:
    """Print search results as a table (one per cluster with ``--cluster``)."""
    if result.media_id is not None:
        heading = f"Like {result.media_title or ''} (media {result.media_id})"
    else:
        heading = f"{result.mode.capitalize()} search: {result.query}"
    if not result.hits:
        console.print(f"{heading}: no matches")
        return
    if result.fusion:
        console.print(_fusion_note(result.fusion))
    by_id = {hit.media_id: hit for hit in result.hits}
    if result.groups is None:
        console.print(_table(heading, result.hits))
        return
    console.print(heading)
    for number, group in enumerate(result.groups, start=1):
        hits = [by_id[media_id] for media_id in group.media_ids]
        console.print(_table(f"Cluster {number}: {group.name} ({len(hits)})", hits))


def _fusion_note(fusion: dict[str, Any]) -> str:
    """How hybrid search weighed this query, in one line."""
    words = fusion["query_words"]
    kind = "short" if fusion["short_query"] else "descriptive"
    note = (
        f"Fused: meaning, words (weight {fusion['words_weight']:.2f}: a {kind} query of "
        f"{words} known word{'s' if words != 1 else ''})"
    )
    if fusion["library_tags"]:
        note += ", and the tags of the best matches: " + ", ".join(fusion["library_tags"])
    return note


def _table(title: str, hits: list[SearchHit]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("title", overflow="fold")
    table.add_column("similarity", justify="right")
    table.add_column("tags", overflow="fold")
    table.add_column("why it matched", overflow="fold")
    for hit in hits:
        title = f"{hit.title or ''} ({hit.year})" if hit.year else hit.title or ""
        table.add_row(
            str(hit.media_id), title, f"{hit.similarity:.3f}", ", ".join(hit.tags), hit.why
        )
    return table


def clusters(
    ctx: typer.Context,
    k: int | None = typer.Option(None, "--k", help="How many clusters."),
    auto: bool = typer.Option(
        False, "--auto", help="Choose the number of clusters by silhouette (the default)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cluster the library by meaning, name each cluster by its tags, store each item's cluster."""
    report = state(ctx).library().cluster(k=k, auto=auto)
    if as_json:
        emit_json(report.to_dict())
        return
    render_clusters(report)


def render_clusters(report: ClusterReport) -> None:
    """Print the clusters of the library as a table."""
    quality = f", silhouette {report.silhouette:.3f}" if report.silhouette is not None else ""
    table = Table(
        title=f"{report.k} clusters of {report.media_count} media ({report.method}{quality})",
        title_justify="left",
    )
    table.add_column("cluster", justify="right")
    table.add_column("name", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("for example", overflow="fold")
    for info in report.clusters:
        examples = "; ".join(title for _, title in info.examples)
        table.add_row(str(info.cluster), info.name, str(info.size), examples)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("search-similar")(search_similar)
    app.command("clusters")(clusters)
