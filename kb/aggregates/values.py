"""What one graph adds to the aggregates: its features' values, its feature edges and its groups
of two-step paths into the target logit (:mod:`.paths`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ingest.records import FeatureKey, ParsedGraph
from kb.aggregates.paths import PathGroups, path_groups
from kb.runs import runs
from kb.stores.base import node_input_totals
from kb.stores.circuit_queries import FeatureEdges, Skeleton, fold_parsed_graph, fold_skeleton


@dataclass(frozen=True)
class GraphValues:
    """Graph ``gid``'s features (sorted distinct ids) with the strongest activation and the best
    (smallest) influence of each one's nodes (NaN where none of its nodes has one), and its
    feature edges, folded as every store folds them, and its path groups."""

    gid: int
    fids: np.ndarray  # int64
    activation: np.ndarray  # float64
    influence: np.ndarray  # float64
    edges: FeatureEdges
    paths: PathGroups

    def feature_rows(self) -> list[tuple[int, int, float | None, float | None]]:
        """(feature_id, graph_id, activation, influence) as stored, None for NaN."""
        return [
            (fid, self.gid, _none(act), _none(infl))
            for fid, act, infl in zip(self.fids.tolist(), self.activation.tolist(), self.influence.tolist())
        ]

    def edge_rows(self, start: int = 0, stop: int | None = None) -> list[tuple[int, int, int, float, int]]:
        """(src, tgt, graph_id, weight, n_links) as stored, of the edges ``start`` to ``stop`` (all by default)."""
        e, part = self.edges, slice(start, stop)
        return [(s, t, self.gid, w, n) for s, t, w, n in zip(e.src[part].tolist(), e.tgt[part].tolist(), e.weight[part].tolist(), e.n_links[part].tolist())]


def of_parsed_graph(gid: int, graph: ParsedGraph, feature_ids: Mapping[FeatureKey, int]) -> GraphValues:
    """The values of a parsed graph that is being stored as ``gid``."""
    nodes = [n for n in graph.nodes if n.feature_key is not None]
    fids = np.array([feature_ids[n.feature_key] for n in nodes], dtype=np.int64)  # type: ignore[index]
    activation = np.array([_nan(n.activation) for n in nodes], dtype=np.float64)
    influence = np.array([_nan(n.influence) for n in nodes], dtype=np.float64)
    every = graph.nodes
    paths = path_groups(
        gid,
        np.array([n.kind for n in every], dtype=object),
        np.array([n.ctx_idx for n in every], dtype=np.int64),
        np.array([-1 if n.feature_key is None else feature_ids[n.feature_key] for n in every], dtype=np.int64),
        np.array([n.is_target_logit is True for n in every], dtype=bool),
        node_input_totals(graph),
        graph.link_src,
        graph.link_tgt,
        graph.link_weight,
    )
    return _values(gid, fids, activation, influence, fold_parsed_graph(gid, graph, feature_ids), paths)


def of_skeleton(skeleton: Skeleton) -> GraphValues:
    """The values of a stored graph, read back from its store."""
    nodes = skeleton.nodes[skeleton.nodes["feature_id"] >= 0]
    return _values(
        skeleton.gid,
        nodes["feature_id"].to_numpy(dtype=np.int64),
        nodes["activation"].to_numpy(dtype=np.float64),
        nodes["influence"].to_numpy(dtype=np.float64),
        fold_skeleton(skeleton),
        skeleton_path_groups(skeleton),
    )


def skeleton_path_groups(skeleton: Skeleton) -> PathGroups:
    """The path groups of a stored graph; input totals summed from its links in file order, as at ingest."""
    nodes = skeleton.nodes
    size = int(nodes.index.max()) + 1 if len(nodes) else 0
    idx = nodes.index.to_numpy()

    def by_idx(column: str, fill: object, dtype: object) -> np.ndarray:
        out = np.full(size, fill, dtype=dtype)
        out[idx] = nodes[column].to_numpy()
        return out

    totals = np.zeros(size, dtype=np.float64)
    np.add.at(totals, skeleton.link_tgt.astype(np.intp), np.abs(skeleton.link_weight))
    return path_groups(
        skeleton.gid,
        by_idx("kind", "", object),
        by_idx("ctx_idx", 0, np.int64),
        by_idx("feature_id", -1, np.int64),
        by_idx("is_target_logit", False, bool),
        totals,
        skeleton.link_src,
        skeleton.link_tgt,
        skeleton.link_weight,
    )


def _values(gid: int, node_fids: np.ndarray, activation: np.ndarray, influence: np.ndarray, edges: FeatureEdges, paths: PathGroups) -> GraphValues:
    """Fold node values per feature: fmax / fmin leave NaN out unless a feature has nothing else."""
    if len(node_fids) == 0:
        empty = np.empty(0, dtype=np.float64)
        return GraphValues(gid, np.empty(0, dtype=np.int64), empty, empty, edges, paths)
    order = np.argsort(node_fids, kind="stable")
    fids = node_fids[order]
    starts, _ = runs(fids)
    return GraphValues(
        gid,
        fids[starts],
        np.fmax.reduceat(activation[order], starts),
        np.fmin.reduceat(influence[order], starts),
        edges,
        paths,
    )


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _none(value: float) -> float | None:
    return None if value != value else value  # NaN is the one value unequal to itself
