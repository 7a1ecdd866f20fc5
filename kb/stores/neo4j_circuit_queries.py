"""CircuitQueries primitives on Neo4j: the answers of the Cypher in :mod:`kb.stores.cypher.circuits`.

Queries answer one record per graph with flat lists (each record costs the driver far more
than a list element); the methods here unfold them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

from kb.errors import NotFoundError
from kb.stores.circuit_queries import (
    SKELETON_COLUMNS,
    ChainGroup,
    ChainMatch,
    ChainNode,
    CircuitQueries,
    FeatureEdges,
    LinkSet,
    Skeleton,
    Step,
    skeleton_from_rows,
)
from kb.stores.cypher import circuits as cypher
from kb.stores.cypher.features import graph_layer_features_query
from kb.stores.cypher.graphs import stored_node_row

# graphs per read of stored feature edges
_READ_GRAPHS = 2000


class Neo4jCircuitQueries(CircuitQueries):
    run_read: Callable[[str, dict[str, Any]], list[dict[str, Any]]]  # provided by Neo4jStore
    run_write: Callable[[str, dict[str, Any]], list[dict[str, Any]]]

    # --- feature edges -------------------------------------------------------------------------

    @staticmethod
    def feature_edge_statements(edges: FeatureEdges) -> list[tuple[str, dict[str, Any]]]:
        """The statements that store a graph's feature edges, for the writer's transaction."""
        return [cypher.create_feature_edges(edges.gid, part) for part in edges.parts()]

    def purge_feature_edges(self, gid: int) -> None:
        self.run_write(*cypher.delete_feature_edges(gid))

    def save_feature_edges(self, edges: FeatureEdges) -> bool:
        self.purge_feature_edges(edges.gid)
        for part in edges.parts():
            made = self.run_write(*cypher.create_feature_edges_of_stored_graph(edges.gid, part))
            if not made or made[0]["n"] == 0:
                self.purge_feature_edges(edges.gid)
                return False
        return True

    def _stored_feature_edges(self, gids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        parts: dict[int, list[dict[str, Any]]] = {}
        for start in range(0, len(gids), _READ_GRAPHS):
            for record in self.run_read(*cypher.read_feature_edges(gids[start : start + _READ_GRAPHS])):
                parts.setdefault(record["gid"], []).append(cypher.part_of_record(record))
        return parts

    def _graphs_with_feature_edges(self, gids: Sequence[int]) -> set[int]:
        return {r["gid"] for r in self.run_read(*cypher.graphs_with_feature_edges(gids))}

    # --- whole graphs and chains ---------------------------------------------------------------

    def graph_skeleton(self, gid: int) -> Skeleton:
        nodes = self.run_read(*cypher.skeleton_nodes(gid))[0]["nodes"]
        if not nodes:
            raise NotFoundError(f"graph {gid} has no nodes in Neo4j")
        rows = [dict(zip(SKELETON_COLUMNS, values)) for values in nodes]
        links = self.run_read(*cypher.skeleton_links(gid))[0]
        return skeleton_from_rows(gid, rows, links["s"], links["t"], links["w"])

    def _chains(self, gids: Sequence[int], steps: Sequence[Step], top: int | None, floors: Mapping[int, float] | None = None) -> Iterator[ChainMatch]:
        # floors are a hint that the Cypher query does not need: it ranks every path of a graph anyway
        k = len(steps)
        for r in self.run_read(*cypher.chain_query(gids, steps, top)):
            nodes = zip(*(r[f"i{i}"] for i in range(k + 1)))
            fids = zip(*(r[f"f{i}"] for i in range(k + 1)))
            weights = zip(*(r[f"w{i}"] for i in range(k)))
            totals = zip(*(r[f"c{i}"] for i in range(1, k + 1)))
            for path, path_fids, path_weights, path_totals in zip(nodes, fids, weights, totals):
                yield ChainMatch(r["gid"], path, tuple(float(w) for w in path_weights), path_fids, tuple(float(c) for c in path_totals))

    def _chain_groups(self, gids: Sequence[int], steps: Sequence[Step], at: Sequence[int]) -> Iterator[ChainGroup]:
        for r in self.run_read(*cypher.chain_groups_query(gids, steps, at)):
            for key, n, best in zip(r["keys"], r["counts"], r["bests"]):
                yield ChainGroup(r["gid"], tuple(key), n, float(best))

    def _graph_feature_ids(self, gids: Sequence[int]) -> list[tuple[int, list[int]]]:
        return [(r["gid"], r["fids"]) for r in self.run_read(*graph_layer_features_query(gids))]

    # --- nodes and links by key ----------------------------------------------------------------

    def describe_nodes(self, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], ChainNode]:
        if not nodes:
            return {}
        return {(r["gid"], a[0]): ChainNode(*a) for r in self.run_read(*cypher.describe_nodes_query(nodes)) for a in r["about"]}

    def _link_rows_between(self, pairs: Sequence[tuple[int, int, int]]) -> Iterator[tuple[int, int, int, float]]:
        for r in self.run_read(*cypher.direct_weights_query(pairs)):
            for (src, tgt), weights in zip(r["pairs"], r["weights"]):
                for w in weights:
                    yield r["gid"], src, tgt, w

    def _feature_position_rows(self, keys: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
        for r in self.run_read(*cypher.feature_positions_query(keys)):
            for fid, pos in zip(r["fids"], r["positions"]):
                yield r["gid"], fid, pos

    def _input_total_rows(self, nodes: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, float | None]]:
        for r in self.run_read(*cypher.input_totals_query(nodes)):
            for idx, total in zip(r["idxs"], r["totals"]):
                yield r["gid"], idx, total

    # --- pieces of one graph -------------------------------------------------------------------

    def top_nodes(self, gid: int, n: int) -> list[int]:
        return [r["idx"] for r in self.run_read(*cypher.top_nodes_query(gid, n))]

    def node_rows(self, gid: int, idxs: Sequence[int]) -> list[dict[str, Any]]:
        return [stored_node_row(r["n"]) for r in self.run_read(*cypher.node_rows_query(gid, idxs))]

    def find_nodes(self, gid: int, node_id: str) -> list[int]:
        return [r["idx"] for r in self.run_read(*cypher.find_nodes_query(gid, node_id))]

    def logit_nodes(self, gid: int) -> list[int]:
        return [r["idx"] for r in self.run_read(*cypher.logit_nodes_query(gid))]

    def links_among(self, gid: int, idxs: Sequence[int]) -> LinkSet:
        r = self.run_read(*cypher.links_among_query(gid, idxs))[0]
        return LinkSet.of(list(zip(r["s"], r["t"], r["w"])))

    def _links_on_side(self, gid: int, idxs: Sequence[int], min_abs_weight: float, side: str) -> Iterator[tuple[int, int, int, float]]:
        r = self.run_read(*cypher.links_around_query(gid, idxs, min_abs_weight, side))[0]
        yield from zip(r["i"], r["s"], r["t"], r["w"])

