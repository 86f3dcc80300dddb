"""The media library: ingest, catalogue import, records and tags."""

from atlas.media.catalog import CatalogReport, import_catalog, read_catalog
from atlas.media.ingest import IngestItem, IngestReport, collect_files, ingest_file, ingest_paths
from atlas.media.library import (
    MediaDetail,
    MediaPage,
    MediaRecord,
    get_media,
    list_media,
    media_detail,
)
from atlas.media.tags import Tag, normalise_tag, parse_tag_list

__all__ = [
    "CatalogReport",
    "IngestItem",
    "IngestReport",
    "MediaDetail",
    "MediaPage",
    "MediaRecord",
    "Tag",
    "collect_files",
    "get_media",
    "import_catalog",
    "ingest_file",
    "ingest_paths",
    "list_media",
    "media_detail",
    "normalise_tag",
    "parse_tag_list",
    "read_catalog",
]
