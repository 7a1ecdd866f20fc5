"""Chains across graphs, as two-hop paths and patterns report them: scored, described, as JSON.

- A link's *share* is |w| divided by the sum of |w| over every link into its target, the way
  circuit-tracer's viewer shows a node's inputs as fractions. A path's *score* is the product of
  its links' shares: the fraction of the answer's input that flows along that path. Stored graphs
  are pruned, so the sums run over the links kept by pruning. Each node's sum is stored with it
  at ingest, and the store scores chains and keeps the best of each graph itself
  (:meth:`kb.stores.circuit_queries.CircuitQueries.chains`).
- The *target logit* is the logit node marked ``is_target_logit``. A graph without one has no
  chains (pattern and two-hop queries find nothing there); :func:`kb.analysis.paths.strongest_paths`
  falls back to its most probable logit.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from kb.analysis.features import FEATURE_COLUMNS, feature_keys
from kb.core import Core
from kb.selection import GraphInfo
from kb.stores.circuit_queries import ChainMatch, link_share

CHAIN_FIXED_COLUMNS = ("slug", "score", "shortcut_weight", "shortcut_share")


def chains_frame(kb: Core, graphs: Sequence[GraphInfo], matches: Sequence[ChainMatch], n_steps: int) -> pd.DataFrame:
    """One row per chain, by slug then best score (ties by node idx): slug, gid, score,
    shortcut; for each step n0.. and the target t: idx, node_id, kind, ctx_idx, token, clerp, fid
    and feature; each link's weight and share.

    Scores and shares come from the chains' weights and input totals; nodes are described here,
    so ``matches`` should be only the chains to show (the store keeps the best of each graph).
    """
    names = [f"n{i}" for i in range(n_steps)] + ["t"]
    node_columns = ("idx", "node_id", "kind", "ctx_idx", "token", "clerp", "fid", *FEATURE_COLUMNS)
    columns: dict[str, list[Any]] = {c: [] for c in ("gid", *CHAIN_FIXED_COLUMNS)}
    columns.update({f"{n}_{c}": [] for n in names for c in node_columns})
    columns.update({f"{p}{i}": [] for i in range(n_steps) for p in ("w", "share")})
    if not matches:
        return pd.DataFrame(columns)
    slugs = {g.gid: g.slug for g in graphs}
    scored = sorted(((slugs[m.gid], -m.score, m.nodes, m) for m in matches), key=lambda s: s[:3])
    about = kb.store.describe_nodes(sorted({(m.gid, i) for *_, m in scored for i in m.nodes}))
    shortcuts = kb.store.direct_weights(sorted({(m.gid, m.nodes[0], m.nodes[-1]) for *_, m in scored}))
    keys = feature_keys(kb, {f for *_, m in scored for f in m.fids if f is not None})
    tokens = {g.gid: g.prompt_tokens for g in graphs}
    for slug, negative, _, m in scored:
        target_total = m.totals[-1]
        shortcut = shortcuts.get((m.gid, m.nodes[0], m.nodes[-1]))
        columns["gid"].append(m.gid)
        columns["slug"].append(slug)
        columns["score"].append(-negative)
        columns["shortcut_weight"].append(shortcut)
        columns["shortcut_share"].append(link_share(shortcut, target_total) if shortcut is not None and target_total else None)
        prompt = tokens[m.gid]
        for name, idx in zip(names, m.nodes):
            node = about[(m.gid, idx)]
            feature = keys.get(node.fid) if node.fid is not None else None
            columns[f"{name}_idx"].append(idx)
            columns[f"{name}_node_id"].append(node.node_id)
            columns[f"{name}_kind"].append(node.kind)
            columns[f"{name}_ctx_idx"].append(node.ctx_idx)
            columns[f"{name}_token"].append(prompt[node.ctx_idx] if 0 <= node.ctx_idx < len(prompt) else None)
            columns[f"{name}_clerp"].append(node.clerp or None)
            columns[f"{name}_fid"].append(node.fid)
            columns[f"{name}_transcoder_set"].append(feature.transcoder_set if feature else None)
            columns[f"{name}_layer"].append(feature.layer if feature else None)
            columns[f"{name}_index"].append(feature.index if feature else None)
        for i, (w, share) in enumerate(zip(m.weights, m.shares)):
            columns[f"w{i}"].append(w)
            columns[f"share{i}"].append(share)
    frame = pd.DataFrame(columns)
    for column in ("shortcut_weight", "shortcut_share", *(f"{n}_{c}" for n in names for c in ("fid", "clerp", "token", "transcoder_set"))):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)  # None, not NaN
    return frame


def chain_node_json(row: Mapping[str, Any], name: str) -> dict[str, Any]:
    feature = None
    if row.get(f"{name}_transcoder_set") is not None and not pd.isna(row.get(f"{name}_transcoder_set")):
        feature = {c: (row[f"{name}_{c}"] if c == "transcoder_set" else int(row[f"{name}_{c}"])) for c in FEATURE_COLUMNS}
    return {
        "node_id": row[f"{name}_node_id"],
        "kind": row[f"{name}_kind"],
        "ctx_idx": int(row[f"{name}_ctx_idx"]),
        "token": None if missing(row[f"{name}_token"]) else row[f"{name}_token"],
        "clerp": None if missing(row[f"{name}_clerp"]) else row[f"{name}_clerp"],
        "feature": feature,
    }


def chain_json(row: Mapping[str, Any], n_steps: int) -> dict[str, Any]:
    return {
        "slug": row["slug"],
        "score": float(row["score"]),
        "nodes": [chain_node_json(row, f"n{i}") for i in range(n_steps)] + [chain_node_json(row, "t")],
        "links": [{"weight": float(row[f"w{i}"]), "share": float(row[f"share{i}"])} for i in range(n_steps)],
        "shortcut": None if missing(row["shortcut_weight"]) else {"weight": float(row["shortcut_weight"]), "share": float(row["shortcut_share"])},
    }


def missing(value: Any) -> bool:
    """Whether a cell of a chains frame holds no value (None or NaN)."""
    return value is None or (isinstance(value, float) and np.isnan(value))
