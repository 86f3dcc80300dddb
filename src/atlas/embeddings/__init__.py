"""Embeddings: media vectors in ChromaDB, semantic and hybrid search, similar media, clusters.

The public surface for other services (the tagger builds on it):

* :func:`get_provider` — the configured embedding model, loaded once per process;
  :func:`embed_texts` — unit vectors of arbitrary texts with it;
* :func:`nearest_media` — the embedded media nearest a vector;
  :func:`media_vectors` — stored vectors of media items;
* :class:`QueryVectors` — recent query vectors, for a long-lived process;
* :func:`embed_media`, :func:`similar_media`, :func:`search_media`,
  :func:`cluster_library` — the services behind the commands.
"""

from atlas.embeddings.clusters import ClusterInfo, ClusterReport, cluster_library
from atlas.embeddings.document import DocumentInput, MediaDocument, build_document
from atlas.embeddings.embed import EmbedReport, embed_media
from atlas.embeddings.fusion import FusionWeights
from atlas.embeddings.providers import EmbeddingProvider, get_provider
from atlas.embeddings.query_vectors import QueryVectors
from atlas.embeddings.results import HitGroup, SearchHit, SearchResult
from atlas.embeddings.search import (
    MODES,
    embed_texts,
    media_vectors,
    nearest_media,
    search_media,
)
from atlas.embeddings.similar import similar_media
from atlas.embeddings.store import Neighbour, VectorStore, get_store

__all__ = [
    "MODES",
    "ClusterInfo",
    "ClusterReport",
    "DocumentInput",
    "EmbedReport",
    "EmbeddingProvider",
    "FusionWeights",
    "HitGroup",
    "MediaDocument",
    "Neighbour",
    "QueryVectors",
    "SearchHit",
    "SearchResult",
    "VectorStore",
    "build_document",
    "cluster_library",
    "embed_media",
    "embed_texts",
    "get_provider",
    "get_store",
    "media_vectors",
    "nearest_media",
    "search_media",
    "similar_media",
]
