"""QK tracing: what drives the queries and keys of Lorsa (attention) features.

Graphs of Neuronpedia's CRM engine trace, for each Lorsa feature node, the nodes whose output
makes its attention pattern: *query* contributors (at the attending position), *key* contributors
(at the attended position), as marginal lists (role ``q``, ``k``) and as query-key pairs (role
``pair``). A contributor may have been pruned out of the graph's nodes and links; the file then
describes it in ``qk_only_nodes`` (``pruned`` below). Contributors are features (of either set),
embeddings, errors or bias leaves; only features are compared across graphs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
from sqlalchemy import select

from ingest.records import FeatureKey
from kb.analysis.features import FEATURE_COLUMNS, chosen_graph_ids, feature_dict, feature_keys, resolve_features
from kb.core import Core
from kb.errors import CircuitKBError
from kb.export import node_json
from kb.selection import Selection
from kb.sqlqueries import among
from schema.sql import READY, graph_qk, graphs

ROLES = ("q", "k", "pair")
SIDES = ("q", "k")

ROW_COLUMNS = (
    "slug", *FEATURE_COLUMNS, "target_node_id", "role", "rank",
    *(f"{side}_{c}" for side in SIDES for c in ("node_id", *FEATURE_COLUMNS, "pruned")),
    "weight",
)  # fmt: skip
SUMMARY_COLUMNS = (
    *FEATURE_COLUMNS, "role",
    *(f"{side}_{c}" for side in SIDES for c in FEATURE_COLUMNS),
    "n_graphs", "mean_weight",
)  # fmt: skip


@dataclass
class QKDrivers:
    """What drives the queries and keys of ``features`` among the chosen graphs.

    ``n_graphs`` graphs have QK tracing for at least one of them. ``rows`` lists every traced
    contributor in those graphs (ROW_COLUMNS, in the file's order per graph, node and role):
    for role ``q`` the ``k_*`` columns are empty and for ``k`` the ``q_*`` ones; the
    ``*_transcoder_set/layer/index`` columns are empty when the contributor is not a feature;
    ``*_pruned`` says the contributor is only in the file's ``qk_only_nodes``. ``summary``
    (SUMMARY_COLUMNS) gathers feature contributors over the graphs: per feature and role, each
    contributing feature (or query-key pair of features), in how many graphs and with what mean
    attribution, most frequent first, then strongest.
    """

    features: list[FeatureKey]
    n_graphs: int
    rows: pd.DataFrame
    summary: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        per_graph: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in self.rows.itertuples():
            per_graph[(r.slug, r.target_node_id)].append(
                {
                    "role": r.role,
                    "rank": int(r.rank),
                    **{side: _contributor_json(r, side) for side in SIDES if _present(getattr(r, f"{side}_node_id"))},
                    "weight": float(r.weight),
                }
            )
        nodes = []
        for r in self.rows.drop_duplicates(["slug", "target_node_id"]).itertuples():
            nodes.append({"slug": r.slug, "node_id": r.target_node_id, "feature": _feature(r, ""), "contributors": per_graph[(r.slug, r.target_node_id)]})
        return {
            "features": [feature_dict(k) for k in self.features],
            "n_graphs": self.n_graphs,
            "nodes": nodes,
            "summary": [
                {
                    "feature": _feature(r, ""),
                    "role": r.role,
                    **{side: _feature(r, f"{side}_") for side in SIDES if _present(getattr(r, f"{side}_transcoder_set"))},
                    "n_graphs": int(r.n_graphs),
                    "mean_weight": float(r.mean_weight),
                }
                for r in self.summary.itertuples()
            ],
        }


def qk_drivers(
    kb: Core,
    features: Sequence[str | FeatureKey],
    selection: Selection | None = None,
    *,
    transcoder_set: str | None = None,
    model: str | None = None,
    limit: int | None = 10,
) -> QKDrivers:
    """The QK tracing of ``features`` (Lorsa features, named as :func:`kb.analysis.used_by`
    takes them) in the chosen graphs (all by default). ``limit`` caps the summary's contributors
    per feature and role (None: all); ``rows`` are never capped."""
    if limit is not None and limit < 0:
        raise CircuitKBError("limit must not be negative")
    ids = resolve_features(kb, features, transcoder_set=transcoder_set, model=model)
    fids = sorted(set(ids.values()))
    gids = chosen_graph_ids(kb, selection)
    q = graph_qk.c
    with kb.engine.connect() as conn:
        found = conn.execute(
            select(graph_qk, graphs.c.slug)
            .join(graphs, graphs.c.id == q.graph_id)
            .where(among(conn, q.target_feature_id, fids), among(conn, q.graph_id, gids, lookup=False), graphs.c.status == READY)
            .order_by(graphs.c.slug, q.target_idx, q.role, q.rank)
        ).all()
        qk_graphs = sorted({r.graph_id for r in found})
        pruned = {
            gid: set(((extra or {}).get("qk_only_nodes") or {}).keys())
            for gid, extra in (conn.execute(select(graphs.c.id, graphs.c.extra).where(among(conn, graphs.c.id, qk_graphs))) if qk_graphs else [])
        }
    keys = feature_keys(kb, {fid for r in found for fid in (r.target_feature_id, r.q_feature_id, r.k_feature_id) if fid is not None})
    role_order = {role: i for i, role in enumerate(ROLES)}
    found = sorted(found, key=lambda r: (r.slug, r.target_idx, role_order[r.role], r.rank))
    rows = [_row(r, keys, pruned[r.graph_id]) for r in found]
    return QKDrivers(
        features=list(dict.fromkeys(ids)),
        n_graphs=len(qk_graphs),
        rows=_frame(rows, ROW_COLUMNS),
        summary=_summary(found, keys, limit),
    )


def _frame(rows: Sequence[tuple[Any, ...]], columns: Sequence[str]) -> pd.DataFrame:
    """Rows as a frame whose empty cells stay None (layers and indexes as nullable integers)."""
    frame = pd.DataFrame(list(rows), columns=list(columns), dtype=object)
    for name in columns:
        if name.endswith(("layer", "index", "rank", "n_graphs")):
            frame[name] = pd.array(frame[name], dtype="Int64")
        elif name in ("weight", "mean_weight"):
            frame[name] = frame[name].astype(float)
    return frame


def qk_only_nodes_of_piece(kb: Core, gid: int, nodes: Sequence[dict[str, Any]], graph_extra: dict[str, Any] | None) -> dict[str, Any]:
    """The ``qk_only_nodes`` a piece of graph ``gid`` needs: a descriptor of every QK contributor
    its nodes name that is not among them (from the file's ``qk_only_nodes``, else the graph's
    node), so that the piece resolves its QK tracing as the whole graph does."""
    present = {n["node_id"] for n in nodes}
    wanted: list[str] = []
    for node in nodes:
        for rows in (node.get("qk_tracing_results") or {}).values():
            wanted += [i for row in rows for i in row[:-1] if i not in present]
    known = dict((graph_extra or {}).get("qk_only_nodes") or {})
    out: dict[str, Any] = {}
    for node_id in dict.fromkeys(wanted):
        if node_id in known:
            out[node_id] = known[node_id]
            continue
        found = kb.store.find_nodes(gid, node_id)
        if found:
            descriptor = node_json(kb.store.node_rows(gid, found[:1])[0])
            descriptor.pop("qk_tracing_results", None)
            out[node_id] = descriptor
    return out


def _key_columns(key: FeatureKey | None) -> tuple[Any, Any, Any]:
    return (key.transcoder_set, key.layer, key.index) if key else (None, None, None)


def _row(r: Any, keys: dict[int, FeatureKey], pruned: set[str]) -> tuple[Any, ...]:
    sides = []
    for node_id, fid in ((r.q_node_id, r.q_feature_id), (r.k_node_id, r.k_feature_id)):
        sides += [node_id, *_key_columns(keys.get(fid) if fid is not None else None), None if node_id is None else node_id in pruned]
    return (r.slug, *_key_columns(keys[r.target_feature_id]), r.target_node_id, r.role, r.rank, *sides, r.weight)


def _summary(found: Sequence[Any], keys: dict[int, FeatureKey], limit: int | None) -> pd.DataFrame:
    """Feature contributors over graphs; a row counts when every contributor it names is a feature."""
    weights: dict[tuple[int, str, int | None, int | None], dict[int, float]] = defaultdict(dict)
    for r in found:
        named = [fid for node_id, fid in ((r.q_node_id, r.q_feature_id), (r.k_node_id, r.k_feature_id)) if node_id is not None]
        if any(fid is None for fid in named):
            continue
        per_graph = weights[(r.target_feature_id, r.role, r.q_feature_id, r.k_feature_id)]
        per_graph[r.graph_id] = per_graph.get(r.graph_id, 0.0) + r.weight  # a feature at several positions: summed
    grouped: dict[tuple[int, str], list[tuple[Any, ...]]] = defaultdict(list)
    for (target, role, qf, kf), per_graph in weights.items():
        mean = sum(per_graph.values()) / len(per_graph)
        row = (
            *_key_columns(keys[target]), role,
            *_key_columns(keys.get(qf) if qf is not None else None),
            *_key_columns(keys.get(kf) if kf is not None else None),
            len(per_graph), mean,
        )  # fmt: skip
        grouped[(target, role)].append(row)
    out = []
    role_order = {role: i for i, role in enumerate(ROLES)}
    for (target, role) in sorted(grouped, key=lambda g: (keys[g[0]], role_order[g[1]])):
        ranked = sorted(grouped[(target, role)], key=lambda row: (-row[-2], -abs(row[-1]), str(row[4:10])))
        out += ranked if limit is None else ranked[:limit]
    return _frame(out, SUMMARY_COLUMNS)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value))


def _feature(row: Any, prefix: str) -> dict[str, Any] | None:
    if not _present(getattr(row, f"{prefix}transcoder_set")):
        return None
    return {"transcoder_set": getattr(row, f"{prefix}transcoder_set"), "layer": int(getattr(row, f"{prefix}layer")), "index": int(getattr(row, f"{prefix}index"))}


def _contributor_json(row: Any, side: str) -> dict[str, Any]:
    return {"node_id": getattr(row, f"{side}_node_id"), "feature": _feature(row, f"{side}_"), "pruned": bool(getattr(row, f"{side}_pruned"))}
