"""The embedded graph store: each graph's nodes and links in tables of the SQL database.

A graph is written and published in one SQL transaction, so it appears whole or not at all.
Bulk rows go through the driver directly (INSERT statements of many rows on SQLite, ``COPY`` on
PostgreSQL, binary for links, whose fields are all numbers packed by numpy): the ORM layer would
cost more than the database. Links are written sorted by the table's key (graph_id, src, tgt,
idx), so that the table's B-tree grows at its end.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, select

from ingest.records import FeatureKey, ParsedGraph
from kb.errors import NotFoundError
from kb.stores.base import NODE_COLUMNS, Finalize, GraphStore, LinkProgress, StoredGraph, node_input_totals, node_values
from kb.stores.circuit_queries import FeatureEdges
from kb.stores.embedded_circuit_queries import EmbeddedCircuitQueries, purge_feature_edges, read_links, write_feature_edges
from kb.stores.embedded_feature_queries import EmbeddedFeatureQueries
from schema.sql import graph_links, graph_nodes

log = logging.getLogger(__name__)

LINK_BATCH = 200_000
TRANSACTION_LINKS = 1_000_000
CONCURRENT_WRITES_POSTGRESQL = 2
# SQLite page cache (KiB) while writing a graph of more than TRANSACTION_LINKS links
HUGE_GRAPH_PAGE_CACHE_KIB = 64 * 1024


class EmbeddedStore(EmbeddedFeatureQueries, EmbeddedCircuitQueries, GraphStore):
    name = "embedded"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def concurrent_writes(self) -> int:
        """SQLite has one writer at a time; PostgreSQL takes a graph per connection, and its
        server's work (index upkeep, WAL) then runs beside the parsing on other cores."""
        return CONCURRENT_WRITES_POSTGRESQL if self.engine.dialect.name == "postgresql" else 1

    def setup(self) -> None:
        """The tables come with the SQL migrations; nothing else to do."""

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
        """One transaction for an ordinary graph; a huge one is committed in slices.

        SQLite's memory grows with the size of a transaction, so links beyond
        ``TRANSACTION_LINKS`` go in transactions of their own. The graph stays invisible either
        way until ``finalize`` publishes it, and a half-written one is purged before a rewrite.
        """
        n = graph.n_links
        with self.engine.connect() as conn, _page_cache(conn, n):
            if self.in_one_transaction(graph):
                with conn.begin():
                    self.write_graph_in(conn, gid, graph, feature_ids, edges, finalize, progress, fresh)
                return
            with conn.begin():
                self._write_nodes(conn, gid, graph, feature_ids, fresh)
            for start in range(0, n, TRANSACTION_LINKS):
                with conn.begin():
                    self._insert_links(conn, gid, graph, start, min(n, start + TRANSACTION_LINKS), progress)
            with conn.begin():
                write_feature_edges(conn, edges)
                finalize(conn)

    def write_graph_in(
        self,
        conn: Connection,
        gid: int,
        graph: ParsedGraph,
        feature_ids: dict[FeatureKey, int],
        edges: FeatureEdges,
        finalize: Finalize,
        progress: LinkProgress | None = None,
        fresh: bool = False,
    ) -> None:
        """An ordinary graph (at most ``TRANSACTION_LINKS`` links) written and published in the
        caller's transaction on ``conn``, as :meth:`write_graph` does in a transaction of its own."""
        if not self.in_one_transaction(graph):
            raise ValueError(f"graph {gid} has {graph.n_links} links: more than one transaction takes ({TRANSACTION_LINKS})")
        self._write_nodes(conn, gid, graph, feature_ids, fresh)
        self._insert_links(conn, gid, graph, 0, graph.n_links, progress)
        write_feature_edges(conn, edges)
        finalize(conn)

    @staticmethod
    def in_one_transaction(graph: ParsedGraph) -> bool:
        """Whether the graph is written in one transaction (else in slices of ``TRANSACTION_LINKS``)."""
        return graph.n_links <= TRANSACTION_LINKS

    def _write_nodes(self, conn: Connection, gid: int, graph: ParsedGraph, feature_ids: dict[FeatureKey, int], fresh: bool) -> None:
        if not fresh:
            self.purge_in(conn, gid)
        totals = node_input_totals(graph)
        rows = [(gid, *node_values(node, feature_ids, totals)) for node in graph.nodes]
        bulk_insert(conn, "graph_nodes", ("graph_id", *NODE_COLUMNS), rows)

    @staticmethod
    def _insert_links(conn: Connection, gid: int, graph: ParsedGraph, first: int, last: int, progress: LinkProgress | None) -> None:
        """Links ``first`` to ``last`` (file order), written in the table's key order (src, tgt, idx)."""
        src, tgt = graph.link_src[first:last], graph.link_tgt[first:last]
        order = np.lexsort((tgt, src))  # stable: equal ends keep file order, which is idx order
        for start in range(0, len(order), LINK_BATCH):
            part = order[start : start + LINK_BATCH]
            insert_links(conn, gid, src[part], tgt[part], part + first, graph.link_weight[first:last][part])
            if progress:
                progress(len(part))

    def purge(self, gid: int) -> None:
        with self.engine.begin() as conn:
            self.purge_in(conn, gid)

    @staticmethod
    def purge_in(conn: Connection, gid: int) -> None:
        """:meth:`purge` in the caller's transaction."""
        conn.execute(delete(graph_links).where(graph_links.c.graph_id == gid))
        conn.execute(delete(graph_nodes).where(graph_nodes.c.graph_id == gid))
        purge_feature_edges(conn, gid)

    def load_graph(self, gid: int) -> StoredGraph:
        with self.engine.connect() as conn:
            cols = [graph_nodes.c[c] for c in NODE_COLUMNS]
            nodes = [dict(r._mapping) for r in conn.execute(select(*cols).where(graph_nodes.c.graph_id == gid).order_by(graph_nodes.c.idx))]
            if not nodes:
                raise NotFoundError(f"graph {gid} has no nodes in the embedded store")
            src, tgt, weight = read_links(conn, gid)
        return StoredGraph(gid, nodes, src, tgt, weight)

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


# parameters per INSERT statement on SQLite: one statement of many rows binds and runs faster
# than one statement per row (executemany still steps once per statement)
SQLITE_PARAMETERS = 1000
_LINK_COLUMNS = ("graph_id", "src", "tgt", "idx", "weight")
# PostgreSQL's binary COPY format: a header, then per row the number of fields and each field's
# length and big-endian value, then a trailer (links have only fixed-width fields, so numpy packs them)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_COPY_LINK = np.dtype(
    [("fields", ">i2")]
    + [item for name in ("graph_id", "src", "tgt", "idx") for item in ((f"{name}_len", ">i4"), (name, ">i4"))]
    + [("weight_len", ">i4"), ("weight", ">f8")]
)


@contextmanager
def _page_cache(conn: Connection, n_links: int) -> Iterator[None]:
    """A smaller SQLite page cache while a huge graph is written, restored after.

    The cache (kb.sqldb) would grow to its full size with the graph's pages and add that to the
    memory the graph's arrays already take; the write is a little slower with less.
    """
    if conn.dialect.name != "sqlite" or n_links <= TRANSACTION_LINKS:
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size = {-int(HUGE_GRAPH_PAGE_CACHE_KIB)}")
    conn.commit()  # a pragma, not a transaction: end the one SQLAlchemy began
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")
        conn.commit()


def insert_links(conn: Connection, gid: int, src: np.ndarray, tgt: np.ndarray, idx: np.ndarray, weight: np.ndarray) -> None:
    """Insert links of graph ``gid`` given as parallel arrays, in the order given."""
    n = len(src)
    if not n:
        return
    if conn.dialect.name == "postgresql":
        rows = np.empty(n, dtype=_COPY_LINK)
        rows["fields"] = len(_LINK_COLUMNS)
        for name, values in (("graph_id", gid), ("src", src), ("tgt", tgt), ("idx", idx)):
            rows[f"{name}_len"] = 4
            rows[name] = values
        rows["weight_len"] = 8
        rows["weight"] = weight
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY graph_links ({', '.join(_LINK_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_COPY_HEADER + rows.tobytes() + _COPY_TRAILER)
        return
    width = len(_LINK_COLUMNS)
    flat: list[Any] = [gid] * (width * n)
    flat[1::width] = src.tolist()
    flat[2::width] = tgt.tolist()
    flat[3::width] = idx.tolist()
    flat[4::width] = weight.tolist()
    _sqlite_insert(conn, "graph_links", _LINK_COLUMNS, flat)


def bulk_insert(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert many rows through the driver; table and column names are our own constants."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    _sqlite_insert(conn, table, columns, [value for row in rows for value in row])


def _sqlite_insert(conn: Connection, table: str, columns: Sequence[str], flat: list[Any]) -> None:
    """Insert rows given one after another in ``flat``, many rows per statement."""
    width = len(columns)
    n = len(flat) // width
    per = max(1, SQLITE_PARAMETERS // width)
    full = n // per * per
    step = per * width
    cur = conn.connection.driver_connection.cursor()
    try:
        if full:
            cur.executemany(_insert_statement(table, tuple(columns), per), [flat[i : i + step] for i in range(0, full * width, step)])
        if full < n:
            cur.execute(_insert_statement(table, tuple(columns), n - full), flat[full * width :])
    finally:
        cur.close()


@lru_cache(maxsize=None)
def _insert_statement(table: str, columns: tuple[str, ...], rows: int) -> str:
    one = f"({', '.join('?' for _ in columns)})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"
