"""What the questions over all graphs read of the aggregates: a few index lookups each, however
many graphs are stored."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import AbstractSet, Mapping, Sequence

import numpy as np
from sqlalchemy import Connection, and_, func, select

from kb.aggregates.paths import MORE_PATHS, PACKED_GROUP, PACKED_PATH, PACKED_POSITION, PathGroups
from kb.sqlqueries import among, keys_table
from kb.stores.feature_queries import UPSTREAM
from schema.sql import feature_edge_graphs, feature_edge_histogram, feature_edge_totals, feature_graphs, feature_totals, kb_meta, path_group_packs

# the kb_meta key whose presence says the aggregates miss graphs stored before they existed
STALE_KEY = "aggregates_stale"
# the same for the path groups alone (a knowledge base whose graphs were in Neo4j when they came)
PATHS_STALE_KEY = "path_groups_stale"

ACTIVATION, INFLUENCE = "activation", "influence"


def stale_reason(conn: Connection) -> str | None:
    """Why the aggregates cannot answer yet (graphs they do not count), or None when they can."""
    return conn.execute(select(kb_meta.c.value).where(kb_meta.c.key == STALE_KEY)).scalar()


def paths_stale_reason(conn: Connection) -> str | None:
    """Why the path groups cannot answer yet (they or all the aggregates are stale), or None when they can."""
    return conn.execute(select(kb_meta.c.value).where(kb_meta.c.key.in_([STALE_KEY, PATHS_STALE_KEY])).order_by(kb_meta.c.key)).scalar()


@dataclass(frozen=True)
class KeptPaths:
    """Paths kept with their groups, as parallel arrays: graph, nodes (by idx), the weights of
    their two links and the input totals of their middle and target nodes."""

    gid: np.ndarray  # int64
    src: np.ndarray  # int64
    mid: np.ndarray  # int64
    tgt: np.ndarray  # int64
    w0: np.ndarray  # float64
    w1: np.ndarray  # float64
    mid_total: np.ndarray  # float64
    tgt_total: np.ndarray  # float64

    @classmethod
    def of(cls, gid: np.ndarray, table: np.ndarray) -> KeptPaths:
        """The paths of a :data:`kb.aggregates.paths.PACKED_GROUP` (each group's best) or
        ``PACKED_PATH`` array, in graphs ``gid``."""
        return cls(gid, *(_column(table, name) for name in tuple(cls.__dataclass_fields__)[1:]))

    def take(self, which: np.ndarray) -> KeptPaths:
        """The paths chosen by a boolean mask or an index array."""
        return KeptPaths(*(getattr(self, name)[which] for name in self.__dataclass_fields__))

    def __add__(self, other: KeptPaths) -> KeptPaths:
        return KeptPaths(*(np.concatenate([getattr(self, name), getattr(other, name)]) for name in self.__dataclass_fields__))


@dataclass(frozen=True)
class GroupBests:
    """Path groups with their best paths, as parallel arrays by gid (see
    :class:`kb.aggregates.paths.PathGroups`; ``rest`` is the best score of the paths the group
    does not keep, NaN when it keeps all)."""

    gid: np.ndarray  # int64
    fid: np.ndarray  # int64
    best: np.ndarray  # float64
    rest: np.ndarray  # float64
    path: KeptPaths  # the best

    def take(self, which: np.ndarray) -> GroupBests:
        """The groups chosen by a boolean mask or an index array."""
        return GroupBests(self.gid[which], self.fid[which], self.best[which], self.rest[which], self.path.take(which))


def _column(table: np.ndarray, name: str) -> np.ndarray:
    """A field of a :data:`kb.aggregates.paths.PACKED_GROUP` array as a plain int64 or float64 array."""
    return table[name].astype(np.float64 if table.dtype[name].kind == "f" else np.int64)


# no paths at all
NO_PATHS = KeptPaths.of(np.empty(0, dtype=np.int64), np.empty(0, dtype=PACKED_PATH))


@dataclass(frozen=True)
class StartGroups:
    """The path groups that start at some (graph, position)s, by gid then position: ``gid``,
    ``ctx`` and the fields of :data:`kb.aggregates.paths.PACKED_GROUP` (``groups``, a structured
    array), and ``rest`` (as in :class:`GroupBests`); the paths they keep after their best
    (``more_gid``, ``more_ctx`` and ``more``, as :data:`kb.aggregates.paths.PACKED_PATH`), by group; and where
    their middle features sit: (``at_gid``, ``at_fid``, ``at_ctx``), sorted, distinct.

    A pack written before groups kept more than their best (migration 0018) has none of those
    paths: its groups keep their best alone."""

    gid: np.ndarray  # int64
    ctx: np.ndarray  # int64
    groups: np.ndarray  # PACKED_GROUP
    rest: np.ndarray  # float64
    more_gid: np.ndarray  # int64
    more_ctx: np.ndarray  # int64
    more: np.ndarray  # PACKED_PATH
    at_gid: np.ndarray  # int64
    at_fid: np.ndarray  # int64
    at_ctx: np.ndarray  # int64

    def column(self, name: str) -> np.ndarray:
        """One field of the groups (``fid``, ``n_paths``, ``best``...) as an int64 or float64 array."""
        return _column(self.groups, name)

    def positions(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, ...]]:
        """For each (gid, fid) of ``keys`` among the middle features: the sorted positions of its
        nodes (as :meth:`kb.stores.circuit_queries.CircuitQueries.feature_positions` gives them)."""
        if not keys:
            return {}
        wanted = np.array(keys, dtype=np.int64).reshape(-1, 2)
        sought = (wanted[:, 0] << 32) | wanted[:, 1]
        lows, highs = np.searchsorted(self._at, sought, "left"), np.searchsorted(self._at, sought, "right")
        # only the positions sought leave numpy (a question asks for a few of them at a time)
        counts = highs - lows
        ends = np.cumsum(counts)
        ctx = self.at_ctx[np.repeat(lows - (ends - counts), counts) + np.arange(int(ends[-1]))].tolist()
        return {key: tuple(ctx[end - n : end]) for key, n, end in zip(keys, counts.tolist(), ends.tolist()) if n}

    @cached_property
    def _at(self) -> np.ndarray:
        """The (gid, fid) of each position of a middle feature, as one sortable int64."""
        return (self.at_gid << 32) | self.at_fid

    def bests(self, allowed: Mapping[int, AbstractSet[int]]) -> GroupBests:
        """The groups of the ``allowed`` middle features of each graph, with their best paths, by gid."""
        # tens of thousands of features: gathered into arrays without a Python int for each
        gids = np.repeat(np.fromiter(allowed, np.int64, len(allowed)), [len(fids) for fids in allowed.values()])
        fids = np.fromiter(chain.from_iterable(allowed.values()), np.int64, len(gids))
        chosen = np.isin((self.gid << 32) | self.groups["fid"], (gids << 32) | fids)
        groups, gid = self.groups[chosen], self.gid[chosen]
        return GroupBests(gid, _column(groups, "fid"), _column(groups, "best"), self.rest[chosen], KeptPaths.of(gid, groups))

    def more_paths(self, groups: GroupBests, floor: np.ndarray) -> KeptPaths:
        """The paths that ``groups`` (by gid) keep after their best, those scoring at least the
        ``floor`` of their graph (one per group)."""
        key = (self.more_gid << 32) | self.more["fid"]
        chosen = np.isin(key, (groups.gid << 32) | groups.fid)
        graphs = np.unique(groups.gid)
        floors = np.full(len(graphs), np.inf)
        floors[np.searchsorted(graphs, groups.gid)] = floor
        at = np.flatnonzero(chosen)
        at = at[self.more["score"][at] >= floors[np.searchsorted(graphs, self.more_gid[at])]]
        return KeptPaths.of(self.more_gid[at], self.more[at])


def start_groups(conn: Connection, starts: Sequence[tuple[int, int]]) -> StartGroups:
    """The path groups that start at the (gid, position)s ``starts`` (a graph's middle feature
    comes once per position), read from their packs."""
    if not starts:
        return _unpacked([])
    pp = path_group_packs.c
    keys = keys_table(conn, starts, ("gid", "ctx"))
    query = select(pp.graph_id, pp.ctx_idx, pp.groups, pp.positions, pp.more).select_from(keys).join(path_group_packs, and_(pp.graph_id == keys.c.gid, pp.ctx_idx == keys.c.ctx))
    return _unpacked(conn.execute(query).cursor.fetchall())


def graph_path_groups(conn: Connection, gid: int) -> PathGroups:
    """All the path groups kept for graph ``gid`` (none if it has none)."""
    pp = path_group_packs.c
    found = _unpacked(conn.execute(select(pp.graph_id, pp.ctx_idx, pp.groups, pp.positions, pp.more).where(pp.graph_id == gid)).cursor.fetchall())
    more = np.empty(len(found.more), dtype=MORE_PATHS)
    more["ctx"] = found.more_ctx
    for name in PACKED_PATH.names:
        more[name] = found.more[name]
    return PathGroups(gid, found.ctx, **{name: found.column(name) for name in PACKED_GROUP.names}, at_fid=found.at_fid, at_ctx=found.at_ctx, more=more)


def _unpacked(rows: Sequence[tuple[int, int, bytes, bytes, bytes | None]]) -> StartGroups:
    """Stored packs (graph_id, ctx_idx, groups, positions, more) read as one :class:`StartGroups`."""
    rows = sorted(rows, key=lambda row: (row[0], row[1]))
    # the packs joined as bytes and read as one array (numpy joins structured arrays slowly)
    groups = np.frombuffer(b"".join(row[2] for row in rows), dtype=PACKED_GROUP)
    at = np.frombuffer(b"".join(row[3] for row in rows), dtype=PACKED_POSITION)
    gids = np.array([row[0] for row in rows], dtype=np.int64)
    at_gid = np.repeat(gids, [len(row[3]) // PACKED_POSITION.itemsize for row in rows])
    at_fid, at_ctx = at["fid"].astype(np.int64), at["ctx"].astype(np.int64)
    if len(np.unique(gids)) < len(gids):
        # a graph read at several starts: the positions of a feature that is a middle at more
        # than one of them come once per start
        order = np.lexsort((at_ctx, at_fid, at_gid))
        at_gid, at_fid, at_ctx = at_gid[order], at_fid[order], at_ctx[order]
        distinct = np.r_[True, (at_gid[1:] != at_gid[:-1]) | (at_fid[1:] != at_fid[:-1]) | (at_ctx[1:] != at_ctx[:-1])]
        at_gid, at_fid, at_ctx = at_gid[distinct], at_fid[distinct], at_ctx[distinct]
    n_groups = [len(row[2]) // PACKED_GROUP.itemsize for row in rows]
    ctxs = np.array([row[1] for row in rows], dtype=np.int64)
    packed = np.frombuffer(b"".join(row[4] or b"" for row in rows), dtype=PACKED_PATH)
    n_more = [len(row[4] or b"") // PACKED_PATH.itemsize for row in rows]
    # each group's rest: where it keeps paths after its best, as they say; else the best path
    # not kept is the second (if any), the group keeping its best alone (as every group of a
    # pack without them does). A group is found by (pack, fid), both ascending.
    rest = groups["second"].astype(np.float64)
    pack = np.arange(len(rows), dtype=np.int64)
    group_key = (np.repeat(pack, n_groups) << 32) | groups["fid"]
    more_key = (np.repeat(pack, n_more) << 32) | packed["fid"]
    rest[np.searchsorted(group_key, more_key)] = packed["rest"]
    return StartGroups(np.repeat(gids, n_groups), np.repeat(ctxs, n_groups), groups, rest, np.repeat(gids, n_more), np.repeat(ctxs, n_more), packed, at_gid, at_fid, at_ctx)


@dataclass(frozen=True)
class FeatureTotal:
    """A feature over the visible graphs that contain it (``n_graphs``): count, sum, minimum and
    maximum of its per-graph activation and influence, over the graphs where it has one."""

    fid: int
    n_graphs: int
    activation_n: int
    activation_sum: float | None
    activation_min: float | None
    activation_max: float | None
    influence_n: int
    influence_sum: float | None
    influence_min: float | None
    influence_max: float | None

    @property
    def mean_activation(self) -> float | None:
        return self.activation_sum / self.activation_n if self.activation_n and self.activation_sum is not None else None


@dataclass(frozen=True)
class EdgeTotal:
    """A feature edge src -> tgt over the visible graphs that have it: per-graph weights summed,
    summed in absolute value, smallest and largest, and the links folded into it."""

    src: int
    tgt: int
    n_graphs: int
    weight_sum: float
    abs_sum: float
    weight_min: float
    weight_max: float
    n_links: int

    @property
    def mean(self) -> float:
        return self.weight_sum / self.n_graphs

    @property
    def mean_abs(self) -> float:
        return self.abs_sum / self.n_graphs


_FEATURE_COLUMNS = [feature_totals.c[f.name] for f in feature_totals.columns]
_EDGE_COLUMNS = [feature_edge_totals.c[c] for c in ("src", "tgt", "n_graphs", "weight_sum", "abs_sum", "weight_min", "weight_max", "n_links")]


def features_in_graphs(conn: Connection) -> int:
    """How many distinct features the visible graphs contain (a feature no graph has any more has no row)."""
    return conn.execute(select(func.count()).select_from(feature_totals)).scalar_one()


def features_in(conn: Connection, min_graphs: int) -> list[FeatureTotal]:
    """Every feature in at least ``min_graphs`` visible graphs, by feature id."""
    t = feature_totals.c
    rows = conn.execute(select(*_FEATURE_COLUMNS).where(t.n_graphs >= min_graphs).order_by(t.feature_id))
    return [FeatureTotal(*row) for row in rows]


def feature_total(conn: Connection, fid: int) -> FeatureTotal | None:
    row = conn.execute(select(*_FEATURE_COLUMNS).where(feature_totals.c.feature_id == fid)).first()
    return FeatureTotal(*row) if row is not None else None


def edge_count(conn: Connection, min_graphs: int) -> int:
    """How many feature edges are in at least ``min_graphs`` visible graphs."""
    h = feature_edge_histogram.c
    return int(conn.execute(select(func.coalesce(func.sum(h.n_edges), 0)).where(h.n_graphs >= min_graphs)).scalar_one())


def _edge_order(t):  # noqa: ANN001, ANN202
    """Most widely shared first, then strongest mean weight, then (src, tgt), as
    :func:`kb.analysis.edges.aggregate_feature_edges` ranks them."""
    return (t.n_graphs.desc(), (func.abs(t.weight_sum) / t.n_graphs).desc(), t.src, t.tgt)


def top_edges(conn: Connection, min_graphs: int, limit: int | None) -> list[EdgeTotal]:
    """The feature edges in at least ``min_graphs`` visible graphs, the first ``limit`` (None: all)."""
    t = feature_edge_totals.c
    query = select(*_EDGE_COLUMNS).where(t.n_graphs >= min_graphs).order_by(*_edge_order(t))
    if limit is not None:
        query = query.limit(limit)
    return [EdgeTotal(*row) for row in conn.execute(query)]


def edges_at(conn: Connection, fid: int, direction: str, top: int | None) -> list[EdgeTotal]:
    """The feature edges into (upstream) or out of (downstream) feature ``fid``, ranked by
    number of graphs, then absolute mean weight, then the other feature's id; the first ``top``."""
    t = feature_edge_totals.c
    near, far = (t.tgt, t.src) if direction == UPSTREAM else (t.src, t.tgt)
    # `+ 0`: the feature's edges are found by its index and sorted; walking the index on
    # n_graphs instead, as PostgreSQL may plan without statistics, reads most of the table
    query = select(*_EDGE_COLUMNS).where(near == fid).order_by((t.n_graphs + 0).desc(), (func.abs(t.weight_sum) / t.n_graphs).desc(), far)
    if top is not None:
        query = query.limit(top)
    return [EdgeTotal(*row) for row in conn.execute(query)]


def top_graphs(conn: Connection, fid: int, rank_by: str, limit: int | None) -> list[tuple[int, float | None, float | None]]:
    """(graph id, activation, influence) of the visible graphs with feature ``fid`` that rank in
    the first ``limit`` by strongest activation (or best, smallest, influence), with every graph
    tied with the last of them; graphs without a value rank last. None: all of them."""
    fg = feature_graphs.c
    value = fg.activation if rank_by == ACTIVATION else fg.influence
    columns = (fg.graph_id, fg.activation, fg.influence)
    known = select(*columns).where(fg.feature_id == fid, value.is_not(None))
    if limit is None:
        return [tuple(r) for r in conn.execute(select(*columns).where(fg.feature_id == fid))]
    best = [tuple(r) for r in conn.execute(known.order_by(value.desc() if rank_by == ACTIVATION else value).limit(limit))]
    if len(best) == limit and best:
        last = best[-1][1 if rank_by == ACTIVATION else 2]
        ties = conn.execute(known.where(value == last))
        return list({r[0]: tuple(r) for r in [*best, *ties]}.values())
    # fewer graphs with a value than asked for: those without one all tie, last
    return best + [tuple(r) for r in conn.execute(select(*columns).where(fg.feature_id == fid, value.is_(None)))]


def graph_feature_sets(conn: Connection, gids: Sequence[int]) -> dict[int, np.ndarray]:
    """Each visible graph's distinct feature ids, sorted (empty for a graph without features)."""
    fg = feature_graphs.c
    found: dict[int, list[int]] = {g: [] for g in gids}
    if found:
        for gid, fid in conn.execute(select(fg.graph_id, fg.feature_id).where(among(conn, fg.graph_id, found))):
            found[gid].append(fid)
    return {g: np.unique(np.asarray(f, dtype=np.int64)) for g, f in found.items()}


def graph_edge_sets(conn: Connection, gids: Sequence[int]) -> dict[int, np.ndarray]:
    """Each visible graph's feature edges as distinct keys ``src << 32 | tgt``, sorted."""
    eg = feature_edge_graphs.c
    found: dict[int, list[int]] = {g: [] for g in gids}
    if found:
        for gid, src, tgt in conn.execute(select(eg.graph_id, eg.src, eg.tgt).where(among(conn, eg.graph_id, found))):
            found[gid].append((src << 32) | tgt)
    return {g: np.unique(np.asarray(f, dtype=np.int64)) for g, f in found.items()}
