"""Feature search by concept: ``search(kb, "say a capital city")`` -> ranked :class:`SearchHit` list.

Descriptions (Neuronpedia explanations, graph clerps) and labels are embedded with a
sentence-transformers model (:mod:`kb.search.embedder`), cached by text on disk under
``<home>/search`` (:mod:`kb.search.catalog`, :mod:`kb.search.index`) and kept in step with SQL
before every search (:mod:`kb.search.sync`); :mod:`kb.search.query` blends the semantic and
keyword matches. See docs/search.md.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from kb.search.embedder import Embedder, shared_embedder
from kb.search.query import MODES, FeatureSearch, SearchError, SearchFilters, SearchHit

if TYPE_CHECKING:
    from kb.api import KB

__all__ = ["MODES", "FeatureSearch", "SearchError", "SearchFilters", "SearchHit", "close_searchers", "search", "searcher"]

_searchers: "weakref.WeakKeyDictionary[KB, dict[str, FeatureSearch]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def searcher(kb: "KB", embedder: Embedder | None = None) -> FeatureSearch:
    """The :class:`FeatureSearch` of ``kb`` for ``embedder`` (default: the configured model).

    One per knowledge base and model, kept while the KB object lives, so that the model, the
    index and the query cache are loaded once.
    """
    embedder = embedder or shared_embedder(kb.config.embedding_model)
    with _lock:
        per_kb = _searchers.setdefault(kb, {})
        found = per_kb.get(embedder.name)
        if found is None or found.embedder is not embedder:
            found = per_kb[embedder.name] = FeatureSearch(kb, embedder)
        return found


def search(
    kb: "KB",
    query: str,
    k: int = 20,
    filters: SearchFilters | None = None,
    *,
    mode: str = "blend",
    embedder: Embedder | None = None,
) -> list[SearchHit]:
    """The ``k`` features that best match ``query``: concept words, feature ids, or both."""
    return searcher(kb, embedder).search(query, k=k, filters=filters, mode=mode)


def close_searchers(kb: "KB") -> None:
    """Release the search state of ``kb`` (its catalog connection); called by ``KB.close``."""
    with _lock:
        per_kb = _searchers.pop(kb, {})
    for found in per_kb.values():
        found.close()
