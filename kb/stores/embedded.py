"""The embedded graph store: each graph's nodes and links in tables of the SQL database.

A graph is written and published in one SQL transaction, so it appears whole or not at all.
Bulk rows go through the driver directly (``executemany`` on SQLite, ``COPY`` on PostgreSQL):
the ORM layer would cost more than the database.
"""

from __future__ import annotations

import logging
from itertools import repeat
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, select

from ingest.records import FeatureKey, ParsedGraph
from kb.errors import NotFoundError
from kb.stores.base import NODE_COLUMNS, Finalize, GraphStore, LinkProgress, StoredGraph, node_input_totals, node_values
from kb.stores.embedded_circuit_queries import EmbeddedCircuitQueries, purge_feature_edges, write_feature_edges
from kb.stores.embedded_feature_queries import EmbeddedFeatureQueries
from schema.sql import graph_links, graph_nodes

log = logging.getLogger(__name__)

LINK_BATCH = 200_000
TRANSACTION_LINKS = 1_000_000


class EmbeddedStore(EmbeddedFeatureQueries, EmbeddedCircuitQueries, GraphStore):
    name = "embedded"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def setup(self) -> None:
        """The tables come with the SQL migrations; nothing else to do."""

    def write_graph(
        self,
        gid: int,
        graph: ParsedGraph,
        feature_ids: dict[FeatureKey, int],
        finalize: Finalize,
        progress: LinkProgress | None = None,
    ) -> None:
        """One transaction for an ordinary graph; a huge one is committed in slices.

        SQLite's memory grows with the size of a transaction, so links beyond
        ``TRANSACTION_LINKS`` go in transactions of their own. The graph stays invisible either
        way until ``finalize`` publishes it, and a half-written one is purged before a rewrite.
        """
        n = graph.n_links
        with self.engine.begin() as conn:
            self._purge(conn, gid)
            totals = node_input_totals(graph)
            rows = [(gid, *node_values(node, feature_ids, totals)) for node in graph.nodes]
            bulk_insert(conn, "graph_nodes", ("graph_id", *NODE_COLUMNS), rows)
            if n <= TRANSACTION_LINKS:
                self._insert_links(conn, gid, graph, 0, n, progress)
                write_feature_edges(conn, gid, graph, feature_ids)
                finalize(conn)
                return
        for start in range(0, n, TRANSACTION_LINKS):
            with self.engine.begin() as conn:
                self._insert_links(conn, gid, graph, start, min(n, start + TRANSACTION_LINKS), progress)
        with self.engine.begin() as conn:
            write_feature_edges(conn, gid, graph, feature_ids)
            finalize(conn)

    @staticmethod
    def _insert_links(conn: Connection, gid: int, graph: ParsedGraph, first: int, last: int, progress: LinkProgress | None) -> None:
        for start in range(first, last, LINK_BATCH):
            stop = min(last, start + LINK_BATCH)
            batch = zip(
                repeat(gid),
                range(start, stop),
                graph.link_src[start:stop].tolist(),
                graph.link_tgt[start:stop].tolist(),
                graph.link_weight[start:stop].tolist(),
            )
            bulk_insert(conn, "graph_links", ("graph_id", "idx", "src", "tgt", "weight"), batch)
            if progress:
                progress(stop - start)

    def purge(self, gid: int) -> None:
        with self.engine.begin() as conn:
            self._purge(conn, gid)

    @staticmethod
    def _purge(conn: Connection, gid: int) -> None:
        conn.execute(delete(graph_links).where(graph_links.c.graph_id == gid))
        conn.execute(delete(graph_nodes).where(graph_nodes.c.graph_id == gid))
        purge_feature_edges(conn, gid)

    def load_graph(self, gid: int) -> StoredGraph:
        with self.engine.connect() as conn:
            cols = [graph_nodes.c[c] for c in NODE_COLUMNS]
            nodes = [dict(r._mapping) for r in conn.execute(select(*cols).where(graph_nodes.c.graph_id == gid).order_by(graph_nodes.c.idx))]
            if not nodes:
                raise NotFoundError(f"graph {gid} has no nodes in the embedded store")
            links = conn.execute(
                select(graph_links.c.src, graph_links.c.tgt, graph_links.c.weight)
                .where(graph_links.c.graph_id == gid)
                .order_by(graph_links.c.idx)
            ).all()
        arr = np.array(links, dtype=np.float64).reshape(-1, 3)
        return StoredGraph(gid, nodes, arr[:, 0].astype(np.int32), arr[:, 1].astype(np.int32), arr[:, 2])

    def counts(self, gids: list[int] | None = None) -> dict[str, int]:
        with self.engine.connect() as conn:
            node_q = select(func.count()).select_from(graph_nodes)
            link_q = select(func.count()).select_from(graph_links)
            feat_q = select(func.count(func.distinct(graph_nodes.c.feature_id)))
            if gids is not None:
                node_q = node_q.where(graph_nodes.c.graph_id.in_(gids))
                link_q = link_q.where(graph_links.c.graph_id.in_(gids))
                feat_q = feat_q.where(graph_nodes.c.graph_id.in_(gids))
            return {
                "nodes": conn.execute(node_q).scalar_one(),
                "links": conn.execute(link_q).scalar_one(),
                "features": conn.execute(feat_q).scalar_one(),
            }


def bulk_insert(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert many rows through the driver; table and column names are our own constants."""
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    placeholders = ", ".join("?" for _ in columns)
    cur = raw.cursor()
    try:
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
    finally:
        cur.close()
