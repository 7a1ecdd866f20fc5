"""The interface every graph store implements, and the data types they share."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import orjson
from sqlalchemy import Connection

from ingest.records import FeatureKey, ParsedGraph
from kb.stores.circuit_queries import CircuitQueries, FeatureEdges
from kb.stores.feature_queries import FeatureQueries

# columns of a stored node, in this order, in every store
NODE_COLUMNS = (
    "idx",
    "node_id",
    "js_node_id",
    "kind",
    "feature_type",
    "layer",
    "layer_num",
    "ctx_idx",
    "feature",
    "feature_id",
    "clerp",
    "influence",
    "activation",
    "token_prob",
    "is_target_logit",
    "extra",
    "input_total",
)

Finalize = Callable[[Connection], None]
# called with the number of links just written
LinkProgress = Callable[[int], None]


@dataclass
class StoredGraph:
    """One graph as a store gives it back: node rows (dicts of NODE_COLUMNS) and link arrays."""

    graph_id: int
    nodes: list[dict[str, Any]]
    link_src: np.ndarray
    link_tgt: np.ndarray
    link_weight: np.ndarray


class GraphStore(FeatureQueries, CircuitQueries, ABC):
    """Keeps each graph's nodes and weighted links; features are shared, keyed by SQL id.

    Graph ids come from the SQL registry, which alone says which graphs are visible;
    stores never decide that on their own.
    """

    name: str

    @property
    def concurrent_writes(self) -> int:
        """How many graphs an ingest may write at once, each from its own thread (different graphs only)."""
        return 1

    @abstractmethod
    def setup(self) -> None:
        """Create constraints and indexes (idempotent)."""

    def bind(self, instance: str) -> None:
        """Check that this store belongs to the SQL database whose id is ``instance``.

        Graph and feature ids come from SQL, so a store holding another database's graphs
        would mix two knowledge bases. A store that lives inside the SQL database needs no check.
        """

    @abstractmethod
    def write_graph(
        self,
        gid: int,
        graph: ParsedGraph,
        feature_ids: dict[FeatureKey, int],
        edges: FeatureEdges,
        finalize: Finalize,
        progress: LinkProgress | None = None,
        fresh: bool = False,
    ) -> None:
        """Store graph ``gid`` whole, with its feature ``edges`` (folded once by the caller, who
        also adds them to the aggregates: :func:`kb.stores.circuit_queries.fold_parsed_graph`),
        then run ``finalize`` in a SQL transaction that publishes it.

        Anything of ``gid`` already in the store (a half-written earlier try) is removed first,
        unless the caller says the id is ``fresh``: newly given, so nothing of it can be stored
        (the registry forgets an id only after its store has purged it).
        """

    @abstractmethod
    def purge(self, gid: int) -> None:
        """Remove every node and link of graph ``gid`` (idempotent)."""

    @abstractmethod
    def load_graph(self, gid: int) -> StoredGraph:
        """Every node and link of graph ``gid``, in file order."""

    @abstractmethod
    def counts(self, gids: list[int] | None = None) -> dict[str, int]:
        """``nodes``, ``links`` and ``features`` (distinct features used) of the given graphs, or all."""

    def close(self) -> None:
        """Release connections."""


def node_input_totals(graph: ParsedGraph) -> np.ndarray:
    """Each node's total input, by idx: the sum of |weight| of the links into it (0.0 for a node
    without any), float64, summed in file order. A link's share divides by its target's total;
    stores keep it with the node so that no question sums a node's links when it asks."""
    totals = np.zeros(len(graph.nodes), dtype=np.float64)
    # a million links at a time, added in place in order (the same sums as one pass): the
    # temporaries of one pass over a 16M-link graph were 256 MB at the ingest's peak of memory
    for start in range(0, graph.n_links, _TOTALS_CHUNK):
        stop = start + _TOTALS_CHUNK
        np.add.at(totals, np.asarray(graph.link_tgt[start:stop], dtype=np.intp), np.abs(np.asarray(graph.link_weight[start:stop], dtype=np.float64)))
    return totals


_TOTALS_CHUNK = 1_000_000


def node_values(node: Any, feature_ids: dict[FeatureKey, int], input_totals: np.ndarray) -> tuple:
    """A parsed node as a tuple in NODE_COLUMNS order (``extra`` as JSON text or None);
    ``input_totals`` are the graph's :func:`node_input_totals`."""
    return (
        node.idx,
        node.node_id,
        node.js_node_id,
        node.kind,
        node.feature_type,
        node.layer,
        node.layer_num,
        node.ctx_idx,
        node.feature,
        feature_ids[node.feature_key] if node.feature_key is not None else None,
        node.clerp,
        node.influence,
        node.activation,
        node.token_prob,
        node.is_target_logit,
        extra_json(node.extra) if node.extra else None,
        float(input_totals[node.idx]),
    )


def extra_json(extra: dict[str, Any]) -> str:
    """A node's extra fields as compact JSON text.

    orjson writes the same text twenty times faster, but turns NaN into null: it serialises
    only fields that hold no float (strings, integers, booleans, nulls, lists of strings),
    which is what most nodes carry; anything else, or what orjson refuses, goes to json.
    """
    if all(type(v) in _PLAIN or (type(v) is list and all(type(x) is str for x in v)) for v in extra.values()):
        try:
            return orjson.dumps(extra).decode()
        except TypeError:  # an integer beyond 64 bits, a lone surrogate
            pass
    return json.dumps(extra, ensure_ascii=False, separators=(",", ":"))


_PLAIN = frozenset({str, int, bool, type(None)})
