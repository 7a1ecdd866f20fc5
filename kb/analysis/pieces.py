"""Big graphs in pieces: a part of one graph, read from the store without loading the whole graph.

Two kinds of piece, each returned as graph JSON that circuit-tracer's and Neuronpedia's viewers
load (nodes as the file had them, links among the piece's nodes):

- the top N nodes by influence (the file's cumulative-influence rank: smaller is more important),
  plus the graph's logit nodes, which have no influence, with every link among them;
- the k-hop neighbourhood of a node: the nodes reached from it in at most k steps along links of
  |weight| >= a threshold (downstream, upstream or both), with every such link among them, up to
  ``max_nodes`` nodes (closest hops first, then strongest links).

Each store answers with indexed lookups and limits (a graph's nodes by influence; a node's links
by source or target), so the cost depends on the size of the piece, not of the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from kb.analysis.features import one_graph
from kb.analysis.qk import qk_only_nodes_of_piece
from kb.core import Core
from kb.errors import CircuitKBError, NotFoundError
from kb.export import node_json
from kb.stores.circuit_queries import BOTH, IN, OUT, LinkSet


DIRECTIONS = {"down": OUT, "up": IN, "both": BOTH}
MAX_PIECE_NODES = 20_000


@dataclass
class Piece:
    """A piece of a graph: ``doc`` is graph JSON; ``nodes`` the idx of its nodes."""

    slug: str
    nodes: list[int]
    links: LinkSet
    doc: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return self.doc


def top_piece(kb: Core, slug: str, n: int, *, include_logits: bool = True) -> Piece:
    """The ``n`` most influential nodes of graph ``slug`` (plus its logits) and the links among them."""
    if not 1 <= n <= MAX_PIECE_NODES:
        raise CircuitKBError(f"n must be between 1 and {MAX_PIECE_NODES}, got {n}")
    graph = one_graph(kb, slug)
    chosen = list(kb.store.top_nodes(graph.gid, n))
    if include_logits:
        chosen += kb.store.logit_nodes(graph.gid)
    chosen = sorted(set(chosen))
    links = kb.store.links_among(graph.gid, chosen)
    return _piece(kb, slug, graph.gid, chosen, links, {"kind": "top", "n": n, "include_logits": include_logits})


def neighbourhood_piece(
    kb: Core,
    slug: str,
    node: str | int,
    *,
    hops: int = 1,
    min_abs_weight: float = 0.0,
    direction: str = "both",
    max_nodes: int = 500,
) -> Piece:
    """The nodes within ``hops`` links of ``node`` (a node_id, or an idx) along links with
    |weight| >= ``min_abs_weight``, in ``direction`` ("down": what it drives, "up": what feeds it,
    "both"), at most ``max_nodes`` of them, with the qualifying links among them."""
    if direction not in DIRECTIONS:
        raise CircuitKBError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if hops < 0 or not 1 <= max_nodes <= MAX_PIECE_NODES:
        raise CircuitKBError(f"hops must be >= 0 and max_nodes between 1 and {MAX_PIECE_NODES}")
    graph = one_graph(kb, slug)
    start = _node_index(kb, graph.gid, slug, node)
    side = DIRECTIONS[direction]
    reached = {start}
    frontier = [start]
    for _ in range(hops):
        if not frontier or len(reached) >= max_nodes:
            break
        around = kb.store.links_around(graph.gid, frontier, min_abs_weight, side)
        candidates: dict[int, float] = {}
        in_frontier = set(frontier)
        for s, t, w in zip(around.src.tolist(), around.tgt.tolist(), around.weight.tolist()):
            for near, far in ((s, t), (t, s)):
                if near in in_frontier and far not in reached:
                    if side == OUT and far != t or side == IN and far != s:
                        continue
                    candidates[far] = max(candidates.get(far, 0.0), abs(w))
        room = max_nodes - len(reached)
        ordered = sorted(candidates, key=lambda i: (-candidates[i], i))[:room]
        reached.update(ordered)
        frontier = sorted(ordered)
    chosen = sorted(reached)
    among = kb.store.links_among(graph.gid, chosen)
    strong = [i for i, w in enumerate(among.weight.tolist()) if abs(w) >= min_abs_weight]
    links = LinkSet(among.src[strong], among.tgt[strong], among.weight[strong])
    info = {"kind": "neighbourhood", "node": str(node), "hops": hops, "min_abs_weight": min_abs_weight, "direction": direction, "max_nodes": max_nodes}
    return _piece(kb, slug, graph.gid, chosen, links, info)


def _node_index(kb: Core, gid: int, slug: str, node: str | int) -> int:
    if isinstance(node, int):
        if not kb.store.node_rows(gid, [node]):
            raise NotFoundError(f"graph {slug!r} has no node number {node}")
        return node
    found = kb.store.find_nodes(gid, node)
    if not found:
        raise NotFoundError(f"graph {slug!r} has no node {node!r}")
    if len(found) > 1:
        raise CircuitKBError(f"several nodes of {slug!r} are called {node!r} (idx {', '.join(map(str, found))}); name one by its idx")
    return found[0]


def _piece(kb: Core, slug: str, gid: int, chosen: Sequence[int], links: LinkSet, info: dict[str, Any]) -> Piece:
    rows = kb.store.node_rows(gid, chosen)
    node_ids = {r["idx"]: r["node_id"] for r in rows}
    registry_row = kb.graph_row(slug)
    metadata = dict(registry_row.metadata or {})
    metadata["slug"] = f"{slug}--{info['kind']}"
    metadata["circuitkb_piece"] = {"source_slug": slug, **info, "n_nodes": len(rows), "n_links": len(links)}
    present = set(node_ids.values())
    qparams = dict(registry_row.qparams or {})
    if "pinnedIds" in qparams:
        qparams["pinnedIds"] = [i for i in qparams["pinnedIds"] or [] if i in present]
    if "supernodes" in qparams:
        groups = [[g[0], *[i for i in g[1:] if i in present]] for g in qparams["supernodes"] or [] if g]
        qparams["supernodes"] = [g for g in groups if len(g) > 1]
    doc = {
        "metadata": metadata,
        "qParams": qparams,
        "nodes": [node_json(r) for r in rows],
        "links": [{"source": node_ids[s], "target": node_ids[t], "weight": w} for s, t, w in zip(links.src.tolist(), links.tgt.tolist(), links.weight.tolist())],
    }
    qk_only = qk_only_nodes_of_piece(kb, gid, doc["nodes"], registry_row.extra)  # QK contributors left out of the piece
    if qk_only:
        doc["qk_only_nodes"] = qk_only
    return Piece(slug, list(chosen), links, doc)
