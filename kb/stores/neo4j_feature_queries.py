"""FeatureQueries on Neo4j."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from kb.stores.feature_queries import FeatureQueries, Presence


def presence_query(fids: Sequence[int], gids: Sequence[int] | None) -> tuple[str, dict[str, Any]]:
    graph_filter = "WHERE n.gid IN $gids " if gids is not None else ""
    return (
        "UNWIND $fids AS fid "
        "MATCH (n:Node {fid: fid}) " + graph_filter + ""
        "RETURN fid, n.gid AS gid, max(n.activation) AS activation, min(n.influence) AS influence, "
        "collect(DISTINCT n.ctx_idx) AS positions ORDER BY fid, gid",
        {"fids": sorted(set(fids)), "gids": list(gids) if gids is not None else None},
    )


class Neo4jFeatureQueries(FeatureQueries):
    run_read: Callable[[str, dict[str, Any]], list[dict[str, Any]]]  # provided by Neo4jStore

    def feature_presence(self, fids: Sequence[int], gids: Sequence[int] | None = None) -> list[Presence]:
        rows = self.run_read(*presence_query(fids, gids))
        return [
            Presence(r["fid"], r["gid"], r["activation"], r["influence"], tuple(sorted(r["positions"]))) for r in rows
        ]
