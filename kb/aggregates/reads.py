"""What the questions over all graphs read of the aggregates: a few index lookups each, however
many graphs are stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from sqlalchemy import Connection, Integer, and_, func, select

from kb.aggregates.paths import BEST_PATH
from kb.sqlqueries import among, keys_table
from kb.stores.feature_queries import UPSTREAM
from schema.sql import feature_edge_graphs, feature_edge_histogram, feature_edge_totals, feature_graphs, feature_totals, kb_meta, path_groups

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


def path_group_arrays(conn: Connection, starts: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """gid, middle fid, paths and best score (int64, int64, int64, float64) of the path groups
    that start at the (gid, position) ``starts``, one per stored row (a graph's middle feature
    comes once per position)."""
    if not starts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    pg = path_groups.c
    keys = keys_table(conn, starts, ("gid", "ctx"))
    query = select(pg.graph_id, pg.feature_id, pg.n_paths, pg.best_score).select_from(keys).join(path_groups, and_(pg.graph_id == keys.c.gid, pg.ctx_idx == keys.c.ctx))
    # hundreds of thousands of rows: plain tuples from the driver's cursor, not result rows
    rows = conn.execute(query).cursor.fetchall()
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].astype(np.int64), table[:, 3].copy()


@dataclass(frozen=True)
class GroupBests:
    """Path groups with their best paths, as parallel arrays (see :class:`kb.aggregates.paths.PathGroups`;
    ``second`` is NaN for a group of one path)."""

    gid: np.ndarray  # int64
    fid: np.ndarray  # int64
    best: np.ndarray  # float64
    second: np.ndarray  # float64
    src: np.ndarray  # int64
    mid: np.ndarray  # int64
    tgt: np.ndarray  # int64
    w0: np.ndarray  # float64
    w1: np.ndarray  # float64
    mid_total: np.ndarray  # float64
    tgt_total: np.ndarray  # float64

    def take(self, which: np.ndarray) -> "GroupBests":
        """The groups chosen by a boolean mask or an index array."""
        return GroupBests(*(getattr(self, name)[which] for name in self.__dataclass_fields__))


# GroupBests' fields and the columns they are read from
_BEST = {"gid": "graph_id", "fid": "feature_id", "best": "best_score", **BEST_PATH}
_INTEGER = {name for name, column in _BEST.items() if isinstance(path_groups.c[column].type, Integer)}


def path_group_bests(conn: Connection, keys: Sequence[tuple[int, int, int]]) -> GroupBests:
    """The groups (gid, position, middle fid) of ``keys`` that exist, with their best paths, by gid."""
    pg = path_groups.c
    rows: list[Any] = []
    if keys:
        k = keys_table(conn, keys, ("gid", "ctx", "fid"))
        query = select(*(pg[c] for c in _BEST.values())).select_from(k).join(path_groups, and_(pg.graph_id == k.c.gid, pg.ctx_idx == k.c.ctx, pg.feature_id == k.c.fid))
        rows = conn.execute(query.order_by(pg.graph_id)).cursor.fetchall()
    # None (a group of one path) becomes NaN
    table = np.array(rows, dtype=np.float64).reshape(-1, len(_BEST))
    return GroupBests(**{name: table[:, i].astype(np.int64) if name in _INTEGER else table[:, i].copy() for i, name in enumerate(_BEST)})


# no groups at all
NO_BESTS = GroupBests(**{name: np.empty(0, dtype=np.int64 if name in _INTEGER else np.float64) for name in _BEST})


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
