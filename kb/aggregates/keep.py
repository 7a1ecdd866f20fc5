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
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from sqlalchemy import Connection, Executable, and_, bindparam, case, delete, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from kb.aggregates.values import GraphValues
from kb.registry import dialect_insert
from kb.sqlqueries import among, keys_table
from kb.stores.embedded import bulk_insert
from schema.sql import feature_edge_graphs, feature_edge_histogram, feature_edge_totals, feature_graphs, feature_totals

# the advisory lock of the aggregates (kb.sqldb takes 715517 for migrations)
AGGREGATES_LOCK = 715518

_FG = ("feature_id", "graph_id", "activation", "influence")
_EG = ("src", "tgt", "graph_id", "weight", "n_links")


def lock(conn: Connection) -> None:
    """Wait for the aggregates (PostgreSQL); call it first in the transaction, before other writes."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({AGGREGATES_LOCK})")


def publish(conn: Connection, values: GraphValues) -> None:
    """Add graph ``values.gid`` (replacing what it had added before, if anything)."""
    lock(conn)
    unpublish(conn, values.gid)
    rows = values.feature_rows()
    if rows:
        bulk_insert(conn, feature_graphs.name, _FG, rows)
        _add_feature_totals(conn, rows)
    edges = values.edge_rows()
    if edges:
        bulk_insert(conn, feature_edge_graphs.name, _EG, edges)
        _add_edge_totals(conn, edges)


def unpublish(conn: Connection, gid: int) -> None:
    """Take graph ``gid`` away (nothing happens if it was not added)."""
    lock(conn)
    _take_features(conn, gid)
    _take_edges(conn, gid)


# --- features ---------------------------------------------------------------------------------------


def _add_feature_totals(conn: Connection, rows: Sequence[tuple[int, int, float | None, float | None]]) -> None:
    t = feature_totals.c
    stmt = dialect_insert(conn, feature_totals)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.feature_id],
        set_={
            "n_graphs": t.n_graphs + new.n_graphs,
            **{f"{v}_n": t[f"{v}_n"] + new[f"{v}_n"] for v in ("activation", "influence")},
            **{f"{v}_sum": _plus(t[f"{v}_sum"], new[f"{v}_sum"]) for v in ("activation", "influence")},
            **{f"{v}_min": _least(t[f"{v}_min"], new[f"{v}_min"]) for v in ("activation", "influence")},
            **{f"{v}_max": _greatest(t[f"{v}_max"], new[f"{v}_max"]) for v in ("activation", "influence")},
        },
    )
    _executemany(conn, stmt, [{"feature_id": fid, "n_graphs": 1, **_stat("activation", act), **_stat("influence", infl)} for fid, _gid, act, infl in rows])


def _stat(name: str, value: float | None) -> dict[str, Any]:
    return {f"{name}_n": int(value is not None), f"{name}_sum": value, f"{name}_min": value, f"{name}_max": value}


def _take_features(conn: Connection, gid: int) -> None:
    fg, t = feature_graphs.c, feature_totals.c
    rows = conn.execute(select(fg.feature_id, fg.activation, fg.influence).where(fg.graph_id == gid)).all()
    if not rows:
        return
    conn.execute(delete(feature_graphs).where(fg.graph_id == gid))
    query = select(t.feature_id, t.n_graphs, t.activation_min, t.activation_max, t.influence_min, t.influence_max)
    totals = {r.feature_id: r for r in conn.execute(query.where(among(conn, t.feature_id, [r.feature_id for r in rows])))}
    gone, recompute, minus = [], [], []
    for fid, act, infl in rows:
        total = totals.get(fid)
        if total is None:
            continue
        if total.n_graphs <= 1:
            gone.append(fid)
        elif _at_end(act, total.activation_min, total.activation_max) or _at_end(infl, total.influence_min, total.influence_max):
            recompute.append(fid)
        else:
            minus.append({"b_fid": fid, "b_an": int(act is not None), "b_as": act or 0.0, "b_in": int(infl is not None), "b_is": infl or 0.0})
    if gone:
        conn.execute(delete(feature_totals).where(among(conn, t.feature_id, gone)))
    if minus:
        _executemany(
            conn,
            update(feature_totals)
            .where(t.feature_id == bindparam("b_fid"))
            .values(
                n_graphs=t.n_graphs - 1,
                activation_n=t.activation_n - bindparam("b_an"),
                activation_sum=t.activation_sum - bindparam("b_as"),
                influence_n=t.influence_n - bindparam("b_in"),
                influence_sum=t.influence_sum - bindparam("b_is"),
            ),
            minus,
        )
    if recompute:
        fresh = conn.execute(
            select(
                fg.feature_id,
                func.count(),
                *(agg(fg[name]) for name in ("activation", "influence") for agg in (func.count, func.sum, func.min, func.max)),
            )
            .where(among(conn, fg.feature_id, recompute))
            .group_by(fg.feature_id)
        ).all()
        names = [f"b_{v}_{s}" for v in ("activation", "influence") for s in ("n", "sum", "min", "max")]
        _executemany(
            conn,
            update(feature_totals)
            .where(t.feature_id == bindparam("b_fid"))
            .values(n_graphs=bindparam("b_n"), **{name[2:]: bindparam(name) for name in names}),
            [{"b_fid": row[0], "b_n": row[1], **dict(zip(names, row[2:]))} for row in fresh],
        )


# --- feature edges -------------------------------------------------------------------------------


def _add_edge_totals(conn: Connection, rows: Sequence[tuple[int, int, int, float, int]]) -> None:
    t = feature_edge_totals.c
    moves = Counter({(0, 1): len(rows)})
    for n, count in _counts_of(conn, [(src, tgt) for src, tgt, *_rest in rows]).items():
        moves[(0, 1)] -= count
        moves[(n, n + 1)] += count
    stmt = dialect_insert(conn, feature_edge_totals)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
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
    params = [
        {"src": s, "tgt": g, "n_graphs": 1, "weight_sum": w, "abs_sum": abs(w), "weight_min": w, "weight_max": w, "n_links": n}
        for s, g, _gid, w, n in rows
    ]
    _executemany(conn, stmt, params)
    _move_histogram(conn, moves)


def _counts_of(conn: Connection, keys: Sequence[tuple[int, int]]) -> Counter[int]:
    """How many of the edges ``keys`` are in n graphs now, per n (edges in none left out)."""
    t = feature_edge_totals.c
    table = keys_table(conn, keys, ("src", "tgt"))
    query = select(t.n_graphs, func.count()).select_from(table).join(feature_edge_totals, and_(t.src == table.c.src, t.tgt == table.c.tgt)).group_by(t.n_graphs)
    return Counter(dict(conn.execute(query).all()))


def _take_edges(conn: Connection, gid: int) -> None:
    eg, t = feature_edge_graphs.c, feature_edge_totals.c
    rows = conn.execute(select(eg.src, eg.tgt, eg.weight, eg.n_links).where(eg.graph_id == gid)).all()
    if not rows:
        return
    conn.execute(delete(feature_edge_graphs).where(eg.graph_id == gid))
    keys = keys_table(conn, [(r.src, r.tgt) for r in rows], ("src", "tgt"))
    query = select(t.src, t.tgt, t.n_graphs, t.weight_min, t.weight_max).select_from(keys).join(feature_edge_totals, and_(t.src == keys.c.src, t.tgt == keys.c.tgt))
    totals = {(r.src, r.tgt): r for r in conn.execute(query)}
    gone, recompute, minus = [], [], []
    moves: Counter[tuple[int, int]] = Counter()
    for src, tgt, weight, n_links in rows:
        total = totals.get((src, tgt))
        if total is None:
            continue
        moves[(total.n_graphs, total.n_graphs - 1)] += 1
        key = {"b_src": src, "b_tgt": tgt}
        if total.n_graphs <= 1:
            gone.append(key)
        elif _at_end(weight, total.weight_min, total.weight_max):
            recompute.append((src, tgt))
        else:
            minus.append({**key, "b_w": weight, "b_abs": abs(weight), "b_nl": n_links})
    by_key = and_(t.src == bindparam("b_src"), t.tgt == bindparam("b_tgt"))
    if gone:
        _executemany(conn, delete(feature_edge_totals).where(by_key), gone)
    if minus:
        _executemany(
            conn,
            update(feature_edge_totals)
            .where(by_key)
            .values(
                n_graphs=t.n_graphs - 1,
                weight_sum=t.weight_sum - bindparam("b_w"),
                abs_sum=t.abs_sum - bindparam("b_abs"),
                n_links=t.n_links - bindparam("b_nl"),
            ),
            minus,
        )
    if recompute:
        keys = keys_table(conn, recompute, ("src", "tgt"))
        fresh = conn.execute(
            select(eg.src, eg.tgt, func.count(), func.sum(eg.weight), func.sum(func.abs(eg.weight)), func.min(eg.weight), func.max(eg.weight), func.sum(eg.n_links))
            .select_from(keys)
            .join(feature_edge_graphs, and_(eg.src == keys.c.src, eg.tgt == keys.c.tgt))
            .group_by(eg.src, eg.tgt)
        ).all()
        _executemany(
            conn,
            update(feature_edge_totals)
            .where(by_key)
            .values(
                n_graphs=bindparam("b_n"),
                weight_sum=bindparam("b_sum"),
                abs_sum=bindparam("b_abs"),
                weight_min=bindparam("b_min"),
                weight_max=bindparam("b_max"),
                n_links=bindparam("b_nl"),
            ),
            [
                {"b_src": s, "b_tgt": g, "b_n": n, "b_sum": total, "b_abs": absolute, "b_min": low, "b_max": high, "b_nl": links}
                for s, g, n, total, absolute, low, high, links in fresh
            ],
        )
    _move_histogram(conn, moves)


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


def _executemany(conn: Connection, stmt: Executable, rows: Sequence[dict[str, Any]]) -> None:
    """Run ``stmt`` once per row of parameters through the driver: for the thousands of keys of
    a graph, SQLAlchemy's work per row would cost more than the database's."""
    compiled = stmt.compile(dialect=conn.dialect)
    fixed = compiled.params  # the statement's own constants (the 1 of ``n_graphs - 1``), and None for the rows' names
    order = compiled.positiontup
    if order:
        params: Sequence[Any] = [tuple(row[name] if name in row else fixed[name] for name in order) for row in rows]
    else:
        params = [{**fixed, **row} for row in rows]
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(str(compiled), params)
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
