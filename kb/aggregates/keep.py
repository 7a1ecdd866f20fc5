"""Adding a graph to the aggregates and taking it away, inside the caller's SQL transaction.

The caller is the transaction that makes the graph visible (``ready``) or takes it out of sight,
so that the aggregates always count exactly the visible graphs. Sums and counts move by
increments; a minimum or maximum that the graph taken away held is recomputed, for those keys
only, from the per-graph rows that remain. Sums kept by adding and subtracting can differ from a
fresh sum in the last bits; ``circuitkb aggregates check`` allows for that (and only that).

Concurrency: on PostgreSQL every transaction that changes the aggregates first takes one
transaction-level advisory lock (:func:`lock`), before it touches any other row, so that two
ingests publishing at once change them one after the other: no update is lost, a recomputed
minimum sees every committed graph, and no two transactions wait on each other's rows. SQLite
runs one writer at a time anyway.

A graph has thousands of feature edges: their rows go through the driver (``executemany`` of a
statement compiled once), since SQLAlchemy's work per row would cost more than the database's,
``EDGE_BATCH`` at a time, so that a huge graph's millions of edges are never all Python rows at once.
A published graph's features and edges are added to the totals by one statement each, which
reads the per-graph rows just written (``INSERT ... SELECT ... ON CONFLICT``).
"""

from __future__ import annotations

from collections import Counter
from itertools import islice
from operator import itemgetter
from typing import Any, Callable, Sequence

from sqlalchemy import Connection, Executable, Select, and_, bindparam, case, delete, func, literal_column, select, tuple_, update
from sqlalchemy.sql.elements import ColumnElement

from kb.aggregates.values import GraphValues
from kb.registry import dialect_insert
from kb.sqlqueries import among, keys_table
from kb.stores.embedded import bulk_insert
from schema.sql import feature_edge_graphs, feature_edge_histogram, feature_edge_totals, feature_graphs, feature_totals, path_group_packs

# the advisory lock of the aggregates; each writer that serialises on PostgreSQL has its own:
# 715517 migrations (kb.sqldb), 715518 graph-less descriptions and labels (kb.featuremeta,
# kb.labels.exchange), 715519 accounts (kb.labels.accounts)
AGGREGATES_LOCK = 715520

VALUES = ("activation", "influence")
_FG = ("feature_id", "graph_id", "activation", "influence")
_EG = ("src", "tgt", "graph_id", "weight", "n_links")
_PG = tuple(c.name for c in path_group_packs.columns)
_FT = tuple(c.name for c in feature_totals.columns)
_ET = ("src", "tgt", "n_graphs", "weight_sum", "abs_sum", "weight_min", "weight_max", "n_links")
_ONE = literal_column("1")
_ZERO = literal_column("0")
# feature edges written or taken away per batch of rows
EDGE_BATCH = 50_000
# path group packs written per batch: a huge graph's hold a hundred megabytes or more, made
# as they are written rather than all at once
PACK_BATCH = 16


def lock(conn: Connection) -> None:
    """Wait for the aggregates (PostgreSQL); call it first in the transaction, before other writes."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({AGGREGATES_LOCK})")


def publish(conn: Connection, values: GraphValues) -> None:
    """Add graph ``values.gid`` (replacing what it had added before, if anything)."""
    lock(conn)
    unpublish(conn, values.gid)
    if insert_rows(conn, values):
        _executemany(conn, "feature totals: add", _feature_upsert, ("gid",), [(values.gid,)])
    if len(values.edges):
        _add_edge_totals(conn, values)


def insert_rows(conn: Connection, values: GraphValues) -> list[tuple[Any, ...]]:
    """Write the graph's own rows (not the totals); returns its feature rows."""
    rows = values.feature_rows()
    if rows:
        bulk_insert(conn, feature_graphs.name, _FG, rows)
    for start in range(0, len(values.edges), EDGE_BATCH):
        bulk_insert(conn, feature_edge_graphs.name, _EG, values.edge_rows(start, start + EDGE_BATCH))
    packs = values.paths.packs()
    while batch := list(islice(packs, PACK_BATCH)):
        bulk_insert(conn, path_group_packs.name, _PG, batch)
    return rows


def unpublish(conn: Connection, gid: int) -> None:
    """Take graph ``gid`` away (nothing happens if it was not added)."""
    lock(conn)
    _take_features(conn, gid)
    _take_edges(conn, gid)
    conn.execute(delete(path_group_packs).where(path_group_packs.c.graph_id == gid))


def fresh_feature_totals() -> Select[Any]:
    """Each feature's row of feature_totals, recomputed from the per-graph rows."""
    fg = feature_graphs.c
    per_value = [agg(fg[v]) for v in VALUES for agg in (func.count, func.sum, func.min, func.max)]
    return select(fg.feature_id, func.count(), *per_value).group_by(fg.feature_id)


def fresh_edge_totals() -> Select[Any]:
    """Each feature edge's row of feature_edge_totals, recomputed from the per-graph rows."""
    eg = feature_edge_graphs.c
    return select(
        eg.src, eg.tgt, func.count(), func.sum(eg.weight), func.sum(func.abs(eg.weight)), func.min(eg.weight), func.max(eg.weight), func.sum(eg.n_links)
    ).group_by(eg.src, eg.tgt)


# --- features ---------------------------------------------------------------------------------------


def _feature_upsert(conn: Connection) -> Executable:
    """Graph ``gid``'s features, from the per-graph rows just written, added to their totals (one
    statement: the database reads the rows, rather than a statement run per feature)."""
    t, fg = feature_totals.c, feature_graphs.c
    counted = [item for v in VALUES for item in (case((fg[v].is_(None), _ZERO), else_=_ONE), fg[v], fg[v], fg[v])]
    stmt = dialect_insert(conn, feature_totals).from_select(_FT, select(fg.feature_id, _ONE, *counted).where(fg.graph_id == bindparam("gid")))
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[t.feature_id],
        set_={
            "n_graphs": t.n_graphs + new.n_graphs,
            **{f"{v}_n": t[f"{v}_n"] + new[f"{v}_n"] for v in VALUES},
            **{f"{v}_sum": _plus(t[f"{v}_sum"], new[f"{v}_sum"]) for v in VALUES},
            **{f"{v}_min": _least(t[f"{v}_min"], new[f"{v}_min"]) for v in VALUES},
            **{f"{v}_max": _greatest(t[f"{v}_max"], new[f"{v}_max"]) for v in VALUES},
        },
    )


def _feature_minus(conn: Connection) -> Executable:
    t = feature_totals.c
    return (
        update(feature_totals)
        .where(t.feature_id == bindparam("b_fid"))
        .values(
            n_graphs=t.n_graphs - _ONE,
            **{f"{v}_n": t[f"{v}_n"] - bindparam(f"b_{v}_n") for v in VALUES},
            **{f"{v}_sum": t[f"{v}_sum"] - bindparam(f"b_{v}_sum") for v in VALUES},
        )
    )


def _feature_set(conn: Connection) -> Executable:
    t = feature_totals.c
    return update(feature_totals).where(t.feature_id == bindparam("b_feature_id")).values(**{name: bindparam(f"b_{name}") for name in _FT[1:]})


def _take_features(conn: Connection, gid: int) -> None:
    fg, t = feature_graphs.c, feature_totals.c
    rows = conn.execute(
        select(fg.feature_id, fg.activation, fg.influence, t.n_graphs, t.activation_min, t.activation_max, t.influence_min, t.influence_max)
        .select_from(feature_graphs.join(feature_totals, t.feature_id == fg.feature_id))
        .where(fg.graph_id == gid)
    ).all()
    if not rows:
        return
    conn.execute(delete(feature_graphs).where(fg.graph_id == gid))
    gone, recompute, minus = [], [], []
    for fid, act, infl, n, act_min, act_max, infl_min, infl_max in rows:
        if n <= 1:
            gone.append(fid)
        elif _at_end(act, act_min, act_max) or _at_end(infl, infl_min, infl_max):
            recompute.append(fid)
        else:
            minus.append((fid, int(act is not None), act or 0.0, int(infl is not None), infl or 0.0))
    if gone:
        conn.execute(delete(feature_totals).where(among(conn, t.feature_id, gone)))
    if minus:
        _executemany(conn, "feature totals: minus", _feature_minus, ("b_fid", "b_activation_n", "b_activation_sum", "b_influence_n", "b_influence_sum"), minus)
    if recompute:
        fresh = conn.execute(fresh_feature_totals().where(among(conn, fg.feature_id, recompute))).all()
        _executemany(conn, "feature totals: set", _feature_set, tuple(f"b_{name}" for name in _FT), [tuple(row) for row in fresh])


# --- feature edges -------------------------------------------------------------------------------


def _edge_upsert(conn: Connection) -> Executable:
    """Graph ``gid``'s edges, from the per-graph rows just written, added to their totals in one
    statement (a huge graph's millions of edges never become Python rows here)."""
    t, eg = feature_edge_totals.c, feature_edge_graphs.c
    rows = select(eg.src, eg.tgt, _ONE, eg.weight, func.abs(eg.weight), eg.weight, eg.weight, eg.n_links).where(eg.graph_id == bindparam("gid"))
    stmt = dialect_insert(conn, feature_edge_totals).from_select(_ET, rows)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[t.src, t.tgt],
        set_={
            "n_graphs": t.n_graphs + new.n_graphs,
            "weight_sum": t.weight_sum + new.weight_sum,
            "abs_sum": t.abs_sum + new.abs_sum,
            "weight_min": case((new.weight_min < t.weight_min, new.weight_min), else_=t.weight_min),
            "weight_max": case((new.weight_max > t.weight_max, new.weight_max), else_=t.weight_max),
            "n_links": t.n_links + new.n_links,
        },
    )


def _add_edge_totals(conn: Connection, values: GraphValues) -> None:
    """The totals of the graph's edges, whose per-graph rows were just written."""
    eg, t = feature_edge_graphs.c, feature_edge_totals.c
    moves = Counter({(0, 1): len(values.edges)})
    before = select(t.n_graphs, func.count()).select_from(feature_edge_graphs.join(feature_edge_totals, and_(t.src == eg.src, t.tgt == eg.tgt)))
    for n, count in conn.execute(before.where(eg.graph_id == values.gid).group_by(t.n_graphs)):
        moves[(0, 1)] -= count
        moves[(n, n + 1)] += count
    _executemany(conn, "edge totals: add", _edge_upsert, ("gid",), [(values.gid,)])
    _move_histogram(conn, moves)


_BY_KEY = and_(feature_edge_totals.c.src == bindparam("b_src"), feature_edge_totals.c.tgt == bindparam("b_tgt"))


def _edge_delete(conn: Connection) -> Executable:
    return delete(feature_edge_totals).where(_BY_KEY)


def _edge_minus(conn: Connection) -> Executable:
    t = feature_edge_totals.c
    return (
        update(feature_edge_totals)
        .where(_BY_KEY)
        .values(n_graphs=t.n_graphs - _ONE, weight_sum=t.weight_sum - bindparam("b_w"), abs_sum=t.abs_sum - bindparam("b_abs"), n_links=t.n_links - bindparam("b_nl"))
    )


def _edge_set(conn: Connection) -> Executable:
    return update(feature_edge_totals).where(_BY_KEY).values(**{name: bindparam(f"b_{name}") for name in _ET[2:]})


def _take_edges(conn: Connection, gid: int) -> None:
    """Graph ``gid``'s edges taken away ``EDGE_BATCH`` at a time, in key order: each batch's
    per-graph rows are deleted before its totals are mended (a recomputed minimum or maximum must
    not see them), so the next batch is again the first rows left."""
    eg, t = feature_edge_graphs.c, feature_edge_totals.c
    first_left = (
        select(eg.src, eg.tgt, eg.weight, eg.n_links, t.n_graphs, t.weight_min, t.weight_max)
        .select_from(feature_edge_graphs.join(feature_edge_totals, and_(t.src == eg.src, t.tgt == eg.tgt)))
        .where(eg.graph_id == gid)
        .order_by(eg.src, eg.tgt)
        .limit(EDGE_BATCH)
    )
    moves: Counter[tuple[int, int]] = Counter()
    while rows := conn.execute(first_left).all():
        conn.execute(delete(feature_edge_graphs).where(eg.graph_id == gid, tuple_(eg.src, eg.tgt) <= tuple_(rows[-1].src, rows[-1].tgt)))
        _take_edge_totals(conn, rows, moves)
        if len(rows) < EDGE_BATCH:
            break
    _move_histogram(conn, moves)


def _take_edge_totals(conn: Connection, rows: Sequence[Any], moves: Counter[tuple[int, int]]) -> None:
    """Take away from the totals the edges ``rows`` (src, tgt, weight, n_links, then the totals'
    n_graphs, weight_min, weight_max), whose per-graph rows are gone; count their moves."""
    eg = feature_edge_graphs.c
    gone, recompute, minus = [], [], []
    for src, tgt, weight, n_links, n, low, high in rows:
        moves[(n, n - 1)] += 1
        if n <= 1:
            gone.append((src, tgt))
        elif _at_end(weight, low, high):
            recompute.append((src, tgt))
        else:
            minus.append((src, tgt, weight, abs(weight), n_links))
    if gone:
        _executemany(conn, "edge totals: delete", _edge_delete, ("b_src", "b_tgt"), gone)
    if minus:
        _executemany(conn, "edge totals: minus", _edge_minus, ("b_src", "b_tgt", "b_w", "b_abs", "b_nl"), minus)
    if recompute:
        keys = keys_table(conn, recompute, ("src", "tgt"))
        fresh = conn.execute(fresh_edge_totals().select_from(keys).join(feature_edge_graphs, and_(eg.src == keys.c.src, eg.tgt == keys.c.tgt))).all()
        _executemany(conn, "edge totals: set", _edge_set, tuple(f"b_{name}" for name in _ET), [tuple(row) for row in fresh])


def _move_histogram(conn: Connection, moves: Counter[tuple[int, int]]) -> None:
    """``moves[(a, b)]`` edges went from being in a graphs to b: that many fewer edges in a graphs
    and more in b (0 graphs has no row)."""
    delta: Counter[int] = Counter()
    for (old, new), count in moves.items():
        delta[old] -= count
        delta[new] += count
    rows = [{"n_graphs": n, "n_edges": d} for n, d in sorted(delta.items()) if n > 0 and d != 0]
    if not rows:
        return
    h = feature_edge_histogram.c
    stmt = dialect_insert(conn, feature_edge_histogram)
    conn.execute(stmt.on_conflict_do_update(index_elements=[h.n_graphs], set_={"n_edges": h.n_edges + stmt.excluded.n_edges}), rows)
    conn.execute(delete(feature_edge_histogram).where(among(conn, h.n_graphs, [r["n_graphs"] for r in rows]), h.n_edges == 0))


# --- helpers ---------------------------------------------------------------------------------------

# (dialect, statement) -> SQL text and the order of its positional parameters (None: named)
_COMPILED: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}


def _executemany(conn: Connection, name: str, build: Callable[[Connection], Executable], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Run the statement ``build`` makes once per row, through the driver; ``rows`` hold the
    values of the statement's parameters ``columns``, in that order."""
    key = (conn.dialect.name, name)
    if key not in _COMPILED:
        compiled = build(conn).compile(dialect=conn.dialect)
        _COMPILED[key] = (str(compiled), tuple(compiled.positiontup) if compiled.positiontup else None)
    sql, order = _COMPILED[key]
    if order is None:
        params: Sequence[Any] = [dict(zip(columns, row)) for row in rows]
    else:
        where = [columns.index(n) for n in order]
        pick = itemgetter(*where)
        params = [pick(row) for row in rows] if len(where) > 1 else [(row[where[0]],) for row in rows]
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def _at_end(value: float | None, low: float | None, high: float | None) -> bool:
    """Whether taking ``value`` away may change the minimum or the maximum."""
    return value is not None and (low is None or high is None or value <= low or value >= high)


def _plus(total: ColumnElement[Any], value: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((value.is_(None), total), (total.is_(None), value), else_=total + value)


def _least(low: ColumnElement[Any], value: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((value.is_(None), low), (low.is_(None) | (value < low), value), else_=low)


def _greatest(high: ColumnElement[Any], value: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((value.is_(None), high), (high.is_(None) | (value > high), value), else_=high)
