"""Questions about circuits, as every graph store answers them.

Four kinds of answers, each the same on every store:

- a graph's *feature edges*: every link from a node of feature A to a node of feature B, with
  the weights of the links of one graph summed (a feature active at several positions has several
  nodes; their links are folded into one edge per pair of features). Written at ingest, next to
  the graph, by :func:`fold_parsed_graph`; many graphs are aggregated in numpy by
  :mod:`kb.analysis.edges`;
- a graph's *skeleton*: its nodes and links without labels or extra fields, for analyses that
  walk one graph (paths, comparison, scores);
- *chains*: node-level paths step_0 -> step_1 -> ... -> a target logit, matched across graphs,
  scored and cut to the best of each graph inside the store (pattern queries, two-hop paths);
- *pieces* of one graph, served without reading the whole graph: its top nodes by influence,
  the links among chosen nodes, the links around chosen nodes above a weight.

Graph ids always come from the caller (the SQL registry decides which graphs are visible);
feature ids are SQL ``features.id``; nodes are named inside their graph by ``idx``. Each node
carries its *input total* (the sum of |weight| of the links into it), written at ingest
(:func:`kb.stores.base.node_input_totals`): a link's share of its target's input divides by it.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from ingest.records import FeatureKey, ParsedGraph
from kb.errors import NotFoundError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# edges per stored part of a graph's feature edges (~24 MB); pruned graphs need one part
FEATURE_EDGE_PART = 1_000_000

SKELETON_COLUMNS = (
    "idx",
    "node_id",
    "kind",
    "feature_type",
    "layer",
    "layer_num",
    "ctx_idx",
    "feature_id",
    "activation",
    "influence",
    "token_prob",
    "is_target_logit",
    "clerp",
)


@dataclass(frozen=True)
class FeatureEdges:
    """One graph's feature edges as parallel arrays, sorted by (src, tgt), one row per pair.

    ``weight`` is the sum of the weights of the links from any node of ``src`` to any node of
    ``tgt`` in the graph (positions folded by summing); ``n_links`` how many links that is.
    """

    gid: int
    src: np.ndarray  # int32, features.id
    tgt: np.ndarray  # int32
    weight: np.ndarray  # float64
    n_links: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.src)

    def parts(self) -> Iterator[dict[str, Any]]:
        """The packed parts to store: part, n, and the arrays as little-endian bytes (one empty
        part when there are no edges)."""
        n = len(self.src)
        for part, start in enumerate(range(0, max(n, 1), FEATURE_EDGE_PART)):
            stop = min(n, start + FEATURE_EDGE_PART)
            yield {
                "part": part,
                "n": stop - start,
                "src": self.src[start:stop].astype("<i4").tobytes(),
                "tgt": self.tgt[start:stop].astype("<i4").tobytes(),
                "weight": self.weight[start:stop].astype("<f8").tobytes(),
                "n_links": self.n_links[start:stop].astype("<i4").tobytes(),
            }

    @classmethod
    def empty(cls, gid: int) -> "FeatureEdges":
        """A graph without feature edges."""
        return cls(gid, np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float64), np.empty(0, np.int32))

    @classmethod
    def from_parts(cls, gid: int, parts: Sequence[Mapping[str, Any]]) -> "FeatureEdges":
        """Rebuild from stored parts (dicts with part, src, tgt, weight, n_links as bytes)."""
        ordered = sorted(parts, key=lambda p: p["part"])

        def column(name: str, dtype: type) -> np.ndarray:
            # read-only views of the stored bytes (the stored order is little-endian, as is numpy's here)
            chunks = [np.frombuffer(p[name], dtype=np.dtype(dtype).newbyteorder("<")) for p in ordered]
            if len(chunks) == 1:
                return chunks[0]
            return np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)

        return cls(gid, column("src", np.int32), column("tgt", np.int32), column("weight", np.float64), column("n_links", np.int32))


# links folded at once; a bigger graph is folded one range of source features at a time, which
# bounds the memory the fold takes whatever the graph's size
FOLD_CHUNK = 500_000


def fold_feature_edges(
    gid: int, node_fids: np.ndarray, link_src: np.ndarray, link_tgt: np.ndarray, link_weight: np.ndarray
) -> FeatureEdges:
    """A graph's feature edges from its links; ``node_fids[idx]`` is the feature of node idx, or -1."""
    if len(link_src) <= FOLD_CHUNK:
        return next(feature_edge_pieces(gid, node_fids, link_src, link_tgt, link_weight))
    # a huge graph's pieces are copied into arrays made once, as long as there are links (an
    # edge has one link at least): the pages past the last edge are never touched, so they take
    # no memory, and no list of pieces and no second joined copy of the fold (hundreds of MB) is held
    columns = {name: np.empty(len(link_src), dtype=dtype) for name, dtype in _EDGE_COLUMNS}
    end = 0
    for piece in feature_edge_pieces(gid, node_fids, link_src, link_tgt, link_weight):
        for name, _ in _EDGE_COLUMNS:
            columns[name][end : end + len(piece)] = getattr(piece, name)
        end += len(piece)
    return FeatureEdges(gid, **{name: column[:end] for name, column in columns.items()})


_EDGE_COLUMNS = (("src", np.int32), ("tgt", np.int32), ("weight", np.float64), ("n_links", np.int32))


def feature_edge_pieces(
    gid: int, node_fids: np.ndarray, link_src: np.ndarray, link_tgt: np.ndarray, link_weight: np.ndarray
) -> Iterator[FeatureEdges]:
    """A graph's feature edges in pieces: disjoint ranges of source features in ascending order,
    each piece sorted by (src, tgt), so that the pieces one after another are the whole, sorted.
    Pieces are not empty, except the one piece of a graph without feature edges.

    A graph of up to ``FOLD_CHUNK`` links is one piece. A bigger one is cut into ranges of source
    features with about that many links each, and each range's links are gathered (in file
    order) and folded on their own: memory stays bounded, and every pair's weights are still
    summed in file order, so the sums are those of a fold of the whole graph at once.
    """
    node_fids = np.asarray(node_fids, dtype=np.int64)
    n = len(link_src)
    if n <= FOLD_CHUNK:
        yield fold_link_features(gid, node_fids[link_src], node_fids[link_tgt], link_weight)
        return
    folded = 0
    for low, high in _source_feature_ranges(node_fids, link_src, FOLD_CHUNK):
        src, tgt, weight = [], [], []
        for start in range(0, n, FOLD_CHUNK):
            fids = node_fids[link_src[start : start + FOLD_CHUNK]]
            keep = (fids >= low) & (fids < high)
            if keep.any():
                src.append(fids[keep])
                tgt.append(node_fids[link_tgt[start : start + FOLD_CHUNK][keep]])
                weight.append(link_weight[start : start + FOLD_CHUNK][keep])
        if not src:
            continue
        piece = fold_link_features(gid, np.concatenate(src), np.concatenate(tgt), np.concatenate(weight))
        if len(piece):
            folded += 1
            yield piece
    if not folded:
        yield FeatureEdges.empty(gid)


def _source_feature_ranges(node_fids: np.ndarray, link_src: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """[low, high) ranges of feature ids, ascending, each the source of about ``budget`` links
    at most (a single feature with more links is a range of its own)."""
    per_node = np.bincount(link_src, minlength=len(node_fids))
    features = node_fids >= 0
    fids, inverse = np.unique(node_fids[features], return_inverse=True)
    per_fid = np.bincount(inverse, weights=per_node[features], minlength=len(fids))
    ranges: list[tuple[int, int]] = []
    low, taken = None, 0.0
    for fid, count in zip(fids.tolist(), per_fid.tolist()):
        if low is not None and taken + count > budget:
            ranges.append((low, fid))
            low, taken = None, 0.0
        if low is None:
            low = fid
        taken += count
    if low is not None:
        ranges.append((low, int(fids[-1]) + 1))
    return ranges


def fold_parsed_graph(gid: int, graph: ParsedGraph, feature_ids: Mapping[FeatureKey, int]) -> FeatureEdges:
    """The feature edges of a parsed graph that is being stored as ``gid``: folded once per
    ingest, stored with the graph and added to the aggregates (:mod:`kb.aggregates`)."""
    node_fids = np.full(len(graph.nodes), -1, dtype=np.int64)
    for node in graph.nodes:
        if node.feature_key is not None:
            node_fids[node.idx] = feature_ids[node.feature_key]
    return fold_feature_edges(gid, node_fids, graph.link_src, graph.link_tgt, graph.link_weight)


def fold_skeleton(skeleton: Skeleton) -> FeatureEdges:
    """The feature edges of a stored graph, folded from its links (as at ingest, so the same sums)."""
    nodes = skeleton.nodes
    node_fids = np.full(int(nodes.index.max()) + 1 if len(nodes) else 0, -1, dtype=np.int64)
    node_fids[nodes.index.to_numpy()] = nodes["feature_id"].to_numpy()
    return fold_feature_edges(skeleton.gid, node_fids, skeleton.link_src, skeleton.link_tgt, skeleton.link_weight)


def fold_link_features(gid: int, src_fids: np.ndarray, tgt_fids: np.ndarray, weights: np.ndarray) -> FeatureEdges:
    """Feature edges from each link's (source feature, target feature, weight), -1 for non-features.

    Weights of one pair are summed in link order, so every store that reads the links in file
    order gets the same sums to the last bit.
    """
    src = np.asarray(src_fids, dtype=np.int64)
    tgt = np.asarray(tgt_fids, dtype=np.int64)
    keep = (src >= 0) & (tgt >= 0)
    src, tgt = src[keep], tgt[keep]
    weight = np.asarray(weights, dtype=np.float64)[keep]
    keys, inverse, counts = np.unique((src << 32) | tgt, return_inverse=True, return_counts=True)
    sums = np.zeros(len(keys), dtype=np.float64)
    np.add.at(sums, inverse, weight)
    return FeatureEdges(gid, (keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF).astype(np.int32), sums, counts.astype(np.int32))


@dataclass(frozen=True)
class Skeleton:
    """One graph's nodes (a DataFrame of SKELETON_COLUMNS indexed by idx) and its links.

    ``feature_id`` is -1 on nodes that are not features; float columns hold NaN where the file
    had null; ``is_target_logit`` is a bool column.
    """

    gid: int
    nodes: pd.DataFrame
    link_src: np.ndarray
    link_tgt: np.ndarray
    link_weight: np.ndarray


def skeleton_from_rows(gid: int, rows: Sequence[Mapping[str, Any]], src: Sequence[int], tgt: Sequence[int], weight: Sequence[float]) -> Skeleton:
    """Build a Skeleton from node rows (dicts with SKELETON_COLUMNS, any order) and link lists."""
    import pandas as pd  # heavy: only what reads whole graphs pays for it, not every command

    frame = pd.DataFrame.from_records(list(rows), columns=list(SKELETON_COLUMNS))
    frame["feature_id"] = frame["feature_id"].fillna(-1).astype(np.int64)
    for column in ("activation", "influence", "token_prob"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    frame["is_target_logit"] = frame["is_target_logit"].fillna(False).astype(bool)
    frame["layer_num"] = frame["layer_num"].astype(np.int64)
    frame["ctx_idx"] = frame["ctx_idx"].astype(np.int64)
    frame = frame.set_index("idx", drop=False).sort_index()
    return Skeleton(
        gid,
        frame,
        np.asarray(src, dtype=np.int64),
        np.asarray(tgt, dtype=np.int64),
        np.asarray(weight, dtype=np.float64),
    )


@dataclass(frozen=True)
class Step:
    """Which nodes may stand at one place of a chain.

    ``fids``: feature nodes of these features (None: any feature node). ``graph_fids``: feature
    nodes of these features, per graph id (None: no such limit; a graph missing from the map
    matches nothing). ``positions``: only nodes at these token positions, per graph id (None:
    any position; a graph missing from the map matches nothing). ``embeddings``: the embedding
    nodes (at those positions) qualify too.
    """

    fids: frozenset[int] | None = None
    positions: Mapping[int, frozenset[int]] | None = None
    embeddings: bool = False
    graph_fids: Mapping[int, frozenset[int]] | None = None


class ChainNode(NamedTuple):
    """A node on a chain, with what readers of chains need of it (fid None unless a feature)."""

    idx: int
    node_id: str
    kind: str
    ctx_idx: int
    fid: int | None
    clerp: str | None


def link_share(weight: float, total: float) -> float:
    """A link's share of its target's input: |weight| / the target's input total (0.0 if that is 0).

    Stores that score chains in their query language compute the same expression, and a chain's
    score as the product of its shares from the first link on, so that they rank as this does.
    """
    return abs(weight) / total if total else 0.0


@dataclass(frozen=True, order=True)
class ChainMatch:
    """One path step_0 -> ... -> step_n -> target logit in graph ``gid``.

    ``nodes`` are the idx of each step's node and, last, of the target logit; ``fids`` their
    feature ids (None for other nodes); ``weights`` the weight of each link along the path;
    ``totals`` the input total of each node after the first (the target of each link).
    Chains are many (hundreds per graph): what else a reader needs of their nodes comes from
    :meth:`CircuitQueries.describe_nodes` for the chains that are kept, or from ``about`` (each
    node's description) where the store's query read it along with the chain.
    """

    gid: int
    nodes: tuple[int, ...]
    weights: tuple[float, ...] = field(compare=False)
    fids: tuple[int | None, ...] = field(compare=False, default=())
    totals: tuple[float, ...] = field(compare=False, default=())
    about: tuple[ChainNode, ...] | None = field(compare=False, default=None)

    @property
    def shares(self) -> tuple[float, ...]:
        """Each link's share of its target's input."""
        return tuple(link_share(w, t) for w, t in zip(self.weights, self.totals))

    @property
    def score(self) -> float:
        """The product of the shares: the fraction of the answer's input flowing along the chain."""
        return math.prod(self.shares)


class ChainGroup(NamedTuple):
    """The chains of graph ``gid`` whose nodes at the grouped steps are of features ``fids``
    (None where a node is not a feature): how many (``n_chains``) and the best score.

    A named tuple: a question may make hundreds of thousands, and a frozen dataclass takes twice
    as long to make."""

    gid: int
    fids: tuple[int | None, ...]
    n_chains: int
    best_score: float


@dataclass(frozen=True)
class LinkSet:
    """Links of one graph as parallel arrays (src idx, tgt idx, weight), sorted by (src, tgt, weight)."""

    src: np.ndarray
    tgt: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[tuple[int, int, float]]) -> "LinkSet":
        ordered = sorted(rows)
        return cls(
            np.array([r[0] for r in ordered], dtype=np.int64),
            np.array([r[1] for r in ordered], dtype=np.int64),
            np.array([r[2] for r in ordered], dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.src)


def _sorted_chains(chains: Iterable[ChainMatch]) -> list[ChainMatch]:
    """By gid, then nodes: ChainMatch's own order, with one key per chain rather than a pair of
    tuples made for every comparison."""
    return sorted(chains, key=lambda c: (c.gid, c.nodes))


def _sorted_groups(groups: Iterable[ChainGroup]) -> list[ChainGroup]:
    """By gid, then fids (None before any feature)."""
    found = list(groups)
    if any(f is None for g in found for f in g.fids):
        return sorted(found, key=lambda g: (g.gid, tuple(-1 if f is None else f for f in g.fids)))
    return sorted(found, key=lambda g: (g.gid, g.fids))


IN, OUT, BOTH = "in", "out", "both"


class CircuitQueries(ABC):
    """The circuit questions. A store implements the abstract primitives; what is the same on
    every store (the fallback for graphs without stored feature edges, folding rows into
    answers) is written here once."""

    # --- written once, over the primitives ------------------------------------------------------

    def feature_edges(self, gids: Sequence[int]) -> list[FeatureEdges]:
        """Each graph's feature edges, in the order of ``gids``.

        Graphs stored before feature edges were kept get theirs computed from their links (a graph
        that is not stored has none).
        """
        unique = sorted(set(gids))
        stored = self._stored_feature_edges(unique)
        missing = [g for g in unique if g not in stored]
        if missing:
            log.warning("%d graphs have no stored feature edges; computing them from their links (`circuitkb circuits backfill` stores them)", len(missing))
        computed = {g: self._feature_edges_from_links(g) for g in missing}
        return [computed[g] if g in computed else FeatureEdges.from_parts(g, stored[g]) for g in gids]

    def _feature_edges_from_links(self, gid: int) -> FeatureEdges:
        try:
            skeleton = self.graph_skeleton(gid)
        except NotFoundError:
            return FeatureEdges.empty(gid)
        return fold_skeleton(skeleton)

    def graphs_without_feature_edges(self, gids: Sequence[int]) -> list[int]:
        """Those of ``gids`` whose feature edges are not stored (graphs stored before they were kept)."""
        have = self._graphs_with_feature_edges(sorted(set(gids)))
        return [g for g in gids if g not in have]

    def graph_features(self, gids: Sequence[int]) -> dict[int, np.ndarray]:
        """Each graph's distinct feature ids, sorted (an empty array for a graph without features)."""
        found: dict[int, list[int]] = {g: [] for g in gids}
        if found:
            for gid, fids in self._graph_feature_ids(sorted(found)):
                found[gid].extend(fids)
        return {g: np.unique(np.asarray(f, dtype=np.int64)) for g, f in found.items()}

    def feature_positions(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, ...]]:
        """For each (gid, fid) of ``keys`` present in its graph: the sorted positions of its nodes."""
        wanted = set(keys)
        found: dict[tuple[int, int], list[int]] = {}
        if wanted:
            # sorted once, so that each key's positions come in order (tens of thousands of keys)
            for gid, fid, pos in sorted(self._feature_position_rows(sorted(wanted))):
                if (gid, fid) in wanted:
                    at = found.setdefault((gid, fid), [])
                    if not at or at[-1] != pos:
                        at.append(pos)
        return {key: tuple(p) for key, p in found.items()}

    def direct_weights(self, pairs: Sequence[tuple[int, int, int]]) -> dict[tuple[int, int, int], float]:
        """For (gid, src idx, tgt idx): the summed weight of the links src -> tgt, where there are any.

        Summed in file order, so every store gives the same sum to the last bit."""
        out: dict[tuple[int, int, int], float] = {}
        if pairs:
            for gid, src, tgt, weight in self._link_rows_between(sorted(set(pairs))):
                out[(gid, src, tgt)] = out.get((gid, src, tgt), 0.0) + weight
        return out

    def input_totals(self, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], float]:
        """For each (gid, idx): the sum of |weight| of every link into that node (0.0 if none),
        as stored with the node."""
        out = {key: 0.0 for key in set(nodes)}
        if out:
            for gid, idx, total in self._input_total_rows(sorted(out)):
                out[(gid, idx)] = float(total or 0.0)
        return out

    def chains(
        self, gids: Sequence[int], steps: Sequence[Step], top: int | None = None, floors: Mapping[int, float] | None = None
    ) -> list[ChainMatch]:
        """Every path through nodes matching ``steps`` in turn, then into a target logit, or with
        ``top`` the ``top`` best of each graph (highest :attr:`ChainMatch.score`, ties by nodes),
        chosen inside the store.

        ``floors`` (with ``top`` only): for some graphs, a score that the caller knows ``top`` of
        their paths reach; the store may skip paths scoring below it sooner. One link per hop;
        sorted by (gid, nodes).
        """
        if not steps or not gids:
            return []
        return _sorted_chains(self._chains(sorted(set(gids)), steps, top, floors if top is not None else None))

    def chain_groups(self, gids: Sequence[int], steps: Sequence[Step], at: Sequence[int]) -> list[ChainGroup]:
        """The paths :meth:`chains` would give, counted inside the store by graph and by the
        features of their nodes at the steps ``at`` (indexes into ``steps``), with the best
        score of each group. Sorted by gid, then fids (None before any feature)."""
        if not steps or not gids:
            return []
        return _sorted_groups(self._chain_groups(sorted(set(gids)), steps, tuple(at)))

    def chains_and_groups(
        self, gids: Sequence[int], steps: Sequence[Step], at: Sequence[int], top: int | None = None
    ) -> tuple[list[ChainMatch], list[ChainGroup]]:
        """What :meth:`chains` and :meth:`chain_groups` give for the same paths, in one pass over
        them where the store can."""
        if not steps or not gids:
            return [], []
        chains, groups = self._chains_and_groups(sorted(set(gids)), steps, tuple(at), top)
        return _sorted_chains(chains), _sorted_groups(groups)

    def links_around(self, gid: int, idxs: Sequence[int], min_abs_weight: float, direction: str = BOTH) -> LinkSet:
        """The links into (``in``), out of (``out``) or either side of (``both``) the nodes
        ``idxs`` whose |weight| is at least ``min_abs_weight``."""
        found: dict[int, tuple[int, int, float]] = {}
        wanted = sorted(set(idxs))
        for side in {IN: (IN,), OUT: (OUT,), BOTH: (OUT, IN)}[direction]:
            for i, s, t, w in self._links_on_side(gid, wanted, min_abs_weight, side):
                found[i] = (s, t, w)
        return LinkSet.of(list(found.values()))

    # --- primitives: each store answers these in its own query language ------------------------

    @abstractmethod
    def _stored_feature_edges(self, gids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """The stored parts (see :meth:`FeatureEdges.from_parts`) of the graphs of ``gids`` that have them."""

    @abstractmethod
    def _graphs_with_feature_edges(self, gids: Sequence[int]) -> set[int]:
        """Those of ``gids`` whose feature edges are stored."""

    @abstractmethod
    def _graph_feature_ids(self, gids: Sequence[int]) -> Iterable[tuple[int, Iterable[int]]]:
        """(gid, feature ids) of the graphs ``gids``; a graph may come several times, a feature repeat."""

    @abstractmethod
    def _feature_position_rows(self, keys: Sequence[tuple[int, int]]) -> Iterable[tuple[int, int, int]]:
        """(gid, fid, ctx_idx) of the nodes of at least the features of ``keys`` in their graphs
        (rows of other pairs may come along; they are left out above)."""

    @abstractmethod
    def _link_rows_between(self, pairs: Sequence[tuple[int, int, int]]) -> Iterable[tuple[int, int, int, float]]:
        """(gid, src, tgt, weight) of every link src -> tgt of the (gid, src idx, tgt idx) ``pairs``,
        those of one pair in file order."""

    @abstractmethod
    def _input_total_rows(self, nodes: Sequence[tuple[int, int]]) -> Iterable[tuple[int, int, float | None]]:
        """(gid, idx, input total) of the nodes of ``nodes`` that exist."""

    @abstractmethod
    def _links_on_side(self, gid: int, idxs: Sequence[int], min_abs_weight: float, side: str) -> Iterable[tuple[int, int, int, float]]:
        """(link idx, src, tgt, weight) of the links out of (``out``) or into (``in``) the nodes
        ``idxs`` with |weight| >= ``min_abs_weight``."""

    @abstractmethod
    def save_feature_edges(self, edges: FeatureEdges) -> bool:
        """Store (replace) a graph's feature edges; False, storing nothing, if the graph is gone."""

    @abstractmethod
    def graph_skeleton(self, gid: int) -> Skeleton:
        """Every node (SKELETON_COLUMNS) and link of graph ``gid``; NotFoundError if it has none."""

    @abstractmethod
    def _chains(self, gids: Sequence[int], steps: Sequence[Step], top: int | None, floors: Mapping[int, float] | None = None) -> Iterable[ChainMatch]:
        """The chains of :meth:`chains` (``gids`` sorted and distinct, ``steps`` not empty), in any order."""

    @abstractmethod
    def _chain_groups(self, gids: Sequence[int], steps: Sequence[Step], at: Sequence[int]) -> Iterable[ChainGroup]:
        """The groups of :meth:`chain_groups` (``gids`` sorted and distinct, ``steps`` not empty), in any order."""

    def _chains_and_groups(
        self, gids: Sequence[int], steps: Sequence[Step], at: Sequence[int], top: int | None
    ) -> tuple[Iterable[ChainMatch], Iterable[ChainGroup]]:
        """The chains and groups of :meth:`chains_and_groups`, in any order; by default two passes."""
        return self._chains(gids, steps, top), self._chain_groups(gids, steps, at)

    @abstractmethod
    def describe_nodes(self, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], ChainNode]:
        """The ChainNode of each (gid, idx) that exists."""

    @abstractmethod
    def top_nodes(self, gid: int, n: int) -> list[int]:
        """The idx of the ``n`` nodes with the smallest influence (most important), ties by idx.

        Nodes without an influence (logits) are not ranked.
        """

    @abstractmethod
    def node_rows(self, gid: int, idxs: Sequence[int]) -> list[dict[str, Any]]:
        """The stored rows (dicts of NODE_COLUMNS) of those nodes, sorted by idx."""

    @abstractmethod
    def find_nodes(self, gid: int, node_id: str) -> list[int]:
        """The idx of the nodes of graph ``gid`` called ``node_id`` (several when ids collide), sorted."""

    @abstractmethod
    def logit_nodes(self, gid: int) -> list[int]:
        """The idx of the logit nodes of graph ``gid``, sorted."""

    @abstractmethod
    def links_among(self, gid: int, idxs: Sequence[int]) -> LinkSet:
        """The links whose source and target are both among ``idxs``."""
