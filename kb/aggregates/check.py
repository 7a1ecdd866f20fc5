"""The aggregates recomputed from the graph store: compared with what is kept, or kept anew.

Each visible graph's feature values and feature edges are recomputed from its nodes and links in
the graph store (folded as at ingest, so to the last bit) and compared with its kept rows; the
totals and the histogram are recomputed from those rows and compared with the kept ones. Counts,
minima and maxima must be equal; sums may differ by rounding (they are kept by adding and
subtracting), within ``SUM_TOLERANCE`` of the sum of absolute values. Run it while nothing is
being ingested or removed, or it reports the graphs that changed meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import Connection, delete, exists, func, insert, select

from kb.aggregates import keep, reads
from kb.aggregates.paths import PACKED_GROUP, PACKED_PATH
from kb.aggregates.values import GraphValues, of_skeleton
from kb.core import Core
from kb.errors import NotFoundError
from kb.registry import dialect_insert
from schema.sql import READY, feature_edge_graphs, feature_edge_histogram, feature_edge_totals, feature_graphs, feature_totals, graphs, kb_meta, path_group_packs

log = logging.getLogger(__name__)

SUM_TOLERANCE = 1e-9
# differences listed in a report (all are counted)
LISTED = 100

Progress = Callable[[str], None]


@dataclass
class AggregateCheck:
    """What :func:`check` found: ``n_differences`` (0 when the aggregates are exact), the first
    ``LISTED`` of them in words, how many visible graphs were recomputed, and ``notes`` on what
    is exact but could be kept better."""

    graphs: int
    n_differences: int = 0
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.n_differences == 0

    def add(self, text: str) -> None:
        self.n_differences += 1
        if len(self.differences) < LISTED:
            self.differences.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "graphs": self.graphs, "n_differences": self.n_differences, "differences": self.differences, "notes": self.notes}


def check(core: Core, progress: Progress | None = None) -> AggregateCheck:
    """Recompute the aggregates from the graph store and compare them with the kept ones."""
    with core.engine.connect() as conn:
        reason = reads.paths_stale_reason(conn)  # the whole aggregates' staleness too
        visible = _visible(conn)
    report = AggregateCheck(len(visible))
    if reason is not None:
        report.add(f"marked stale: {reason} (`circuitkb aggregates rebuild` recomputes them)")
    older = 0  # graphs whose groups keep their best path alone
    for gid, slug in visible:
        try:
            values = of_skeleton(core.store.graph_skeleton(gid))
        except NotFoundError:
            report.add(f"graph {slug}: not in the {core.store.name} store")
            continue
        with core.engine.connect() as conn:
            older += not _compare_graph(conn, slug, values, report)
        if progress:
            progress(slug)
    if older:
        report.notes.append(
            f"the path groups of {older} graphs were packed before groups kept more than their best path (migration 0018): "
            "they answer exactly, and two-hop questions over them get faster after `circuitkb aggregates rebuild`"
        )
    with core.engine.connect() as conn:
        streaming = conn.execution_options(stream_results=True, yield_per=20_000)
        for table in (feature_graphs, feature_edge_graphs, path_group_packs):
            for gid in conn.execute(select(table.c.graph_id).distinct().where(~_is_visible(table.c.graph_id))).scalars():
                report.add(f"{table.name}: rows of graph id {gid}, which is not visible")
        fg, eg, et, h = feature_graphs.c, feature_edge_graphs.c, feature_edge_totals.c, feature_edge_histogram.c
        recomputed = (
            ("feature_totals", 1, keep.fresh_feature_totals().order_by(fg.feature_id), select(*feature_totals.c).order_by(feature_totals.c.feature_id), _feature_total_differs),
            ("feature_edge_totals", 2, keep.fresh_edge_totals().order_by(eg.src, eg.tgt), select(*feature_edge_totals.c).order_by(et.src, et.tgt), _edge_total_differs),
            ("feature_edge_histogram", 1, _fresh_histogram().order_by(et.n_graphs), select(h.n_graphs, h.n_edges).order_by(h.n_graphs), _row_differs),
        )
        for table, key_width, fresh, kept, differs in recomputed:
            _compare_rows(report, table, key_width, streaming.execute(fresh), streaming.execute(kept), differs)
    return report


def rebuild(core: Core, progress: Progress | None = None) -> int:
    """Recompute every visible graph's rows from the graph store, then the totals; returns the
    number of graphs. Ingests may go on meanwhile: the totals are recounted at the end, under
    the aggregates' lock, and the questions keep their exact paths until then."""
    with core.engine.begin() as conn:
        keep.lock(conn)
        stmt = dialect_insert(conn, kb_meta).values(key=reads.STALE_KEY, value="being rebuilt from the graph store")
        conn.execute(stmt.on_conflict_do_update(index_elements=[kb_meta.c.key], set_={"value": stmt.excluded.value}))
        visible = _visible(conn)
    for gid, slug in visible:
        try:
            values = of_skeleton(core.store.graph_skeleton(gid))
        except NotFoundError:
            log.warning("graph %s is not in the %s store; it is left out of the aggregates", slug, core.store.name)
            continue
        with core.engine.begin() as conn:
            keep.lock(conn)
            conn.execute(delete(feature_graphs).where(feature_graphs.c.graph_id == gid))
            conn.execute(delete(feature_edge_graphs).where(feature_edge_graphs.c.graph_id == gid))
            conn.execute(delete(path_group_packs).where(path_group_packs.c.graph_id == gid))
            if conn.execute(select(graphs.c.status).where(graphs.c.id == gid)).scalar() == READY:
                keep.insert_rows(conn, values)
        if progress:
            progress(slug)
    with core.engine.begin() as conn:
        keep.lock(conn)
        for table in (feature_graphs, feature_edge_graphs, path_group_packs):
            conn.execute(delete(table).where(~_is_visible(table.c.graph_id)))
        recount(conn)
        conn.execute(delete(kb_meta).where(kb_meta.c.key.in_([reads.STALE_KEY, reads.PATHS_STALE_KEY])))
    return len(visible)


def recount(conn: Connection) -> None:
    """The totals and the histogram recomputed from the per-graph rows (in the caller's transaction)."""
    for table in (feature_edge_histogram, feature_edge_totals, feature_totals):
        conn.execute(delete(table))
    conn.execute(insert(feature_totals).from_select([c.name for c in feature_totals.c], keep.fresh_feature_totals()))
    conn.execute(insert(feature_edge_totals).from_select([c.name for c in feature_edge_totals.c], keep.fresh_edge_totals()))
    conn.execute(insert(feature_edge_histogram).from_select(["n_graphs", "n_edges"], _fresh_histogram()))


# --- recomputing ---------------------------------------------------------------------------------


def _visible(conn: Connection) -> list[tuple[int, str]]:
    return [tuple(r) for r in conn.execute(select(graphs.c.id, graphs.c.slug).where(graphs.c.status == READY).order_by(graphs.c.id))]


def _is_visible(column: Any) -> Any:
    return exists().where(graphs.c.id == column, graphs.c.status == READY)


def _fresh_histogram():  # noqa: ANN202
    t = feature_edge_totals.c
    return select(t.n_graphs, func.count()).group_by(t.n_graphs)


# --- comparing -----------------------------------------------------------------------------------


def _compare_graph(conn: Connection, slug: str, values: GraphValues, report: AggregateCheck) -> bool:
    """Whether the graph's path groups keep more than their best path (then those are compared too)."""
    fg, eg = feature_graphs.c, feature_edge_graphs.c
    kept = [tuple(r) for r in conn.execute(select(fg.feature_id, fg.graph_id, fg.activation, fg.influence).where(fg.graph_id == values.gid).order_by(fg.feature_id))]
    _compare_lists(report, f"graph {slug}: features (id, graph, activation, influence)", values.feature_rows(), kept)
    kept = [tuple(r) for r in conn.execute(select(eg.src, eg.tgt, eg.graph_id, eg.weight, eg.n_links).where(eg.graph_id == values.gid).order_by(eg.src, eg.tgt))]
    _compare_lists(report, f"graph {slug}: feature edges (src, tgt, graph, weight, links)", values.edge_rows(), kept)
    paths = reads.graph_path_groups(conn, values.gid)
    _compare_lists(report, f"graph {slug}: path groups (graph, position, {', '.join(PACKED_GROUP.names)})", values.paths.rows(), paths.rows())
    _compare_lists(report, f"graph {slug}: positions of middle features (feature, position)", values.paths.positions(), paths.positions())
    pp = path_group_packs.c
    if conn.execute(select(func.count()).where(pp.graph_id == values.gid, pp.more.is_(None))).scalar_one():
        return False
    _compare_lists(report, f"graph {slug}: paths kept after each group's best (graph, position, {', '.join(PACKED_PATH.names)})", values.paths.more_rows(), paths.more_rows())
    return True


def _compare_lists(report: AggregateCheck, what: str, expected: Sequence[tuple[Any, ...]], kept: Sequence[tuple[Any, ...]]) -> None:
    if list(expected) == list(kept):
        return
    missing, extra = set(expected) - set(kept), set(kept) - set(expected)
    first = min(missing) if missing else min(extra)
    report.add(f"{what}: {len(missing)} rows missing or different, {len(extra)} kept that should not be; e.g. {first}")


def _compare_rows(report: AggregateCheck, table: str, key_width: int, fresh: Iterable[Any], kept: Iterable[Any], differs: Callable[[Any, Any], bool]) -> None:
    """Walk two result sets sorted by the same key, reporting keys on one side only and rows that differ."""
    for key, a, b in _merge(fresh, kept, key_width):
        if a is None:
            report.add(f"{table} {key}: kept {tuple(b)[key_width:]} but no visible graph has it")
        elif b is None:
            report.add(f"{table} {key}: missing; the graphs give {tuple(a)[key_width:]}")
        elif differs(a, b):
            report.add(f"{table} {key}: kept {tuple(b)[key_width:]} but the graphs give {tuple(a)[key_width:]}")


def _merge(left: Iterable[Any], right: Iterable[Any], width: int) -> Iterator[tuple[Any, Any, Any]]:
    a_rows, b_rows = iter(left), iter(right)
    a, b = next(a_rows, None), next(b_rows, None)
    while a is not None or b is not None:
        ka = tuple(a)[:width] if a is not None else None
        kb = tuple(b)[:width] if b is not None else None
        if kb is None or (ka is not None and ka < kb):
            yield ka, a, None
            a = next(a_rows, None)
        elif ka is None or kb < ka:
            yield kb, None, b
            b = next(b_rows, None)
        else:
            yield ka, a, b
            a, b = next(a_rows, None), next(b_rows, None)


def _row_differs(fresh: Any, kept: Any) -> bool:
    return tuple(fresh) != tuple(kept)


def _feature_total_differs(fresh: Any, kept: Any) -> bool:
    # (fid, n, then per value: n, sum, min, max)
    f, k = tuple(fresh), tuple(kept)
    exact = [1, 2, 4, 5, 6, 8, 9]
    if any(f[i] != k[i] for i in exact):
        return True
    return any(not _close(f[i], k[i], f[i]) for i in (3, 7))


def _edge_total_differs(fresh: Any, kept: Any) -> bool:
    # (src, tgt, n, sum, abs sum, min, max, links)
    f, k = tuple(fresh), tuple(kept)
    if any(f[i] != k[i] for i in (2, 5, 6, 7)):
        return True
    return not (_close(f[3], k[3], f[4]) and _close(f[4], k[4], f[4]))


def _close(a: float | None, b: float | None, scale: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= SUM_TOLERANCE * max(1.0, abs(scale or 0.0))


__all__ = ["AggregateCheck", "check", "rebuild", "recount"]
