"""Comparing graphs: two graphs aligned node by node, and a similarity matrix for many.

Two graphs are aligned by *node key*:

- a feature node by its feature (transcoder set, layer, index): its nodes at every position fold
  into one (activation: the largest; influence: the smallest, most important; positions listed);
  a Lorsa (attention) feature is a feature of its own set, like any other;
- an embedding by its token text and position, a logit by its token text, an error node by its
  layer, position and sublayer (an MLP reconstruction error and a Lorsa error of the same layer
  and position are two keys); a bias leaf by its layer, position and kind (``mlp_bout``); a node
  of another kind (``unknown``, a type newer than this code) by its type, layer, position and
  node_id without the position. When the prompts have different lengths, positions count from
  the end (-1 is the last token), so the final tokens of the two prompts line up.

Only features and feature-to-feature edges enter the summary; error, bias and other nodes are
listed in ``nodes`` and ``edges`` and never count as features.

An edge joins two node keys; its weight in a graph is the sum of the weights of the links
between their nodes (as in :mod:`kb.analysis.edges`). The summary compares features and
feature-to-feature edges:

- Jaccard of features and of feature edges: |A and B| / |A or B|;
- weighted overlap: the weighted Jaccard (sum of minima over sum of maxima) of the two graphs'
  feature-edge weights, each edge's |weight| taken as a fraction of its graph's total; an edge
  counts as shared only when it has the same sign in both graphs;
- rank correlation of influence: Spearman's rho between the two graphs' influence of their
  shared features (None with fewer than three shared features).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ingest.records import ATTENTION_TYPES, FeatureKey
from kb import sqlqueries
from kb.aggregates import reads as aggregates
from kb.analysis.features import FEATURE_COLUMNS, chosen_graphs, feature_keys
from kb.core import Core
from kb.cycles import paused_cycle_collection
from kb.errors import CircuitKBError, NotFoundError
from kb.runs import runs
from kb.selection import GraphInfo, Selection
from kb.stores.circuit_queries import FeatureEdges, Skeleton


NodeKey = tuple[Any, ...]

# one row per node key of either graph (a stored node's columns are kb.stores.base.NODE_COLUMNS)
COMPARED_NODE_COLUMNS = (
    "key",
    "kind",
    *FEATURE_COLUMNS,
    "position",
    "token",
    "in_a",
    "in_b",
    "positions_a",
    "positions_b",
    "activation_a",
    "activation_b",
    "activation_diff",
    "influence_a",
    "influence_b",
    "influence_diff",
    "clerp_a",
    "clerp_b",
)
COMPARED_EDGE_COLUMNS = ("source", "target", "source_kind", "target_kind", "in_a", "in_b", "weight_a", "weight_b", "weight_diff")
# matrices of more graphs than this would not fit in memory comfortably (n * n floats)
MAX_MATRIX_GRAPHS = 5000


# --- node keys ----------------------------------------------------------------------------------


_OUTPUT = re.compile(r'^Output "(.*)" \(p=')


def node_keys(skeleton: Skeleton, prompt_length: int, from_end: bool, tokens: Sequence[str]) -> dict[int, NodeKey]:
    """The key of every node of a graph (see the module docstring)."""
    out: dict[int, NodeKey] = {}
    for row in skeleton.nodes.itertuples():
        kind = row.kind
        pos = int(row.ctx_idx) - prompt_length if from_end else int(row.ctx_idx)
        if kind == "feature":
            out[row.idx] = ("feature", int(row.feature_id))
        elif kind == "embedding":
            token = tokens[row.ctx_idx] if 0 <= row.ctx_idx < len(tokens) else row.node_id
            out[row.idx] = ("embedding", pos, token)
        elif kind == "logit":
            out[row.idx] = ("logit", logit_token(row.clerp, row.node_id))
        elif kind == "error":
            out[row.idx] = ("error", int(row.layer_num), pos, "attention" if row.feature_type in ATTENTION_TYPES else "mlp")
        elif kind == "bias":
            out[row.idx] = ("bias", int(row.layer_num), pos, _without_position(row.node_id, row.ctx_idx).partition("_bias_")[2])
        else:
            out[row.idx] = ("other", row.feature_type, str(row.layer), pos, _without_position(row.node_id, row.ctx_idx))
    return out


def _without_position(node_id: str, ctx_idx: int) -> str:
    suffix = f"_{ctx_idx}"
    return node_id[: -len(suffix)] if node_id.endswith(suffix) else node_id


def logit_token(clerp: str | None, node_id: str) -> str:
    """The token a logit node predicts, read from its clerp ``Output "tok" (p=0.402)`` (else its id)."""
    match = _OUTPUT.match(clerp or "")
    return match.group(1) if match else node_id


def key_text(key: NodeKey, keys: dict[int, FeatureKey]) -> str:
    """A key as people read it: ``L20/1234``, ``emb " is"@-1``, ``logit " Austin"``, ``err L3@-2``
    (``attn err L3@-2`` for a Lorsa error), ``bias L2 mlp_bout@-1``, ``unknown 0_unknown_x@2``."""
    kind = key[0]
    if kind == "feature":
        feature = keys[key[1]]
        return f"{feature.transcoder_set}/L{feature.layer}/{feature.index}"
    if kind == "embedding":
        return f"emb {key[2]!r}@{key[1]}"
    if kind == "logit":
        return f"logit {key[1]!r}"
    if kind == "bias":
        return f"bias L{key[1]} {key[3]}@{key[2]}"
    if kind == "other":
        return f"{key[1]} {key[4]}@{key[3]}"
    return f"{'attn err' if key[3] == 'attention' else 'err'} L{key[1]}@{key[2]}"


@dataclass
class _Side:
    """One graph folded onto node keys."""

    graph: GraphInfo
    nodes: dict[NodeKey, dict[str, Any]]
    edges: dict[tuple[NodeKey, NodeKey], float]
    qparams: dict[str, Any]
    node_ids: dict[str, list[NodeKey]]


def _fold(graph: GraphInfo, skeleton: Skeleton, from_end: bool, qparams: dict[str, Any]) -> _Side:
    keys = node_keys(skeleton, len(graph.prompt_tokens), from_end, graph.prompt_tokens)
    nodes: dict[NodeKey, dict[str, Any]] = {}
    node_ids: dict[str, list[NodeKey]] = defaultdict(list)
    for row in skeleton.nodes.itertuples():
        key = keys[row.idx]
        node_ids[row.node_id].append(key)
        slot = nodes.setdefault(key, {"positions": set(), "activation": None, "influence": None, "clerp": None})
        slot["positions"].add(int(row.ctx_idx))
        if not np.isnan(row.activation) and (slot["activation"] is None or row.activation > slot["activation"]):
            slot["activation"] = float(row.activation)
        if not np.isnan(row.influence) and (slot["influence"] is None or row.influence < slot["influence"]):
            slot["influence"] = float(row.influence)
        if row.clerp and not slot["clerp"]:
            slot["clerp"] = row.clerp
    edges: dict[tuple[NodeKey, NodeKey], float] = defaultdict(float)
    for s, t, w in zip(skeleton.link_src.tolist(), skeleton.link_tgt.tolist(), skeleton.link_weight.tolist()):
        edges[(keys[s], keys[t])] += w
    return _Side(graph, nodes, dict(edges), qparams, dict(node_ids))


# --- two graphs -----------------------------------------------------------------------------------


@dataclass
class GraphComparison:
    """Two graphs aligned by node key.

    ``nodes`` (COMPARED_NODE_COLUMNS) and ``edges`` (COMPARED_EDGE_COLUMNS): every key and edge of either graph,
    with ``in_a``/``in_b`` saying where it is and the differences B - A where it is in both;
    ``summary``: the figures of the module docstring; ``labels``: each feature of either graph
    with its clerp in each and the labels people wrote for it; ``supernodes``: each graph's
    supernodes (from its saved view) by label, with their member keys side by side.
    """

    a: GraphInfo
    b: GraphInfo
    from_end: bool
    summary: dict[str, Any]
    nodes: pd.DataFrame
    edges: pd.DataFrame
    labels: pd.DataFrame
    supernodes: pd.DataFrame

    def only_in(self, side: str) -> pd.DataFrame:
        """Nodes only in graph ``a`` or only in graph ``b``."""
        mine, other = ("in_a", "in_b") if side == "a" else ("in_b", "in_a")
        return self.nodes[self.nodes[mine] & ~self.nodes[other]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "positions_from_end": self.from_end,
            "summary": self.summary,
            "nodes": [_node_json(r) for r in self.nodes.to_dict("records")],
            "edges": [
                {
                    "source": r["source"],
                    "target": r["target"],
                    "in": _where(r["in_a"], r["in_b"]),
                    "weight_a": _num(r["weight_a"]),
                    "weight_b": _num(r["weight_b"]),
                    "weight_diff": _num(r["weight_diff"]),
                }
                for r in self.edges.to_dict("records")
            ],
            "labels": [
                {
                    "feature": {c: (r[c] if c == "transcoder_set" else int(r[c])) for c in FEATURE_COLUMNS},
                    "in": _where(r["in_a"], r["in_b"]),
                    "clerp_a": r["clerp_a"],
                    "clerp_b": r["clerp_b"],
                    "labels": list(r["labels"]),
                }
                for r in self.labels.to_dict("records")
            ],
            "supernodes": [
                {"label": r["label"], "members_a": list(r["members_a"]), "members_b": list(r["members_b"]), "shared": list(r["shared"])}
                for r in self.supernodes.to_dict("records")
            ],
        }


def compare_graphs(kb: Core, slug_a: str, slug_b: str) -> GraphComparison:
    """Align graphs ``slug_a`` and ``slug_b`` by node key and report what differs."""
    if slug_a == slug_b:
        raise CircuitKBError("compare needs two different graphs")
    found = {g.slug: g for g in kb.select(Selection(slugs=(slug_a, slug_b)))}
    for slug in (slug_a, slug_b):
        if slug not in found:
            raise NotFoundError(f"no graph with slug {slug!r}")
    a, b = found[slug_a], found[slug_b]
    from_end = len(a.prompt_tokens) != len(b.prompt_tokens)
    side_a = _fold(a, kb.store.graph_skeleton(a.gid), from_end, kb.graph_row(a.slug).qparams or {})
    side_b = _fold(b, kb.store.graph_skeleton(b.gid), from_end, kb.graph_row(b.slug).qparams or {})
    fids = {k[1] for side in (side_a, side_b) for k in side.nodes if k[0] == "feature"}
    keys = feature_keys(kb, fids)
    ordered = sorted(set(side_a.nodes) | set(side_b.nodes), key=_sort_key)
    rank = {key: i for i, key in enumerate(ordered)}
    texts = {key: key_text(key, keys) for key in ordered}
    nodes = _node_frame(side_a, side_b, keys, ordered, texts)
    edges = _edge_frame(side_a, side_b, rank, texts)
    summary = _summary(side_a, side_b)
    labelled = _label_frame(kb, side_a, side_b, keys, ordered)
    return GraphComparison(a, b, from_end, summary, nodes, edges, labelled, _supernode_frame(side_a, side_b, texts))


def _node_frame(a: _Side, b: _Side, keys: dict[int, FeatureKey], ordered: list[NodeKey], texts: dict[NodeKey, str]) -> pd.DataFrame:
    rows = []
    for key in ordered:
        na, nb = a.nodes.get(key), b.nodes.get(key)
        feature = keys[key[1]] if key[0] == "feature" else None
        rows.append(
            {
                "key": texts[key],
                "kind": key[0],
                "transcoder_set": feature.transcoder_set if feature else None,
                "layer": feature.layer if feature else (key[1] if key[0] in ("error", "bias") else _layer_of_other(key)),
                "index": feature.index if feature else None,
                "position": key[1] if key[0] == "embedding" else key[2] if key[0] in ("error", "bias") else key[3] if key[0] == "other" else None,
                "token": key[2] if key[0] == "embedding" else (key[1] if key[0] == "logit" else None),
                "in_a": na is not None,
                "in_b": nb is not None,
                "positions_a": tuple(sorted(na["positions"])) if na else (),
                "positions_b": tuple(sorted(nb["positions"])) if nb else (),
                "activation_a": na["activation"] if na else None,
                "activation_b": nb["activation"] if nb else None,
                "activation_diff": _diff(na and na["activation"], nb and nb["activation"]),
                "influence_a": na["influence"] if na else None,
                "influence_b": nb["influence"] if nb else None,
                "influence_diff": _diff(na and na["influence"], nb and nb["influence"]),
                "clerp_a": na["clerp"] if na else None,
                "clerp_b": nb["clerp"] if nb else None,
            }
        )
    return _none_for_nan(pd.DataFrame(rows, columns=list(COMPARED_NODE_COLUMNS)))


def _none_for_nan(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns keep None (not NaN) where a value is missing, so JSON shows null."""
    for column in ("transcoder_set", "token", "clerp_a", "clerp_b"):
        if column in frame:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _edge_frame(a: _Side, b: _Side, rank: dict[NodeKey, int], texts: dict[NodeKey, str]) -> pd.DataFrame:
    edges = sorted(set(a.edges) | set(b.edges), key=lambda e: (rank[e[0]], rank[e[1]]))
    weights_a = [a.edges.get(e) for e in edges]
    weights_b = [b.edges.get(e) for e in edges]
    frame = pd.DataFrame(
        {
            "source": [texts[e[0]] for e in edges],
            "target": [texts[e[1]] for e in edges],
            "source_kind": [e[0][0] for e in edges],
            "target_kind": [e[1][0] for e in edges],
            "in_a": [w is not None for w in weights_a],
            "in_b": [w is not None for w in weights_b],
            "weight_a": weights_a,
            "weight_b": weights_b,
            "weight_diff": [_diff(x, y) for x, y in zip(weights_a, weights_b)],
        },
        columns=list(COMPARED_EDGE_COLUMNS),
    )
    return frame


def _summary(a: _Side, b: _Side) -> dict[str, Any]:
    fa = {k for k in a.nodes if k[0] == "feature"}
    fb = {k for k in b.nodes if k[0] == "feature"}
    ea = {e: w for e, w in a.edges.items() if e[0][0] == "feature" and e[1][0] == "feature"}
    eb = {e: w for e, w in b.edges.items() if e[0][0] == "feature" and e[1][0] == "feature"}
    shared = sorted(fa & fb, key=_sort_key)
    pairs = [(a.nodes[k]["influence"], b.nodes[k]["influence"]) for k in shared if a.nodes[k]["influence"] is not None and b.nodes[k]["influence"] is not None]
    rho = spearman([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) >= 3 else None
    return {
        "features_a": len(fa),
        "features_b": len(fb),
        "features_shared": len(fa & fb),
        "features_jaccard": _jaccard(fa, fb),
        "feature_edges_a": len(ea),
        "feature_edges_b": len(eb),
        "feature_edges_shared": len(set(ea) & set(eb)),
        "feature_edges_jaccard": _jaccard(set(ea), set(eb)),
        "weighted_overlap": weighted_overlap(ea, eb),
        "influence_spearman": rho,
        "influence_pairs": len(pairs),
    }


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of ``x`` and ``y`` (tied values share their mean rank), as
    scipy.stats.spearmanr computes it; None when either side is constant or not a number.
    Written here because importing scipy.stats cost the app's first comparison 0.6-1.2 s."""
    rx, ry = _mean_ranks(np.asarray(x, dtype=np.float64)), _mean_ranks(np.asarray(y, dtype=np.float64))
    if rx is None or ry is None:
        return None
    rx -= rx.mean()
    ry -= ry.mean()
    scale = float(np.sqrt((rx @ rx) * (ry @ ry)))
    return None if scale == 0.0 else float(np.clip((rx @ ry) / scale, -1.0, 1.0))


def _mean_ranks(values: np.ndarray) -> np.ndarray | None:
    """1-based ranks, each run of equal values given the mean of its ranks (None if any is NaN)."""
    if np.isnan(values).any():
        return None
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts, stops = runs(ordered)
    sizes = stops - starts
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(starts + (sizes + 1) / 2.0, sizes)
    return ranks


def weighted_overlap(a: dict[Any, float], b: dict[Any, float]) -> float | None:
    """Weighted Jaccard of two edge-weight maps, each normalised by its total |weight| (see module)."""
    total_a = sum(abs(w) for w in a.values())
    total_b = sum(abs(w) for w in b.values())
    if total_a == 0 and total_b == 0:
        return None
    low = high = 0.0
    for edge in set(a) | set(b):
        x = abs(a.get(edge, 0.0)) / total_a if total_a else 0.0
        y = abs(b.get(edge, 0.0)) / total_b if total_b else 0.0
        same_sign = edge in a and edge in b and (a[edge] >= 0) == (b[edge] >= 0)
        low += min(x, y) if same_sign else 0.0
        high += max(x, y)
    return low / high if high else None


def _label_frame(kb: Core, a: _Side, b: _Side, keys: dict[int, FeatureKey], ordered: list[NodeKey]) -> pd.DataFrame:
    """Each feature of either graph that has a clerp in one of them or a label people wrote."""
    columns = [*FEATURE_COLUMNS, "in_a", "in_b", "clerp_a", "clerp_b", "labels"]
    fids = [k[1] for k in ordered if k[0] == "feature"]
    written: dict[int, list[str]] = defaultdict(list)
    with kb.engine.connect() as conn:
        for fid, text, graph_slug in sqlqueries.feature_labels(conn, fids):
            if graph_slug in (None, a.graph.slug, b.graph.slug):
                written[fid].append(text if graph_slug is None else f"{text} [{graph_slug}]")
    rows = []
    for key in ordered:
        if key[0] != "feature":
            continue
        na, nb = a.nodes.get(key), b.nodes.get(key)
        clerp_a, clerp_b = na and na["clerp"], nb and nb["clerp"]
        texts = written.get(key[1], [])
        if clerp_a or clerp_b or texts:
            feature = keys[key[1]]
            rows.append((feature.transcoder_set, feature.layer, feature.index, na is not None, nb is not None, clerp_a or None, clerp_b or None, tuple(texts)))
    return _none_for_nan(pd.DataFrame(rows, columns=columns))


def _supernode_frame(a: _Side, b: _Side, texts: dict[NodeKey, str]) -> pd.DataFrame:
    def members(side: _Side) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for group in side.qparams.get("supernodes") or []:
            if not group:
                continue
            label = str(group[0]).strip()
            for node_id in group[1:]:
                out[label].update(texts[k] for k in side.node_ids.get(node_id, []))
        return out

    ma, mb = members(a), members(b)
    rows = [
        (label, tuple(sorted(ma.get(label, ()))), tuple(sorted(mb.get(label, ()))), tuple(sorted(ma.get(label, set()) & mb.get(label, set()))))
        for label in sorted(set(ma) | set(mb), key=str.lower)
    ]
    return pd.DataFrame(rows, columns=["label", "members_a", "members_b", "shared"])


# --- many graphs ------------------------------------------------------------------------------


MEASURES = ("features", "edges")


@dataclass
class GraphSimilarity:
    """Pairwise similarity of graphs (Jaccard of their features or feature edges) and a clustering.

    ``matrix``: slugs by slugs; ``clusters``: each slug's cluster number (1..n) and its place in
    the dendrogram's leaf order; ``linkage``: scipy's linkage matrix (average linkage on
    1 - similarity), for plotting a dendrogram.
    """

    graphs: list[GraphInfo]
    measure: str
    matrix: pd.DataFrame
    clusters: pd.DataFrame
    linkage: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "slugs": list(self.matrix.index),
            "matrix": [[float(v) for v in row] for row in self.matrix.to_numpy()],
            "clusters": [{"slug": r.slug, "cluster": int(r.cluster), "order": int(r.order)} for r in self.clusters.itertuples()],
        }


@paused_cycle_collection()
def graph_similarity(
    kb: Core,
    selection: Selection | None = None,
    *,
    measure: str = "features",
    n_clusters: int | None = None,
    threshold: float | None = None,
) -> GraphSimilarity:
    """The similarity matrix of the chosen graphs and a hierarchical clustering of it.

    Clusters come from cutting the dendrogram into ``n_clusters`` groups, or where the distance
    (1 - similarity) exceeds ``threshold``; by default at distance 0.5.
    """
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    from scipy.spatial.distance import squareform

    if measure not in MEASURES:
        raise CircuitKBError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    graphs = chosen_graphs(kb, selection, at_least=2)
    if len(graphs) > MAX_MATRIX_GRAPHS:
        raise CircuitKBError(f"{len(graphs)} graphs make too big a matrix; choose at most {MAX_MATRIX_GRAPHS}")
    matrix = jaccard_matrix(_items(kb, [g.gid for g in graphs], measure))
    distance = squareform(1.0 - matrix, checks=False)
    tree = linkage(distance, method="average")
    if n_clusters is not None:
        labels_ = fcluster(tree, t=n_clusters, criterion="maxclust")
    else:
        labels_ = fcluster(tree, t=0.5 if threshold is None else threshold, criterion="distance")
    order = np.empty(len(graphs), dtype=np.int64)
    order[leaves_list(tree)] = np.arange(len(graphs))
    slugs = [g.slug for g in graphs]
    clusters = pd.DataFrame({"slug": slugs, "cluster": labels_, "order": order})
    return GraphSimilarity(graphs, measure, pd.DataFrame(matrix, index=slugs, columns=slugs), clusters, tree)


def _items(kb: Core, gids: Sequence[int], measure: str) -> list[np.ndarray]:
    """Each graph's features or feature edges as distinct integers: from the per-graph rows of
    the aggregates (an index lookup per graph), or from the graph store while they are stale."""
    with kb.engine.connect() as conn:
        if aggregates.stale_reason(conn) is None:
            per_graph = aggregates.graph_feature_sets(conn, gids) if measure == "features" else aggregates.graph_edge_sets(conn, gids)
            return [per_graph[g] for g in gids]
    if measure == "features":
        found = kb.store.graph_features(gids)
        return [found[g] for g in gids]
    return feature_edge_items(kb.store.feature_edges(gids))


def jaccard_matrix(items: Sequence[np.ndarray]) -> np.ndarray:
    """Pairwise Jaccard of sets given as arrays of distinct integers (1 on the diagonal)."""
    from scipy.sparse import csr_matrix

    n = len(items)
    if n == 0:
        return np.zeros((0, 0))
    lengths = np.array([len(x) for x in items], dtype=np.int64)
    flat = np.concatenate(items) if lengths.sum() else np.empty(0, np.int64)
    columns, column_of = np.unique(flat, return_inverse=True)
    rows = np.repeat(np.arange(n), lengths)
    incidence = csr_matrix((np.ones(len(flat), dtype=np.float64), (rows, column_of)), shape=(n, len(columns)))
    inter = (incidence @ incidence.T).toarray()
    union = lengths[:, None] + lengths[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    np.fill_diagonal(out, 1.0)
    return out


# --- helpers ---------------------------------------------------------------------------------


_KIND_ORDER = {"embedding": 0, "feature": 1, "error": 2, "bias": 3, "other": 4, "logit": 5}


def _layer_of_other(key: NodeKey) -> int | None:
    return int(key[2]) if key[0] == "other" and key[2].isdigit() else None


def _sort_key(key: NodeKey) -> tuple[Any, ...]:
    return (_KIND_ORDER[key[0]], *(str(k) if isinstance(k, str) else k for k in key[1:]))


def _jaccard(a: set[Any], b: set[Any]) -> float | None:
    union = len(a | b)
    return len(a & b) / union if union else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _num(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def _where(in_a: bool, in_b: bool) -> str:
    return "both" if in_a and in_b else ("a" if in_a else "b")


def _node_json(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"key": r["key"], "kind": r["kind"], "in": _where(r["in_a"], r["in_b"])}
    if r["kind"] == "feature":
        out["feature"] = {c: (r[c] if c == "transcoder_set" else int(r[c])) for c in FEATURE_COLUMNS}
    for name in ("position", "token"):
        if r[name] is not None and not (isinstance(r[name], float) and np.isnan(r[name])):
            out[name] = r[name] if name == "token" else int(r[name])
    out.update(
        positions_a=[int(p) for p in r["positions_a"]],
        positions_b=[int(p) for p in r["positions_b"]],
        activation_a=_num(r["activation_a"]),
        activation_b=_num(r["activation_b"]),
        activation_diff=_num(r["activation_diff"]),
        influence_a=_num(r["influence_a"]),
        influence_b=_num(r["influence_b"]),
        influence_diff=_num(r["influence_diff"]),
        clerp_a=r["clerp_a"],
        clerp_b=r["clerp_b"],
    )
    return out


def feature_edge_items(edges: Iterable[FeatureEdges]) -> list[np.ndarray]:
    """Each graph's feature edges as distinct integer keys (for :func:`jaccard_matrix`)."""
    return [(e.src.astype(np.int64) << 32) | e.tgt.astype(np.int64) for e in edges]


__all__ = ["GraphComparison", "GraphSimilarity", "compare_graphs", "graph_similarity", "jaccard_matrix", "weighted_overlap"]
