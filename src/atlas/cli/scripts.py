"""Console scripts that run one command: ``atlas-embed-media``, ``atlas-search-similar``.

Each is its own small Typer app around the same command function as ``atlas
embed-media`` / ``atlas search-similar``, with the same global flags (``--home``,
``--config``, ...) and the same error edge.
"""

from __future__ import annotations

from atlas.cli.app import standalone
from atlas.cli.embed_cmd import embed_media
from atlas.cli.search_cmd import search_similar

__all__ = ["embed_media_app", "embed_media_main", "search_similar_app", "search_similar_main"]

embed_media_app = standalone(embed_media, "atlas-embed-media")
search_similar_app = standalone(search_similar, "atlas-search-similar")


def embed_media_main() -> None:
    embed_media_app(prog_name="atlas-embed-media")


def search_similar_main() -> None:
    search_similar_app(prog_name="atlas-search-similar")
