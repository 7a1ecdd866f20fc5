"""The Neo4j graph store, over Bolt with the official driver.

Writes go in batches, each a managed transaction (the driver retries transient failures).
A graph too big for one transaction is written in many; it stays invisible until the SQL
registry publishes it, and a half-written graph is purged before it is written again.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import Engine

from ingest.records import FeatureKey, ParsedGraph
from kb.config import redact_url
from kb.errors import ConfigError, NotFoundError, StoreUnavailable
from kb.stores.base import Finalize, GraphStore, LinkProgress, StoredGraph, node_input_totals, node_values
from kb.stores.circuit_queries import FeatureEdges
from kb.stores.cypher import graphs as cypher
from kb.stores.neo4j_circuit_queries import Neo4jCircuitQueries
from kb.stores.neo4j_feature_queries import Neo4jFeatureQueries
from schema.graph_schema import STATEMENTS

log = logging.getLogger(__name__)

NODE_BATCH = 5_000
STATEMENTS_PER_TRANSACTION = 8
LINK_BATCH = 20_000
DELETE_BATCH = 50_000
CONCURRENT_WRITES = 4


class Neo4jStore(Neo4jFeatureQueries, Neo4jCircuitQueries, GraphStore):
    name = "neo4j"

    def __init__(self, engine: Engine, uri: str, user: str, password: str | None, database: str | None = None) -> None:
        from neo4j import GraphDatabase

        self.engine = engine
        self.uri = uri
        self.database = database
        auth = (user, password) if password is not None else None
        self.driver = GraphDatabase.driver(uri, auth=auth, max_transaction_retry_time=60.0)
        self._stored_features: set[int] = set()

    def __repr__(self) -> str:
        return f"Neo4jStore({self.uri!r})"

    # --- plumbing ----------------------------------------------------------------------------

    def _session(self):  # noqa: ANN202
        return self.driver.session(database=self.database) if self.database else self.driver.session()

    def run_write(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one statement in a managed write transaction (retried on transient errors)."""
        return self._run("execute_write", query, params)

    def run_read(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one statement in a managed read transaction."""
        return self._run("execute_read", query, params)

    def run_write_many(self, statements: list[tuple[str, dict[str, Any]]]) -> None:
        """Run several statements in one managed write transaction."""

        def work(tx):  # noqa: ANN001, ANN202
            for query, params in statements:
                tx.run(query, params).consume()

        self._call("execute_write", work)

    def _run(self, mode: str, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        def work(tx):  # noqa: ANN001, ANN202
            # records as plain dicts without Record.data(), which walks every list element again
            # (seconds for queries answering long flat lists); nodes stay driver Node objects
            result = tx.run(query, params)
            keys = result.keys()
            return [dict(zip(keys, record)) for record in result]

        return self._call(mode, work)

    def _call(self, mode: str, work: Any) -> Any:
        from neo4j.exceptions import AuthError, ServiceUnavailable

        try:
            with self._session() as session:
                return getattr(session, mode)(work)
        except ServiceUnavailable as exc:
            raise StoreUnavailable(f"Neo4j at {self.uri} is not reachable: {exc}") from exc
        except AuthError as exc:
            raise StoreUnavailable(
                f"Neo4j at {self.uri} refused the credentials (check CIRCUITKB_NEO4J_USER/_PASSWORD)"
            ) from exc

    def bind(self, instance: str) -> None:
        rows = self.run_write(*cypher.claim_instance(instance))
        owner = rows[0]["instance"]
        if owner == instance:
            return
        if self.run_read(*cypher.any_graph())[0]["found"]:
            raise ConfigError(
                f"the Neo4j database at {self.uri} holds graphs of another circuitkb knowledge base "
                f"(its SQL database differs from {redact_url(str(self.engine.url))}); point "
                "CIRCUITKB_SQL_URL at that knowledge base's SQL database, or use an empty Neo4j database"
            )
        self.run_write(*cypher.adopt_instance(instance))

    def setup(self) -> None:
        for statement in STATEMENTS:
            self.run_write(statement, {})

    def close(self) -> None:
        self.driver.close()

    # --- writing -----------------------------------------------------------------------------

    @property
    def concurrent_writes(self) -> int:
        """Graphs touch only their own nodes (and, briefly at the end, the features they use),
        so several are written at once: the server works while the client sends the next."""
        return CONCURRENT_WRITES

    def write_graph(
        self,
        gid: int,
        graph: ParsedGraph,
        feature_ids: dict[FeatureKey, int],
        edges: FeatureEdges,
        finalize: Finalize,
        progress: LinkProgress | None = None,
        fresh: bool = False,
    ) -> None:
        """An ordinary graph in one transaction; a big one in several, links in batches.

        Features new to the store are merged first, in a short transaction of their own; the
        (:Node)-[:IS]->(:Feature) relationships come last, so that a writer holds locks on
        shared Feature nodes only at the end of its transaction (see cypher.link_features).
        """
        if not fresh and self.run_read(*cypher.graph_has_nodes(gid))[0]["found"]:
            self.purge(gid)
        self._merge_features(feature_ids)
        totals = node_input_totals(graph)
        node_rows = [cypher.node_properties(gid, node_values(n, feature_ids, totals)) for n in graph.nodes]
        head = [cypher.create_graph(gid, graph.header.slug)]
        head += [cypher.create_nodes(node_rows[i : i + NODE_BATCH]) for i in range(0, len(node_rows), NODE_BATCH)]
        features = sorted((feature_ids[n.feature_key], n.idx) for n in graph.nodes if n.feature_key is not None)
        tail = self.feature_edge_statements(edges)
        tail += [
            cypher.link_features(gid, [idx for _, idx in features[i : i + NODE_BATCH]], [fid for fid, _ in features[i : i + NODE_BATCH]])
            for i in range(0, len(features), NODE_BATCH)
        ]
        tail.append(cypher.publish_graph(gid, len(graph.nodes), graph.n_links))
        n = graph.n_links
        if n <= LINK_BATCH and len(head) + len(tail) <= STATEMENTS_PER_TRANSACTION:
            self.run_write_many(head + ([self._links(gid, graph, 0, n)] if n else []) + tail)
            if progress and n:
                progress(n)
        else:
            for start in range(0, len(head), STATEMENTS_PER_TRANSACTION):
                self.run_write_many(head[start : start + STATEMENTS_PER_TRANSACTION])
            # each batch's lists made as it is sent: all of a big graph's at once would take
            # several times the memory of its arrays
            for start in range(0, n, LINK_BATCH):
                stop = min(n, start + LINK_BATCH)
                self.run_write(*self._links(gid, graph, start, stop))
                if progress:
                    progress(stop - start)
            for start in range(0, len(tail), STATEMENTS_PER_TRANSACTION):
                self.run_write_many(tail[start : start + STATEMENTS_PER_TRANSACTION])
        with self.engine.begin() as conn:
            finalize(conn)

    @staticmethod
    def _links(gid: int, graph: ParsedGraph, start: int, stop: int) -> tuple[str, dict[str, Any]]:
        return cypher.create_links(
            gid, graph.link_src[start:stop].tolist(), graph.link_tgt[start:stop].tolist(), graph.link_weight[start:stop].tolist(), start
        )

    def _merge_features(self, feature_ids: dict[FeatureKey, int]) -> None:
        """(:Feature) nodes for the features not yet known to be stored, in ascending order.

        Feature nodes are never deleted, so once merged a feature is remembered for the
        store's lifetime and later graphs skip it.
        """
        new = sorted((fid, key) for key, fid in feature_ids.items() if fid not in self._stored_features)
        rows = [{"fid": fid, "transcoder_set": key.transcoder_set, "layer": key.layer, "index": key.index} for fid, key in new]
        statements = [cypher.merge_features(rows[i : i + NODE_BATCH]) for i in range(0, len(rows), NODE_BATCH)]
        for start in range(0, len(statements), STATEMENTS_PER_TRANSACTION):
            self.run_write_many(statements[start : start + STATEMENTS_PER_TRANSACTION])
        self._stored_features.update(fid for fid, _ in new)

    def purge(self, gid: int) -> None:
        """Feature edges go first: a graph with no nodes left then has nothing else left either,
        which lets ``write_graph`` skip purging a graph id that has no nodes."""
        self.purge_feature_edges(gid)
        for make in (cypher.delete_links_batch, cypher.delete_nodes_batch):
            while True:
                rows = self.run_write(*make(gid, DELETE_BATCH))
                if not rows or rows[0]["n"] == 0:
                    break
        self.run_write(*cypher.delete_graph(gid))

    # --- reading -----------------------------------------------------------------------------

    def load_graph(self, gid: int) -> StoredGraph:
        records = self.run_read(*cypher.graph_nodes(gid))
        if not records:
            raise NotFoundError(f"graph {gid} has no nodes in Neo4j")
        nodes = [cypher.stored_node_row(r["n"]) for r in records]
        links = self.run_read(*cypher.graph_links(gid))
        src = np.array([r["s"] for r in links], dtype=np.int32)
        tgt = np.array([r["t"] for r in links], dtype=np.int32)
        weight = np.array([r["w"] for r in links], dtype=np.float64)
        return StoredGraph(gid, nodes, src, tgt, weight)

    def counts(self, gids: list[int] | None = None) -> dict[str, int]:
        return {
            "nodes": self.run_read(*cypher.count_nodes(gids))[0]["n"],
            "links": self.run_read(*cypher.count_links(gids))[0]["n"],
            "features": self.run_read(*cypher.count_features(gids))[0]["n"],
        }

