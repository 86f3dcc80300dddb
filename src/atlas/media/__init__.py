"""The media library: ingest, catalogue import, records and tags."""

from atlas.media.catalog import CatalogReport, import_catalog, read_catalog
from atlas.media.ingest import IngestItem, IngestReport, collect_files, ingest_file, ingest_paths
from atlas.media.library import (
    MEDIA_SORTS,
    MediaDetail,
    MediaPage,
    MediaRecord,
    Transcript,
    cluster_names,
    get_media,
    library_root_paths,
    list_media,
    media_detail,
    media_transcript,
)
from atlas.media.tags import Tag, normalise_tag, parse_tag_list

__all__ = [
    "MEDIA_SORTS",
    "CatalogReport",
    "IngestItem",
    "IngestReport",
    "MediaDetail",
    "MediaPage",
    "MediaRecord",
    "Tag",
    "Transcript",
    "cluster_names",
    "collect_files",
    "get_media",
    "import_catalog",
    "ingest_file",
    "ingest_paths",
    "library_root_paths",
    "list_media",
    "media_detail",
    "media_transcript",
    "normalise_tag",
    "parse_tag_list",
    "read_catalog",
]
