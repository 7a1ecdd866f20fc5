"""One model's vectors of the search catalog's texts kept in Neo4j, for a team that shares a
Neo4j database (:class:`kb.stores.neo4j_vectors.TextVectors`): the same methods as the local
:class:`kb.search.index.VectorIndex`, so that :mod:`kb.search.query` ranks the same way.

Texts travel by hash: each member's catalog numbers the texts in its own order. A text whose
vector another member (or another home) already wrote is not embedded again. The catalog's
state remembers how many of its texts are known to have vectors (``count``); at load, the last
of them is looked up, so that a Neo4j database emptied since is noticed and filled again.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from kb.search.catalog import Catalog
from kb.search.index import best_first, no_hits
from kb.stores.neo4j_vectors import TextVectors

log = logging.getLogger(__name__)

# Neo4j's vector index (HNSW) is approximate: asked for the 100 nearest of 10,000 random 896-d
# vectors it found 90 of the true ones, asked for 400 it found all 100 among its best 100
OVERFETCH = 4


class Neo4jIndex:
    """The :class:`kb.search.index.Vectors` of one model in Neo4j, for one catalog."""

    def __init__(self, vectors: TextVectors, catalog: Catalog) -> None:
        self.vectors = vectors
        self.catalog = catalog
        self._state = f"neo4j:{vectors.index}"
        self.count = 0

    # --- keeping up (the caller holds the lock) ----------------------------------------------

    def load(self) -> None:
        self.count = int(self.catalog.get_state(self._state) or 0)
        if self.count:
            last = self.catalog.hashes_of([self.count - 1]).get(self.count - 1)
            if last is None or not self.vectors.present([last.hex()]):
                log.info("Neo4j lacks search vectors this home had seen; checking every text again")
                self._set_count(0)

    def refresh(self) -> None:
        """Take in what another process of this home recorded."""
        self.count = max(self.count, int(self.catalog.get_state(self._state) or 0))

    def add_texts(self, start: int, items: Sequence[tuple[bytes, str]], embed: Callable[[list[str]], np.ndarray]) -> int:
        """Give texts ``start, start + 1, ...`` vectors, embedding only those Neo4j lacks."""
        hashes = [digest.hex() for digest, _ in items]
        have = self.vectors.present(hashes)
        todo = [i for i, h in enumerate(hashes) if h not in have]
        if todo:
            self.vectors.write([hashes[i] for i in todo], embed([items[i][1] for i in todo]))
        self._set_count(max(self.count, start + len(items)))
        return len(todo)

    def save(self) -> None:
        """Nothing to do: Neo4j holds every vector as soon as it is written."""

    def _set_count(self, count: int) -> None:
        self.count = count
        self.catalog.set_state(self._state, str(count))

    # --- reading ---------------------------------------------------------------------------

    def search(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` texts nearest to ``query`` (ids, inner product), best first (ties: lower id)."""
        if not self.count or n <= 0:
            return no_hits()
        return self._ranked(self.vectors.nearest(query, min(OVERFETCH * n, self.count)), n)

    def search_within(self, query: np.ndarray, ids: Sequence[int], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact search among the texts ``ids``, computed by Neo4j."""
        hashes = self._hashes(ids)
        if not hashes or n <= 0:
            return no_hits()
        # ties at the n-th place: ask for a few more, then order ties by id as the local index does
        return self._ranked(self.vectors.similarities(query, list(hashes.values()), n + 16), n)

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        hashes = self._hashes(ids)
        found = self.vectors.vectors(list(hashes.values()))
        kept = [found[h] for h in hashes.values() if h in found]
        return np.stack(kept) if kept else np.zeros((0, self.vectors.dim() or 0), dtype=np.float32)

    def scores(self, query: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        hashes = self._hashes(ids)
        ids_of = {h: i for i, h in hashes.items()}
        return {ids_of[h]: score for h, score in self.vectors.similarities(query, list(hashes.values()))}

    def _hashes(self, ids: Sequence[int]) -> dict[int, str]:
        """Hex hashes of the texts ``ids`` that have vectors, in id order."""
        wanted = sorted({int(i) for i in ids if 0 <= i < self.count})
        return {i: digest.hex() for i, digest in sorted(self.catalog.hashes_of(wanted).items())}

    def _ranked(self, found: list[tuple[str, float]], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Texts of this catalog (other homes' texts are left out), best first, ties by id."""
        ids = self.catalog.ids_of_hashes(bytes.fromhex(h) for h, _ in found)
        pairs = [(ids[key], score) for h, score in found if (key := bytes.fromhex(h)) in ids and ids[key] < self.count]
        return best_first(np.asarray([i for i, _ in pairs], dtype=np.int64), np.asarray([s for _, s in pairs], dtype=np.float64), n)
