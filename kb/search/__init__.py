"""Feature search by concept: ``search(kb, "say a capital city")`` -> ranked :class:`SearchHit` list.

Descriptions (Neuronpedia explanations, graph clerps) and labels are embedded by an English
and a multilingual model fused into one vector (:mod:`kb.search.embedder`; a query is embedded
by numpy alone, :mod:`kb.search.minilm`, :mod:`kb.search.usecache`), cached by text on disk under
``<home>/search`` (:mod:`kb.search.catalog`, :mod:`kb.search.index`; the vectors in Neo4j for a
team whose graphs are there, :mod:`kb.search.neo4j_index`) and kept in step with SQL
before every search (:mod:`kb.search.sync`); :mod:`kb.search.query` blends the semantic and
keyword matches; feature ids written in a query are read by :func:`kb.featureref.find_feature_refs`.
:func:`like` searches by example. :mod:`kb.search.relevance` measures the relevance set per
language. See docs/search.md.

The knowledge base owns its search state: it keeps one :class:`Searchers` and closes it with
itself, and :func:`search` asks the knowledge base it is given for its searcher.
"""

from __future__ import annotations

import threading
from typing import Protocol

from ingest.records import FeatureKey
from kb.core import Core
from kb.search.embedder import Embedder, shared_embedder
from kb.search.query import MODES, FeatureSearch, SearchError, SearchFilters, SearchHit

__all__ = ["MODES", "FeatureSearch", "HasSearcher", "SearchError", "SearchFilters", "SearchHit", "Searchers", "like", "search"]


class HasSearcher(Protocol):
    """What :func:`search` needs of a knowledge base: its searcher for an embedding model."""

    def searcher(self, embedder: Embedder | None = None) -> FeatureSearch: ...


class Searchers:
    """The :class:`FeatureSearch` objects of one knowledge base, one per embedding model.

    Each is made on first use and kept until :meth:`close`, so that the index and the query
    cache are loaded once; the model itself is shared by every knowledge base of the process
    (:func:`kb.search.embedder.shared_embedder`).
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self._by_model: dict[str, FeatureSearch] = {}
        self._lock = threading.Lock()

    def get(self, embedder: Embedder | None = None) -> FeatureSearch:
        """The searcher for ``embedder`` (default: the configured model)."""
        embedder = embedder or shared_embedder(self.core.config.embedding_model)
        with self._lock:
            found = self._by_model.get(embedder.name)
            if found is None or found.embedder is not embedder:
                found = self._by_model[embedder.name] = FeatureSearch(self.core, embedder)
            return found

    def close(self) -> None:
        """Release every searcher's catalog connection."""
        with self._lock:
            made, self._by_model = list(self._by_model.values()), {}
        for found in made:
            found.close()


def search(
    kb: HasSearcher,
    query: str,
    k: int = 20,
    filters: SearchFilters | None = None,
    *,
    mode: str = "blend",
    embedder: Embedder | None = None,
) -> list[SearchHit]:
    """The ``k`` features that best match ``query``: concept words, feature ids, or both."""
    return kb.searcher(embedder).search(query, k=k, filters=filters, mode=mode)


def like(
    kb: HasSearcher,
    feature: FeatureKey | str,
    k: int = 20,
    filters: SearchFilters | None = None,
    *,
    cooccurring: bool = False,
    embedder: Embedder | None = None,
) -> list[SearchHit]:
    """Search by example: the ``k`` features described most like ``feature`` (optionally only
    those that appear in a graph with it)."""
    return kb.searcher(embedder).like(feature, k=k, filters=filters, cooccurring=cooccurring)
