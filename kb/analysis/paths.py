"""The strongest paths of one graph, from the features at a prompt token to the answer.

Paths are scored as chains are (see :mod:`kb.analysis.chains`): the product of each link's share
of its target's input. A graph without a marked target logit falls back to its most probable logit.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ingest.records import FeatureKey
from kb.analysis.features import feature_dict, feature_keys, one_graph
from kb.analysis.tokens import token_positions
from kb.core import Core
from kb.errors import CircuitKBError
from kb.selection import GraphInfo
from kb.stores.circuit_queries import Skeleton


@dataclass(frozen=True)
class PathNode:
    """A node on a path, as a reader needs it."""

    idx: int
    node_id: str
    kind: str
    layer: str
    ctx_idx: int
    token: str | None
    feature: FeatureKey | None
    clerp: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "kind": self.kind,
            "layer": self.layer,
            "ctx_idx": self.ctx_idx,
            "token": self.token,
            "feature": feature_dict(self.feature) if self.feature else None,
            "clerp": self.clerp or None,
        }


def _path_node(row: Mapping[str, Any], graph: GraphInfo, keys: Mapping[int, FeatureKey]) -> PathNode:
    pos = int(row["ctx_idx"])
    fid = row.get("feature_id")
    fid = None if fid is None or pd.isna(fid) or fid < 0 else int(fid)
    return PathNode(
        idx=int(row["idx"]),
        node_id=row["node_id"],
        kind=row["kind"],
        layer=str(row["layer"]),
        ctx_idx=pos,
        token=graph.prompt_tokens[pos] if 0 <= pos < len(graph.prompt_tokens) else None,
        feature=keys.get(fid) if fid is not None else None,
        clerp=row.get("clerp") or None,
    )


def link_shares(skeleton: Skeleton) -> np.ndarray:
    """Each link's share of its target's input: |w| / sum of |w| into the target."""
    n = int(skeleton.nodes.index.max()) + 1 if len(skeleton.nodes) else 0
    totals = np.zeros(n)
    np.add.at(totals, skeleton.link_tgt, np.abs(skeleton.link_weight))
    denominators = totals[skeleton.link_tgt]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominators > 0, np.abs(skeleton.link_weight) / denominators, 0.0)


def best_paths(
    link_src: np.ndarray,
    link_tgt: np.ndarray,
    shares: np.ndarray,
    sources: Iterable[int],
    targets: Iterable[int],
    top: int,
    max_hops: int,
) -> list[tuple[float, tuple[int, ...], tuple[int, ...]]]:
    """The ``top`` paths (at most ``max_hops`` links) from a source to a target with the highest
    product of shares: (score, node idxs, link positions), best first, ties by node idxs.

    Best-first search over (node, hops) states, each settled at most ``top`` times; shares are at
    most 1, so a path's score never grows as it extends and the first paths to reach a target are
    the best.
    """
    out_links: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
    for i, (s, t, share) in enumerate(zip(link_src.tolist(), link_tgt.tolist(), shares.tolist())):
        if share > 0:
            out_links[s].append((t, share, i))
    wanted = set(targets)
    heap: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = [(-1.0, (s,), ()) for s in sorted(set(sources))]
    heapq.heapify(heap)
    settled: dict[tuple[int, int], int] = defaultdict(int)
    found: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = []
    while heap and len(found) < top:
        negative, nodes, used = heapq.heappop(heap)
        node = nodes[-1]
        if used and node in wanted:
            found.append((-negative, nodes, used))
            continue
        state = (node, len(used))
        if settled[state] >= top or len(used) >= max_hops:
            continue
        settled[state] += 1
        for target, share, i in out_links.get(node, ()):
            if target not in nodes:
                heapq.heappush(heap, (negative * share, nodes + (target,), used + (i,)))
    found.sort(key=lambda f: (-f[0], f[1]))
    return found


@dataclass(frozen=True)
class CircuitPath:
    """A path of links; ``score`` is the product of the links' shares."""

    score: float
    nodes: tuple[PathNode, ...]
    weights: tuple[float, ...]
    shares: tuple[float, ...]

    @property
    def sign(self) -> int:
        """+1 if the path excites the answer (an even number of negative links), else -1."""
        return -1 if sum(1 for w in self.weights if w < 0) % 2 else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "sign": self.sign,
            "nodes": [n.as_dict() for n in self.nodes],
            "links": [{"weight": w, "share": s} for w, s in zip(self.weights, self.shares)],
        }


@dataclass
class StrongestPaths:
    """The strongest paths of one graph from the features at ``positions`` to ``target``."""

    graph: GraphInfo
    positions: tuple[int, ...]
    target: PathNode | None
    paths: list[CircuitPath]

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.graph.slug,
            "positions": list(self.positions),
            "tokens": [self.graph.prompt_tokens[p] for p in self.positions],
            "target": self.target.as_dict() if self.target else None,
            "paths": [p.as_dict() for p in self.paths],
        }

    def frame(self) -> pd.DataFrame:
        """One row per path: rank, score, sign, hops and the path as text."""
        rows = [
            (rank, p.score, p.sign, len(p.weights), " -> ".join(_short(n) for n in p.nodes))
            for rank, p in enumerate(self.paths, start=1)
        ]
        return pd.DataFrame(rows, columns=["rank", "score", "sign", "hops", "path"])


def strongest_paths(
    kb: Core,
    slug: str,
    *,
    token: str | None = None,
    position: int | None = None,
    top: int = 5,
    max_hops: int = 6,
    include_embedding: bool = False,
) -> StrongestPaths:
    """The ``top`` strongest paths from the feature nodes at a prompt token to the target logit.

    Paths of at most ``max_hops`` links, scored by the product of each link's share of its
    target's input; ``include_embedding`` also starts paths at the token's embedding node.
    """
    if top < 1 or max_hops < 1:
        raise CircuitKBError("top and max_hops must be at least 1")
    graph = one_graph(kb, slug)
    positions = token_positions(graph, token=token, position=position)
    skeleton = kb.store.graph_skeleton(graph.gid)
    nodes = skeleton.nodes
    at = nodes["ctx_idx"].isin(positions)
    kinds = ["feature", "embedding"] if include_embedding else ["feature"]
    sources = nodes.index[at & nodes["kind"].isin(kinds)].tolist()
    targets = target_logits(skeleton)
    shares = link_shares(skeleton)
    found = best_paths(skeleton.link_src, skeleton.link_tgt, shares, sources, targets, top, max_hops)
    involved = {i for _, path, _ in found for i in path} | set(targets)
    keys = feature_keys(kb, [int(f) for f in nodes.loc[sorted(involved), "feature_id"] if f >= 0])
    described = {i: _path_node(nodes.loc[i].to_dict(), graph, keys) for i in involved}
    paths = [
        CircuitPath(
            score,
            tuple(described[i] for i in path),
            tuple(float(skeleton.link_weight[i]) for i in used),
            tuple(float(shares[i]) for i in used),
        )
        for score, path, used in found
    ]
    return StrongestPaths(graph, positions, described[targets[0]] if targets else None, paths)


def target_logits(skeleton: Skeleton) -> list[int]:
    """The target logit nodes; the most probable logit when none is marked."""
    nodes = skeleton.nodes
    marked = nodes.index[nodes["is_target_logit"]].tolist()
    if marked:
        return marked
    logits = nodes[nodes["kind"] == "logit"]
    if logits.empty:
        return []
    return [int(logits["token_prob"].fillna(-1.0).idxmax())]


def _short(node: PathNode) -> str:
    if node.feature is not None:
        label = f" {node.clerp!r}" if node.clerp else ""
        return f"L{node.feature.layer}/{node.feature.index}@{node.ctx_idx}{label}"
    return node.clerp or node.node_id
