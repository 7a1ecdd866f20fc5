"""QK tracing rows in SQL (table ``graph_qk``), for every graph store.

Written in the transaction that publishes the graph, removed with its registry row; read by
:mod:`kb.analysis.qk`.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, insert

from ingest.records import FeatureKey, Node, QKContribution
from schema.sql import graph_qk


def qk_rows(gid: int, rows: Sequence[QKContribution], nodes: Sequence[Node], feature_ids: dict[FeatureKey, int]) -> list[dict[str, Any]]:
    """The table rows of a graph's QK tracing."""

    def fid(key: FeatureKey | None) -> int | None:
        return None if key is None else feature_ids[key]

    return [
        {
            "graph_id": gid,
            "target_idx": r.target_idx,
            "role": r.role,
            "rank": r.rank,
            "target_node_id": nodes[r.target_idx].node_id,
            "target_feature_id": fid(nodes[r.target_idx].feature_key),
            "q_node_id": r.q_node_id,
            "q_feature_id": fid(r.q_feature),
            "k_node_id": r.k_node_id,
            "k_feature_id": fid(r.k_feature),
            "weight": r.weight,
        }
        for r in rows
    ]


def write_qk(conn: Connection, gid: int, rows: list[dict[str, Any]]) -> None:
    """Insert graph ``gid``'s QK rows, in the caller's transaction that publishes it (so it has none yet)."""
    if rows:
        conn.execute(insert(graph_qk), rows)
