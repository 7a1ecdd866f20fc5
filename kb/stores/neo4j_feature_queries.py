"""FeatureQueries on Neo4j: the answers of the Cypher in :mod:`kb.stores.cypher.features`, as records."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

from kb.stores.cypher import features as cypher
from kb.stores.feature_queries import (
    DIRECTIONS,
    FeatureQueries,
    LayerCount,
    LayerOverlap,
    Neighbour,
    NeighbourSummary,
    Presence,
)


class Neo4jFeatureQueries(FeatureQueries):
    run_read: Callable[[str, dict[str, Any]], list[dict[str, Any]]]  # provided by Neo4jStore

    def feature_presence(self, fids: Sequence[int], gids: Sequence[int] | None = None) -> list[Presence]:
        rows = self.run_read(*cypher.presence_query(fids, gids))
        found = [Presence(r["fid"], gid, act, inf, tuple(sorted(pos))) for r in rows for gid, act, inf, pos in r["graphs"]]
        return sorted(found, key=lambda p: (p.fid, p.gid))

    def shared_presence(self, gids: Sequence[int], min_graphs: int = 1) -> list[Presence]:
        if not gids:
            return []
        fids = None
        if min_graphs > 1:
            fids = [r["fid"] for r in self.run_read(*cypher.shared_fids_query(gids, min_graphs))]
            if not fids:
                return []
            # the features' nodes in all graphs are few next to all nodes of most of the graphs
            if self._is_wide(gids):
                return self.feature_presence(fids, gids)
        rows = self.run_read(*cypher.graph_presence_query(gids, fids))
        found = [Presence(fid, r["gid"], act, inf, tuple(sorted(pos))) for r in rows for fid, act, inf, pos in r["features"]]
        return sorted(found, key=lambda p: (p.fid, p.gid))

    def feature_neighbours(self, fids: Sequence[int], gids: Sequence[int], top: int | None = None) -> list[Neighbour]:
        if not fids or not gids:
            return []
        rows = sorted(self.run_read(*cypher.neighbours_query(fids, gids, top)), key=lambda r: (r["gid"], r["fid"], r["dir"], r["rank"]))
        return [
            Neighbour(r["gid"], r["fid"], DIRECTIONS[r["dir"]], r["nfid"], r["node_idx"], r["node_id"], r["kind"], r["layer"], r["ctx_idx"], float(r["weight"]), r["n_links"])
            for r in rows
        ]

    def neighbour_summary(self, fids: Sequence[int], gids: Sequence[int], top: int | None = None) -> list[NeighbourSummary]:
        if not fids or not gids:
            return []
        rows = sorted(self.run_read(*cypher.neighbour_summary_query(fids, gids, top)), key=lambda r: (r["fid"], r["dir"], r["rank"]))
        return [NeighbourSummary(r["fid"], DIRECTIONS[r["dir"]], r["nfid"], r["n_graphs"], float(r["mean_weight"])) for r in rows]

    def layer_counts(self, gids: Sequence[int]) -> list[LayerCount]:
        if not gids:
            return []
        rows = self.run_read(*cypher.layer_counts_query(gids))
        return sorted(LayerCount(r["gid"], r["layer"], r["n"]) for r in rows)

    def layer_overlaps(self, gids_a: Sequence[int], gids_b: Sequence[int]) -> list[LayerOverlap]:
        if not gids_a or not gids_b:
            return []
        # each graph's features once, intersected here: a join of node pairs in Cypher costs
        # more than reading the few graphs a language comparison involves
        layer_of: dict[int, dict[int, int]] = {g: {} for g in set(gids_a) | set(gids_b)}
        for r in self.run_read(*cypher.graph_layer_features_query(list(layer_of))):
            layer_of[r["gid"]] = dict(zip(r["fids"], r["layers"]))
        found = []
        for ga in sorted(set(gids_a)):
            for gb in sorted(set(gids_b)):
                if ga != gb:
                    shared = Counter(layer_of[ga][f] for f in layer_of[ga].keys() & layer_of[gb].keys())
                    found += [LayerOverlap(ga, gb, layer, n) for layer, n in shared.items()]
        return sorted(found)
