"""One attribution graph as a viewer draws it, in a bounded piece, and one node's details.

A viewer never receives a whole big graph. :func:`graph_view` reads a piece from the store (the
``top`` most influential nodes, the logits, the file's pinned nodes and the neighbourhoods of the
nodes asked to be expanded), prunes it like circuit-tracer's viewer (nodes by their cumulative
influence rank, links by their share of the target's input) and keeps at most ``max_links``
links, the strongest shares first. Its cost depends on the size of the piece, not of the graph.

A link's *share* is its weight over the sum of |weight| of every link into its target in the
whole graph (not only in the piece): the fraction of the target's input it carries, signed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import select

from ingest.records import FeatureKey
from kb import registry
from kb.analysis.features import feature_keys, one_graph
from kb.errors import CircuitKBError, NotFoundError
from kb.featureref import format_feature_ref
from kb.selection import GraphInfo
from kb.stores.circuit_queries import BOTH, IN, OUT
from schema.sql import labels

if TYPE_CHECKING:
    from kb.core import Core

MAX_VIEW_LINKS = 3000
MAX_TOP = 2000
EXPAND_NODES = 40  # neighbours added per expanded node, the strongest links first

NODE_COLUMNS = (
    "idx", "node_id", "kind", "feature_type", "layer", "layer_num", "ctx_idx", "feature", "clerp",
    "influence", "activation", "token_prob", "pinned", "supernode", "labels",
)  # fmt: skip
LINK_COLUMNS = ("src", "tgt", "weight", "share")
NEIGHBOUR_COLUMNS = ("idx", "node_id", "kind", "layer", "ctx_idx", "feature", "clerp", "weight", "share")


@dataclass
class GraphView:
    """A piece of graph ``graph`` ready to draw.

    ``nodes`` (NODE_COLUMNS; ``feature`` is the reference ``set/Llayer/index`` or None,
    ``labels`` the labels people wrote for the feature, joined by "; ") and ``links``
    (LINK_COLUMNS, src/tgt are node idx) are what is drawn. ``n_layers`` is the model's number
    of layers as the logits' layer says it; ``n_nodes``/``n_links`` are the whole graph's
    sizes; ``n_links_piece`` the links among the piece's nodes before pruning and the cap;
    ``capped`` tells whether ``max_links`` cut some of those that passed the threshold.
    """

    graph: GraphInfo
    nodes: pd.DataFrame
    links: pd.DataFrame
    n_layers: int
    n_nodes: int
    n_links: int
    n_links_piece: int
    capped: bool
    pinned: list[str] = field(default_factory=list)
    supernodes: list[tuple[str, list[str]]] = field(default_factory=list)


def graph_view(
    kb: "Core",
    slug: str,
    *,
    top: int = 200,
    expand: Sequence[str] = (),
    node_threshold: float | None = None,
    edge_threshold: float = 0.0,
    max_links: int = MAX_VIEW_LINKS,
) -> GraphView:
    """The piece of graph ``slug`` to draw; see the module docstring.

    ``expand`` names nodes (node_ids) whose strongest neighbours join the piece; they, the
    pinned nodes and the logits are kept whatever ``node_threshold`` says. ``node_threshold``
    drops nodes whose influence (cumulative rank, 0..1, smaller is more important) is above it;
    ``edge_threshold`` drops links whose |share| is below it.
    """
    if not 1 <= top <= MAX_TOP:
        raise CircuitKBError(f"the number of nodes must be between 1 and {MAX_TOP}, got {top}")
    if not 1 <= max_links <= 100_000:
        raise CircuitKBError(f"max_links must be between 1 and 100000, got {max_links}")
    if node_threshold is not None and not 0.0 <= node_threshold <= 1.0:
        raise CircuitKBError(f"the node threshold is a cumulative influence between 0 and 1, got {node_threshold}")
    if not 0.0 <= edge_threshold <= 1.0:
        raise CircuitKBError(f"the edge threshold is a share between 0 and 1, got {edge_threshold}")
    graph = one_graph(kb, slug)
    gid = graph.gid
    row = kb.graph_row(slug)
    qparams = row.qparams or {}
    pinned = [p for p in qparams.get("pinnedIds") or [] if isinstance(p, str)]
    supernodes = [(str(g[0]), [m for m in g[1:] if isinstance(m, str)]) for g in qparams.get("supernodes") or [] if isinstance(g, list) and g]

    logits = set(kb.store.logit_nodes(gid))
    chosen = set(kb.store.top_nodes(gid, top)) | logits
    kept = set(logits)
    for node_id in pinned:
        found = kb.store.find_nodes(gid, node_id)
        chosen.update(found)
        kept.update(found)
    for node_id in expand:
        start = resolve_node(kb, gid, slug, node_id)
        around = kb.store.links_around(gid, [start], 0.0, BOTH)
        strength: dict[int, float] = defaultdict(float)
        for s, t, w in zip(around.src.tolist(), around.tgt.tolist(), around.weight.tolist()):
            strength[t if s == start else s] = max(strength[t if s == start else s], abs(w))
        strength.pop(start, None)
        near = sorted(strength, key=lambda i: (-strength[i], i))[:EXPAND_NODES]
        chosen.update([start, *near])
        kept.update([start, *near])

    rows = kb.store.node_rows(gid, sorted(chosen))
    if node_threshold is not None:
        rows = [r for r in rows if r["idx"] in kept or r["influence"] is None or r["influence"] <= node_threshold]
    idxs = [r["idx"] for r in rows]
    among = kb.store.links_among(gid, idxs)
    totals = kb.store.input_totals([(gid, t) for t in sorted(set(among.tgt.tolist()))])
    denominators = np.array([totals.get((gid, t), 0.0) for t in among.tgt.tolist()], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(denominators > 0, among.weight / denominators, 0.0)
    passing = np.flatnonzero(np.abs(shares) >= edge_threshold)
    capped = len(passing) > max_links
    if capped:
        strongest = np.argsort(-np.abs(shares[passing]), kind="stable")[:max_links]
        passing = np.sort(passing[strongest])
    links = pd.DataFrame(
        {"src": among.src[passing], "tgt": among.tgt[passing], "weight": among.weight[passing], "share": shares[passing]},
        columns=list(LINK_COLUMNS),
    )
    nodes = _node_frame(kb, rows, set(pinned), supernodes)
    logit_layers = [r["layer_num"] for r in rows if r["kind"] == "logit"]
    feature_layers = [r["layer_num"] for r in rows if r["kind"] not in ("logit", "embedding")]
    n_layers = max(logit_layers) - 1 if logit_layers else (max(feature_layers, default=-1) + 1)
    return GraphView(
        graph=graph,
        nodes=nodes,
        links=links,
        n_layers=n_layers,
        n_nodes=int(row.n_nodes or 0),
        n_links=int(row.n_links or 0),
        n_links_piece=len(among),
        capped=capped,
        pinned=pinned,
        supernodes=supernodes,
    )


def known_nodes(kb: "Core", slug: str, node_ids: Sequence[str]) -> list[str]:
    """Those of ``node_ids`` that graph ``slug`` has, in the order given."""
    gid = one_graph(kb, slug).gid
    return [n for n in node_ids if kb.store.find_nodes(gid, n)]


def resolve_node(kb: "Core", gid: int, slug: str, node_id: str) -> int:
    """The idx of node ``node_id`` of graph ``gid``; the first one when the file's ids collide."""
    found = kb.store.find_nodes(gid, node_id)
    if not found:
        raise NotFoundError(f"graph {slug!r} has no node {node_id!r}")
    return found[0]


def _node_frame(kb: "Core", rows: Sequence[dict[str, Any]], pinned: set[str], supernodes: list[tuple[str, list[str]]]) -> pd.DataFrame:
    keys = feature_keys(kb, {r["feature_id"] for r in rows if r["feature_id"] is not None})
    written = labels_by_feature(kb, keys)
    group_of: dict[str, str] = {}
    for label, members in supernodes:
        for member in members:
            group_of.setdefault(member, label)
    records = []
    for r in rows:
        key = keys.get(r["feature_id"]) if r["feature_id"] is not None else None
        records.append(
            (
                r["idx"], r["node_id"], r["kind"], r["feature_type"], r["layer"], r["layer_num"], r["ctx_idx"],
                format_feature_ref(key) if key else None, r["clerp"] or "", r["influence"], r["activation"], r["token_prob"],
                r["node_id"] in pinned, group_of.get(r["node_id"]), "; ".join(written.get(key, [])) if key else "",
            )
        )  # fmt: skip
    return pd.DataFrame(records, columns=list(NODE_COLUMNS))


def labels_by_feature(kb: "Core", keys: dict[int, FeatureKey]) -> dict[FeatureKey, list[str]]:
    """The texts of the labels people wrote for each feature (``keys``: feature id -> key), oldest first."""
    out: dict[FeatureKey, list[str]] = defaultdict(list)
    fids = sorted(keys)
    with kb.engine.connect() as conn:
        for start in range(0, len(fids), 900):
            chunk = fids[start : start + 900]
            query = select(labels.c.feature_id, labels.c.text).where(labels.c.feature_id.in_(chunk)).order_by(labels.c.created_at, labels.c.id)
            for fid, text in conn.execute(query):
                out[keys[fid]].append(text)
    return dict(out)


@dataclass
class NodeDetails:
    """One node of a graph: its stored row, its feature, and its strongest neighbours.

    ``inputs`` (NEIGHBOUR_COLUMNS): the links into the node, ``share`` = weight / the sum of
    |weight| into this node; ``outputs``: the links out of it, ``share`` = weight / the sum of
    |weight| into *that target*. Both sorted by |share|, strongest first, ``top`` of each.
    ``input_total`` is the sum of |weight| into the node; ``n_inputs``/``n_outputs`` count all links.
    """

    slug: str
    node: dict[str, Any]
    feature: FeatureKey | None
    labels: list[str]
    inputs: pd.DataFrame
    outputs: pd.DataFrame
    input_total: float
    n_inputs: int
    n_outputs: int
    ambiguous: bool


def node_details(kb: "Core", slug: str, node_id: str, *, top: int = 10) -> NodeDetails:
    """Details of node ``node_id`` of graph ``slug``; see :class:`NodeDetails`."""
    if top < 1:
        raise CircuitKBError(f"top must be at least 1, got {top}")
    graph = one_graph(kb, slug)
    gid = graph.gid
    found = kb.store.find_nodes(gid, node_id)
    if not found:
        raise NotFoundError(f"graph {slug!r} has no node {node_id!r}")
    idx = found[0]
    row = kb.store.node_rows(gid, [idx])[0]
    into = kb.store.links_around(gid, [idx], 0.0, IN)
    out_of = kb.store.links_around(gid, [idx], 0.0, OUT)
    totals = kb.store.input_totals([(gid, t) for t in {idx, *out_of.tgt.tolist()}])
    input_total = totals[(gid, idx)]
    in_shares = into.weight / input_total if input_total > 0 else np.zeros(len(into))
    out_den = np.array([totals.get((gid, t), 0.0) for t in out_of.tgt.tolist()], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out_shares = np.where(out_den > 0, out_of.weight / out_den, 0.0)
    in_best = np.argsort(-np.abs(in_shares), kind="stable")[:top]
    out_best = np.argsort(-np.abs(out_shares), kind="stable")[:top]
    others = sorted({int(into.src[i]) for i in in_best} | {int(out_of.tgt[i]) for i in out_best})
    other_rows = {r["idx"]: r for r in kb.store.node_rows(gid, others)}
    fids = {r["feature_id"] for r in [row, *other_rows.values()] if r["feature_id"] is not None}
    keys = feature_keys(kb, fids)
    feature = keys.get(row["feature_id"]) if row["feature_id"] is not None else None
    written = labels_by_feature(kb, {fid: k for fid, k in keys.items() if k == feature}) if feature else {}

    def frame(picks: Iterable[int], ends: np.ndarray, weights: np.ndarray, shares: np.ndarray) -> pd.DataFrame:
        records = []
        for i in picks:
            other = other_rows[int(ends[i])]
            key = keys.get(other["feature_id"]) if other["feature_id"] is not None else None
            records.append(
                (other["idx"], other["node_id"], other["kind"], other["layer"], other["ctx_idx"], format_feature_ref(key) if key else None, other["clerp"] or "", float(weights[i]), float(shares[i]))
            )
        return pd.DataFrame(records, columns=list(NEIGHBOUR_COLUMNS))

    return NodeDetails(
        slug=slug,
        node=row,
        feature=feature,
        labels=written.get(feature, []) if feature else [],
        inputs=frame(in_best, into.src, into.weight, in_shares),
        outputs=frame(out_best, out_of.tgt, out_of.weight, out_shares),
        input_total=input_total,
        n_inputs=len(into),
        n_outputs=len(out_of),
        ambiguous=len(found) > 1,
    )


def feature_node(kb: "Core", slug: str, key: FeatureKey, positions: Sequence[int]) -> str | None:
    """The node_id of feature ``key`` in graph ``slug`` with the largest activation, among its
    nodes at ``positions``; None when the graph has none there.

    Nodes are looked up by the ids graph files give features (``{layer}_{index}_{pos}``, or
    ``{layer}_cro_{index}_{pos}`` from Neuronpedia's converter), an indexed lookup each.
    """
    graph = one_graph(kb, slug)
    fids = set(feature_keys_of(kb, [key]))
    found: list[int] = []
    for pos in positions:
        for node_id in (f"{key.layer}_{key.index}_{pos}", f"{key.layer}_cro_{key.index}_{pos}"):
            found += kb.store.find_nodes(graph.gid, node_id)
    rows = [r for r in kb.store.node_rows(graph.gid, sorted(set(found))) if r["feature_id"] in fids]
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["activation"] if r["activation"] is not None else float("-inf"), -r["idx"]))
    return best["node_id"]


def feature_keys_of(kb: "Core", keys: Sequence[FeatureKey]) -> dict[int, FeatureKey]:
    """The SQL ids of those features that are stored (id -> key)."""
    with kb.engine.connect() as conn:
        return {fid: k for k, fid in registry.lookup_features(conn, list(keys)).items()}
