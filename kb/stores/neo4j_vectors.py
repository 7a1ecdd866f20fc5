"""Feature search's vectors kept in Neo4j: one vector index per model, shared by every user of
the database, so that a team embeds each description once.

Texts are named by their SHA-256 in hex (what the search catalog keys them by), never by a
local id. :class:`kb.search.neo4j_index.Neo4jIndex` maps them to a catalog's ids.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from kb.errors import CircuitKBError
from kb.stores.cypher import search as cypher
from kb.stores.neo4j_store import Neo4jStore

log = logging.getLogger(__name__)

# the first Neo4j with vector indexes, db.create.setNodeVectorProperty and vector.similarity.cosine
MIN_VERSION = (5, 18)
WRITE_BATCH = 1_000
INDEX_WAIT_SECONDS = 300


class VectorIndexError(CircuitKBError):
    """Neo4j cannot keep search vectors (too old), or its index holds another dimension."""


def server_version(store: Neo4jStore) -> tuple[int, ...]:
    text = store.run_read(*cypher.server_version())[0]["version"]
    return tuple(int(part) for part in text.split("-")[0].split(".")[:2] if part.isdigit())


def supports_vectors(store: Neo4jStore) -> bool:
    """Whether the server has what :class:`TextVectors` needs (Neo4j 5.18 or later)."""
    return server_version(store) >= MIN_VERSION


class TextVectors:
    """One model's text vectors in Neo4j: written by hash, searched by the model's vector index.

    Scores are inner products with the query, as :class:`kb.search.index.VectorIndex` gives
    them (stored vectors have unit length; Neo4j's cosine is turned back into one).
    """

    def __init__(self, store: Neo4jStore, model: str) -> None:
        self.store = store
        self.model = model
        self.index, self.prop = cypher.vector_names(model)
        self._dim: int | None = None

    def dim(self) -> int | None:
        """The index's dimension, or None when the index does not exist yet."""
        if self._dim is None:
            rows = self.store.run_read(*cypher.index_options(self.index))
            if rows:
                self._dim = int(rows[0]["options"]["indexConfig"]["vector.dimensions"])
        return self._dim

    def ensure_index(self, dim: int) -> None:
        """Create the model's vector index (idempotent) and wait until it is online."""
        if self.dim() is None:
            self.store.run_write(*cypher.create_vector_index(self.index, self.prop, dim))
            self.store.run_write(*cypher.await_index(self.index, INDEX_WAIT_SECONDS))
            self._dim = None
        if self.dim() != dim:
            raise VectorIndexError(
                f"the Neo4j vector index {self.index} of model {self.model!r} holds vectors of dimension {self.dim()}, not {dim}"
            )

    def present(self, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` that already have a vector of this model."""
        if not hashes:
            return set()
        return {r["hash"] for r in self.store.run_read(*cypher.with_vectors(hashes, self.prop))}

    def write(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        if not len(hashes):
            return
        self.ensure_index(int(vectors.shape[1]))
        for start in range(0, len(hashes), WRITE_BATCH):
            rows = [
                {"hash": h, "vector": v.tolist()}
                for h, v in zip(hashes[start : start + WRITE_BATCH], vectors[start : start + WRITE_BATCH])
            ]
            self.store.run_write(*cypher.write_vectors(rows, self.prop))

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` texts nearest to ``query`` by the index: (hash, inner product), best first."""
        if k <= 0 or self.dim() is None:
            return []
        return _inner_products(self.store.run_read(*cypher.nearest(self.index, k, query.astype(np.float64).tolist())), query)

    def similarities(self, query: np.ndarray, hashes: Sequence[str], limit: int | None = None) -> list[tuple[str, float]]:
        """Exact inner products of ``query`` with ``hashes`` (the best ``limit``), best first."""
        if not hashes or (limit is not None and limit <= 0):
            return []
        return _inner_products(self.store.run_read(*cypher.similarities(hashes, self.prop, query.astype(np.float64).tolist(), limit)), query)

    def vectors(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        if not hashes:
            return {}
        rows = self.store.run_read(*cypher.vectors_of(hashes, self.prop))
        return {r["hash"]: np.asarray(r["vector"], dtype=np.float32) for r in rows}


def _inner_products(rows: list[dict[str, Any]], query: np.ndarray) -> list[tuple[str, float]]:
    """(hash, inner product with ``query``) of rows (hash, Neo4j score)."""
    # Neo4j's cosine similarity is (1 + cos) / 2; the stored vectors have unit length
    norm = float(np.linalg.norm(query))
    return [(r["hash"], (2.0 * float(r["score"]) - 1.0) * norm) for r in rows]
