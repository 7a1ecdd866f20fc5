"""FeatureQueries on the embedded store: SQLAlchemy Core over graph_nodes and graph_links.

The same statements run on SQLite and PostgreSQL. A list of ids travels as ONE parameter
(:func:`kb.sqlqueries.among`, and :func:`kb.sqlqueries.keys_table` for composite keys), so that ten thousand
graph ids neither hit a bound-parameter limit nor change the statement's text.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, Engine, and_, case, func, select

from kb.sqlqueries import among
from kb.stores.feature_queries import (
    DOWNSTREAM,
    UPSTREAM,
    FeatureQueries,
    LayerCount,
    LayerOverlap,
    Neighbour,
    NeighbourSummary,
    Presence,
)
from schema.sql import graph_links, graph_nodes


class EmbeddedFeatureQueries(FeatureQueries):
    engine: Engine

    def feature_presence(self, fids: Sequence[int], gids: Sequence[int] | None = None) -> list[Presence]:
        if not fids or (gids is not None and not gids):
            return []
        n = graph_nodes.c
        with self.engine.connect() as conn:
            query = select(n.feature_id, n.graph_id, n.activation, n.influence, n.ctx_idx).where(among(conn, n.feature_id, fids))
            if gids is not None:
                query = query.where(among(conn, n.graph_id, gids, lookup=False))
            return _presences(conn.execute(query))

    def shared_presence(self, gids: Sequence[int], min_graphs: int = 1) -> list[Presence]:
        if not gids:
            return []
        n = graph_nodes.c
        with self.engine.connect() as conn:
            by_graph = not self._is_wide(gids)
            query = select(n.feature_id, n.graph_id, n.activation, n.influence, n.ctx_idx).where(
                among(conn, n.graph_id, gids, lookup=by_graph), n.feature_id.is_not(None)
            )
            if min_graphs > 1:
                inner = graph_nodes.alias("inner_nodes")
                common = (
                    select(inner.c.feature_id)
                    .where(among(conn, inner.c.graph_id, gids, lookup=by_graph), inner.c.feature_id.is_not(None))
                    .group_by(inner.c.feature_id)
                    .having(func.count(inner.c.graph_id.distinct()) >= min_graphs)
                )
                query = query.where(n.feature_id.in_(common))
            return _presences(conn.execute(query))

    def feature_neighbours(self, fids: Sequence[int], gids: Sequence[int], top: int | None = None) -> list[Neighbour]:
        if not fids or not gids:
            return []
        out: list[Neighbour] = []
        with self.engine.connect() as conn:
            for direction in (UPSTREAM, DOWNSTREAM):
                per_graph = _linked(conn, direction, fids, gids).subquery("per_graph")
                p = per_graph.c
                rank = func.row_number().over(
                    partition_by=[p.gid, p.fid],
                    order_by=[func.abs(p.weight).desc(), case((p.nfid.is_(None), 1), else_=0), p.nfid, p.node_idx],
                )
                ranked = select(per_graph, rank.label("rank")).subquery("ranked")
                r = ranked.c
                node = graph_nodes.alias("node")
                query = (
                    select(r.gid, r.fid, r.nfid, r.node_idx, node.c.node_id, node.c.kind, node.c.layer, node.c.ctx_idx, r.weight, r.n_links)
                    .join_from(ranked, node, and_(node.c.graph_id == r.gid, node.c.idx == r.node_idx))
                    .order_by(r.gid, r.fid, r.rank)
                )
                if top is not None:
                    query = query.where(r.rank <= top)
                out += [Neighbour(row.gid, row.fid, direction, row.nfid, row.node_idx, row.node_id, row.kind, row.layer, row.ctx_idx, row.weight, row.n_links) for row in conn.execute(query)]
        return sorted(out, key=lambda nb: (nb.gid, nb.fid, nb.direction != UPSTREAM))

    def neighbour_summary(self, fids: Sequence[int], gids: Sequence[int], top: int | None = None) -> list[NeighbourSummary]:
        if not fids or not gids:
            return []
        out: list[NeighbourSummary] = []
        with self.engine.connect() as conn:
            for direction in (UPSTREAM, DOWNSTREAM):
                per_graph = _linked(conn, direction, fids, gids, features_only=True).subquery("per_graph")
                p = per_graph.c
                summary = (
                    select(p.fid, p.nfid, func.count().label("n_graphs"), func.avg(p.weight).label("mean_weight"))
                    .group_by(p.fid, p.nfid)
                    .subquery("summary")
                )
                s = summary.c
                rank = func.row_number().over(partition_by=[s.fid], order_by=[s.n_graphs.desc(), func.abs(s.mean_weight).desc(), s.nfid])
                ranked = select(summary, rank.label("rank")).subquery("ranked")
                query = select(ranked).order_by(ranked.c.fid, ranked.c.rank)
                if top is not None:
                    query = query.where(ranked.c.rank <= top)
                out += [NeighbourSummary(row.fid, direction, row.nfid, row.n_graphs, float(row.mean_weight)) for row in conn.execute(query)]
        return sorted(out, key=lambda s: (s.fid, s.direction != UPSTREAM))

    def layer_counts(self, gids: Sequence[int]) -> list[LayerCount]:
        if not gids:
            return []
        n = graph_nodes.c
        with self.engine.connect() as conn:
            query = (
                select(n.graph_id, n.layer_num, func.count(n.feature_id.distinct()))
                .where(among(conn, n.graph_id, gids), n.feature_id.is_not(None))
                .group_by(n.graph_id, n.layer_num)
                .order_by(n.graph_id, n.layer_num)
            )
            return [LayerCount(gid, layer, count) for gid, layer, count in conn.execute(query)]

    def layer_overlaps(self, gids_a: Sequence[int], gids_b: Sequence[int]) -> list[LayerOverlap]:
        if not gids_a or not gids_b:
            return []
        with self.engine.connect() as conn:
            a = distinct_features(conn, gids_a).subquery("a")
            b = distinct_features(conn, gids_b).subquery("b")
            query = (
                select(a.c.graph_id, b.c.graph_id.label("other"), a.c.layer_num, func.count())
                .join_from(a, b, a.c.feature_id == b.c.feature_id)
                .where(a.c.graph_id != b.c.graph_id)
                .group_by(a.c.graph_id, b.c.graph_id, a.c.layer_num)
                .order_by(a.c.graph_id, b.c.graph_id, a.c.layer_num)
            )
            return [LayerOverlap(ga, gb, layer, common) for ga, gb, layer, common in conn.execute(query)]


def distinct_features(conn: Connection, gids: Sequence[int]):  # noqa: ANN202
    """(graph_id, layer_num, feature_id) of each feature of the graphs ``gids``, once."""
    n = graph_nodes.c
    return select(n.graph_id, n.layer_num, n.feature_id).distinct().where(among(conn, n.graph_id, gids), n.feature_id.is_not(None))


def _linked(conn: Connection, direction: str, fids: Sequence[int], gids: Sequence[int], features_only: bool = False):  # noqa: ANN202
    """Per (graph, feature, neighbour): summed weight, link count, lowest linked node idx.

    A feature neighbour is grouped by its feature id over all its nodes; any other node is its
    own neighbour (grouped by its idx).
    """
    f = graph_nodes.alias("f")
    nb = graph_nodes.alias("nb")
    link = graph_links.alias("l")
    near, far = (link.c.tgt, link.c.src) if direction == UPSTREAM else (link.c.src, link.c.tgt)
    own_node = case((nb.c.feature_id.is_(None), nb.c.idx), else_=-1)
    query = (
        select(
            f.c.graph_id.label("gid"),
            f.c.feature_id.label("fid"),
            nb.c.feature_id.label("nfid"),
            func.min(nb.c.idx).label("node_idx"),
            func.sum(link.c.weight).label("weight"),
            func.count().label("n_links"),
        )
        .join_from(f, link, and_(link.c.graph_id == f.c.graph_id, near == f.c.idx))
        # `+ 0`: without it SQLite may read every node of the graph as a neighbour first and then
        # look for a link between it and the feature's node, instead of following the feature's links
        .join(nb, and_(nb.c.graph_id == link.c.graph_id + 0, nb.c.idx == far))
        .where(among(conn, f.c.feature_id, fids), among(conn, f.c.graph_id, gids, lookup=False))
        .group_by(f.c.graph_id, f.c.feature_id, nb.c.feature_id, own_node)
    )
    if features_only:
        query = query.where(nb.c.feature_id.is_not(None))
    return query


def _presences(rows: Any) -> list[Presence]:
    """Fold node rows (fid, gid, activation, influence, ctx_idx) into one Presence per pair."""
    acc: dict[tuple[int, int], list[Any]] = {}
    for fid, gid, act, infl, pos in rows:
        slot = acc.get((fid, gid))
        if slot is None:
            acc[(fid, gid)] = [act, infl, {pos}]
            continue
        if act is not None and (slot[0] is None or act > slot[0]):
            slot[0] = act
        if infl is not None and (slot[1] is None or infl < slot[1]):
            slot[1] = infl
        slot[2].add(pos)
    return [Presence(fid, gid, act, infl, tuple(sorted(positions))) for (fid, gid), (act, infl, positions) in sorted(acc.items())]
