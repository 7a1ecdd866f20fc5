"""CircuitQueries primitives on the embedded store (SQL over graph_nodes, graph_links, graph_feature_edges, and
the aggregates' per-graph feature edges, feature_edge_graphs, where a chain starts from them)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sqlalchemy import Connection, Engine, Float, Select, and_, case, delete, func, insert, literal, null, or_, select, true, tuple_, union_all
from sqlalchemy.sql.elements import ColumnElement

from kb.errors import NotFoundError
from kb.parallel_reads import chunks, read_in_parts
from kb.runs import first_of_runs
from kb.sqlqueries import keys_table
from kb.stores.base import NODE_COLUMNS
from kb.stores.circuit_queries import (
    OUT,
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
from kb.stores.embedded_feature_queries import distinct_features
from schema.sql import feature_edge_graphs, graph_feature_edges, graph_links, graph_nodes

_CHUNK = 900  # graphs (or ids) per statement: an IN list, one chain join


def write_feature_edges(conn: Connection, edges: FeatureEdges) -> None:
    """Store a graph's feature edges; called inside the transaction that writes the graph.

    Each part is inserted as soon as it is packed, so only one part's bytes are held at a time.
    """
    for part in edges.parts():
        _insert_feature_edge_parts(conn, edges.gid, [part])


def _insert_feature_edge_parts(conn: Connection, gid: int, parts: Iterable[dict[str, Any]]) -> None:
    rows = [
        {"graph_id": gid, "part": p["part"], "n_edges": p["n"], "src": p["src"], "tgt": p["tgt"], "weight": p["weight"], "n_links": p["n_links"]}
        for p in parts
    ]
    conn.execute(insert(graph_feature_edges), rows)


def read_links(conn: Connection, gid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Graph ``gid``'s links in file order: src, tgt (int32) and weight (float64).

    They are stored in key order (src, tgt, idx) and put back in file order here: sorting by idx
    in numpy costs less than asking the database for another order.
    """
    rows = conn.execute(select(graph_links.c.idx, graph_links.c.src, graph_links.c.tgt, graph_links.c.weight).where(graph_links.c.graph_id == gid))
    # plain tuples: numpy probes each result Row for array attributes, which costs an exception each
    arr = np.array([tuple(r) for r in rows], dtype=np.float64).reshape(-1, 4)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    return arr[:, 1].astype(np.int32), arr[:, 2].astype(np.int32), arr[:, 3].copy()


def purge_feature_edges(conn: Connection, gid: int) -> None:
    conn.execute(delete(graph_feature_edges).where(graph_feature_edges.c.graph_id == gid))


class EmbeddedCircuitQueries(CircuitQueries):
    engine: Engine

    def _stored_feature_edges(self, gids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        fe = graph_feature_edges.c
        parts: dict[int, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(gids, _CHUNK):
                rows = conn.execute(select(fe.graph_id, fe.part, fe.src, fe.tgt, fe.weight, fe.n_links).where(fe.graph_id.in_(chunk)))
                for gid, part, src, tgt, weight, n_links in rows:
                    parts.setdefault(gid, []).append({"part": part, "src": src, "tgt": tgt, "weight": weight, "n_links": n_links})
        return parts

    def _graphs_with_feature_edges(self, gids: Sequence[int]) -> set[int]:
        fe = graph_feature_edges.c
        have: set[int] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(gids, _CHUNK):
                have.update(conn.execute(select(fe.graph_id).where(fe.graph_id.in_(chunk)).distinct()).scalars())
        return have

    def save_feature_edges(self, edges: FeatureEdges) -> bool:
        with self.engine.begin() as conn:
            exists = conn.execute(select(graph_nodes.c.idx).where(graph_nodes.c.graph_id == edges.gid).limit(1)).first()
            if exists is None:
                return False
            purge_feature_edges(conn, edges.gid)
            _insert_feature_edge_parts(conn, edges.gid, edges.parts())
        return True

    def graph_skeleton(self, gid: int) -> Skeleton:
        n = graph_nodes.c
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(*(n[c] for c in SKELETON_COLUMNS)).where(n.graph_id == gid))]
            if not rows:
                raise NotFoundError(f"graph {gid} has no nodes in the embedded store")
            src, tgt, weight = read_links(conn, gid)
        return skeleton_from_rows(gid, rows, src, tgt, weight)

    def _chains(self, gids: Sequence[int], steps: Sequence[Step], top: int | None, floors: Mapping[int, float] | None = None) -> list[ChainMatch]:
        def part(conn: Connection, chunk: list[int]) -> list[ChainMatch]:
            path = _ChainPath(conn, steps, chunk, floors)
            rows = conn.execute(path.select(path.chain_columns())).cursor.fetchall()
            return [_chain_match(row, len(steps)) for row in _best(rows, len(steps), top)]

        return [chain for found in read_in_parts(self.engine, gids, part, _CHUNK) for chain in found]

    def _chain_groups(self, gids: Sequence[int], steps: Sequence[Step], at: Sequence[int]) -> list[ChainGroup]:
        def part(conn: Connection, chunk: list[int]) -> list[ChainGroup]:
            path = _ChainPath(conn, steps, chunk)
            keys = [path.nodes[0].c.graph_id, *(path.nodes[i].c.feature_id for i in at)]
            query = path.select([*keys, func.count(), func.max(path.score)]).group_by(*keys)
            return [ChainGroup(gid, tuple(fids), n, best) for gid, *fids, n, best in conn.execute(query).cursor.fetchall()]

        return [group for found in read_in_parts(self.engine, gids, part, _CHUNK) for group in found]

    def _chains_and_groups(
        self, gids: Sequence[int], steps: Sequence[Step], at: Sequence[int], top: int | None
    ) -> tuple[list[ChainMatch], list[ChainGroup]]:
        k = len(steps)

        def part(conn: Connection, chunk: list[int]) -> tuple[list[ChainMatch], list[ChainGroup]]:
            groups: list[ChainGroup] = []
            path = _ChainPath(conn, steps, chunk)
            # the paths are joined once (SQLite materialises a CTE that is read twice), then both
            # listed and counted; a row of the union is a chain or a group, its other columns null
            found = path.select(path.chain_columns()).cte("found")
            keys = [found.c.gid, *(found.c[f"f{i}"] for i in at)]
            chain_part = select(literal(1).label("part"), *found.c, *(null() for _ in range(len(keys) + 2)))
            group_part = select(literal(0), *(null() for _ in found.c), *keys, func.count(), func.max(found.c.score)).group_by(*keys)
            width = len(found.c)
            rows: list[Sequence[Any]] = []
            for is_chain, *row in conn.execute(union_all(chain_part, group_part)).cursor.fetchall():
                if is_chain:
                    rows.append(row[:width])
                else:
                    gid, *fids, n, score = row[width:]
                    groups.append(ChainGroup(gid, tuple(fids), n, score))
            return [_chain_match(row, k) for row in _best(rows, k, top)], groups

        found = read_in_parts(self.engine, gids, part, _CHUNK)
        return [c for chains, _ in found for c in chains], [g for _, groups in found for g in groups]

    def describe_nodes(self, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], ChainNode]:
        c = graph_nodes.c
        out: dict[tuple[int, int], ChainNode] = {}
        if not nodes:
            return out
        with self.engine.connect() as conn:
            keys = keys_table(conn, nodes, ("gid", "idx"))
            query = select(c.graph_id, *(c[name] for name in _ABOUT)).select_from(keys).join(graph_nodes, and_(c.graph_id == keys.c.gid, c.idx == keys.c.idx))
            # tens of thousands of nodes: plain tuples from the driver's cursor, not result rows
            for gid, *about in conn.execute(query).cursor.fetchall():
                out[(gid, about[0])] = _node(tuple(about))
        return out

    def _link_rows_between(self, pairs: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int, float]]:
        link = graph_links.c
        with self.engine.connect() as conn:
            keys = keys_table(conn, pairs, ("gid", "src", "tgt"))
            query = (
                select(link.graph_id, link.src, link.tgt, link.weight)
                .select_from(keys)
                .join(graph_links, and_(link.graph_id == keys.c.gid, link.src == keys.c.src, link.tgt == keys.c.tgt))
                .order_by(link.graph_id, link.idx)
            )
            return conn.execute(query).cursor.fetchall()

    def _graph_feature_ids(self, gids: Sequence[int]) -> list[tuple[int, list[int]]]:
        with self.engine.connect() as conn:
            return [(gid, [fid]) for gid, _layer, fid in conn.execute(distinct_features(conn, gids))]

    def _feature_position_rows(self, keys: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
        c = graph_nodes.c
        with self.engine.connect() as conn:
            # each (graph, feature) sought by the feature index (reading the listed graphs' nodes
            # reads every node of every listed feature in every listed graph)
            pairs = keys_table(conn, keys, ("gid", "fid"))
            query = select(c.graph_id, c.feature_id, c.ctx_idx).select_from(pairs).join(graph_nodes, _feature_in_graph(graph_nodes, pairs.c.gid, pairs.c.fid))
            return conn.execute(query).cursor.fetchall()

    def _input_total_rows(self, nodes: Sequence[tuple[int, int]]) -> list[tuple[int, int, float]]:
        c = graph_nodes.c
        with self.engine.connect() as conn:
            keys = keys_table(conn, nodes, ("gid", "idx"))
            query = select(c.graph_id, c.idx, c.input_total).select_from(keys).join(graph_nodes, and_(c.graph_id == keys.c.gid, c.idx == keys.c.idx))
            return [tuple(row) for row in conn.execute(query).all()]

    def top_nodes(self, gid: int, n: int) -> list[int]:
        c = graph_nodes.c
        query = select(c.idx).where(c.graph_id == gid, c.influence.is_not(None)).order_by(c.influence, c.idx).limit(n)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def node_rows(self, gid: int, idxs: Sequence[int]) -> list[dict[str, Any]]:
        c = graph_nodes.c
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(idxs)), _CHUNK):
                out += [dict(r._mapping) for r in conn.execute(select(*(c[col] for col in NODE_COLUMNS)).where(c.graph_id == gid, c.idx.in_(chunk)))]
        return sorted(out, key=lambda r: r["idx"])

    def find_nodes(self, gid: int, node_id: str) -> list[int]:
        c = graph_nodes.c
        with self.engine.connect() as conn:
            return list(conn.execute(select(c.idx).where(c.graph_id == gid, c.node_id == node_id).order_by(c.idx)).scalars())

    def logit_nodes(self, gid: int) -> list[int]:
        c = graph_nodes.c
        with self.engine.connect() as conn:
            return list(conn.execute(select(c.idx).where(c.graph_id == gid, c.kind == "logit").order_by(c.idx)).scalars())

    def links_among(self, gid: int, idxs: Sequence[int]) -> LinkSet:
        wanted = sorted(set(idxs))
        keep = set(wanted)
        link = graph_links.c
        rows: list[tuple[int, int, float]] = []
        with self.engine.connect() as conn:
            for chunk in chunks(wanted, _CHUNK):
                query = select(link.src, link.tgt, link.weight).where(link.graph_id == gid, link.src.in_(chunk))
                if len(wanted) <= _CHUNK:
                    query = query.where(link.tgt.in_(wanted))
                rows += [(s, t, w) for s, t, w in conn.execute(query) if t in keep]
        return LinkSet.of(rows)

    def _links_on_side(self, gid: int, idxs: Sequence[int], min_abs_weight: float, side: str) -> list[tuple[int, int, int, float]]:
        link = graph_links.c
        column = link.src if side == OUT else link.tgt
        rows: list[tuple[int, int, int, float]] = []
        with self.engine.connect() as conn:
            for chunk in chunks(idxs, _CHUNK):
                query = select(link.idx, link.src, link.tgt, link.weight).where(link.graph_id == gid, column.in_(chunk), func.abs(link.weight) >= min_abs_weight)
                rows += [tuple(row) for row in conn.execute(query)]
        return rows


_ABOUT = ("idx", "node_id", "kind", "ctx_idx", "feature_id", "clerp")
_DESCRIBED = ("node_id", "kind", "ctx_idx", "clerp")


def _best(rows: list[Sequence[Any]], k: int, top: int | None) -> list[Sequence[Any]]:
    """Of chain rows (the columns of :meth:`_ChainPath.chain_columns`), each graph's best ``top``
    (None: all), ranked as the Neo4j store ranks them: by score, then by nodes.

    Ranked here rather than by a window in SQL: the join has read every row's columns anyway,
    and a pattern's cut keeps most of them."""
    if top is None or not rows:
        return rows
    n = len(rows)
    gid = np.fromiter((row[0] for row in rows), np.int64, n)
    score = np.fromiter((row[4 * k + 3] for row in rows), np.float64, n)
    nodes = [np.fromiter((row[1 + i] for row in rows), np.int64, n) for i in range(k + 1)]
    order = np.lexsort([*reversed(nodes), -score, gid])
    return [rows[i] for i in order[first_of_runs(gid[order], top)].tolist()]


def _chain_match(row: Sequence[Any], k: int) -> ChainMatch:
    nodes, fids = tuple(row[1 : k + 2]), tuple(row[k + 2 : 2 * k + 3])
    at = 4 * k + 4  # each node's description (node_id, kind, ctx_idx, clerp) follows the score
    # tens of thousands per question: ChainNode made as a plain tuple costs half its constructor
    described = tuple([_node((nodes[i], row[at + 4 * i], row[at + 4 * i + 1], row[at + 4 * i + 2], fids[i], row[at + 4 * i + 3])) for i in range(k + 1)])
    return ChainMatch(row[0], nodes, tuple(row[2 * k + 3 : 3 * k + 3]), fids, tuple(row[3 * k + 3 : 4 * k + 3]), described)


def _node(values: tuple[Any, ...]) -> ChainNode:
    return tuple.__new__(ChainNode, values)


class _ChainPath:
    """The join of a chain n0 -[l0]-> n1 -[l1]-> ... -> t (t a target logit) whose nodes match
    ``steps``, and its score: the product of each link's share of its target's input, computed
    as :class:`kb.stores.circuit_queries.ChainMatch` computes it."""

    def __init__(self, conn: Connection, steps: Sequence[Step], gids: Sequence[int], floors: Mapping[int, float] | None = None) -> None:
        self.gids = list(gids)
        self.nodes = [graph_nodes.alias(f"n{i}") for i in range(len(steps) + 1)]
        self.links = [graph_links.alias(f"l{i}") for i in range(len(steps))]
        *_, last, target = self.nodes
        # the join starts from a step limited to some features per graph (those are few), else
        # from the feature edges between two neighbouring steps of listed features (see
        # _edge_start), else from the first step; graph ids are joined as `x.graph_id = y.graph_id
        # + 0` so that each node and link is found from the one before it in that order: without
        # the `+ 0` SQLite carries the first step's graph filter to every node alias and starts
        # from all nodes of the graphs (the least selective step) instead
        limited = next((i for i, step in enumerate(steps) if step.graph_fids is not None), None)
        edge = None if limited is not None else next((i for i in range(len(steps) - 1) if _edge_start(steps[i], steps[i + 1])), None)
        self.origin = limited if limited is not None else edge if edge is not None else 0
        origin = self.nodes[self.origin]
        joined: Any = origin
        keys = None
        edges = feature_edge_graphs.alias("e")
        if limited is not None:
            pairs = _graph_pairs(steps[limited].graph_fids or {}, self.gids)
            if floors:
                # each graph's floor travels with its keys: paths below it are dropped as soon as
                # they are scored, before the rest of their nodes are read
                keys = keys_table(conn, [(g, f, floors.get(g, 0.0)) for g, f in pairs], ("gid", "fid", "floor"), real=("floor",))
            else:
                keys = keys_table(conn, pairs, ("gid", "fid"))
            joined = keys.join(origin, _feature_in_graph(origin, keys.c.gid, keys.c.fid))
        elif edge is not None:
            joined = edges.join(origin, _feature_in_graph(origin, edges.c.graph_id, edges.c.src))
        # the graph's target logit, found (by its index) once per start node rather than once per
        # chain, makes the last link one seek by (graph, source, target), not a walk over every
        # link out of the last step's node
        joined = joined.join(target, and_(target.c.graph_id == origin.c.graph_id + 0, target.c.is_target_logit == true()))
        for i in reversed(range(self.origin)):
            node, link, nxt = self.nodes[i], self.links[i], self.nodes[i + 1]
            joined = joined.join(link, and_(link.c.graph_id == nxt.c.graph_id + 0, link.c.tgt == nxt.c.idx))
            joined = joined.join(node, and_(node.c.graph_id == link.c.graph_id + 0, node.c.idx == link.c.src))
        final = self.links[-1]
        for i in range(self.origin, len(steps) - 1):
            node, link, nxt = self.nodes[i], self.links[i], self.nodes[i + 1]
            if i == edge:
                # both ends found by their features, the link between them by its key
                joined = joined.join(nxt, _feature_in_graph(nxt, edges.c.graph_id, edges.c.tgt))
                joined = joined.join(link, and_(link.c.graph_id == node.c.graph_id + 0, link.c.src == node.c.idx, link.c.tgt == nxt.c.idx))
                if nxt is last:
                    joined = joined.join(final, and_(final.c.graph_id == target.c.graph_id + 0, final.c.src == nxt.c.idx, final.c.tgt == target.c.idx))
                continue
            joined = joined.join(link, and_(link.c.graph_id == node.c.graph_id + 0, link.c.src == node.c.idx))
            if nxt is last:
                # the last link is sought before its source node is read: most sources have none
                joined = joined.join(final, and_(final.c.graph_id == target.c.graph_id + 0, final.c.src == link.c.tgt, final.c.tgt == target.c.idx))
            joined = joined.join(nxt, and_(nxt.c.graph_id == link.c.graph_id + 0, nxt.c.idx == link.c.tgt))
        if self.origin == len(steps) - 1:
            joined = joined.join(final, and_(final.c.graph_id == target.c.graph_id + 0, final.c.src == last.c.idx, final.c.tgt == target.c.idx))
        self.joined = joined
        self.conditions = [_step_condition(conn, node, step, self.gids, i == self.origin) for i, (node, step) in enumerate(zip(self.nodes, steps))]
        if edge is not None:
            e = edges.c
            first, second = steps[edge].fids or (), steps[edge + 1].fids or ()
            self.conditions += [e.src.in_(sorted(first)), e.tgt.in_(sorted(second)), e.graph_id >= min(self.gids), e.graph_id <= max(self.gids)]
        shares = [
            case((nxt.c.input_total > 0.0, func.abs(link.c.weight, type_=Float) / nxt.c.input_total), else_=literal(0.0, Float))
            for link, nxt in zip(self.links, self.nodes[1:])
        ]
        score = shares[0]
        for share in shares[1:]:
            score = score * share
        self.score = score
        if floors and keys is not None:
            self.conditions.append(score >= keys.c.floor)

    def chain_columns(self) -> list[Any]:
        """gid, i0.. (each node's idx), f0.. (its feature id), w0.. (each link's weight), c1.. (the
        input total of each node after the first), score, then node_id0, kind0, ctx_idx0, clerp0,
        node_id1, ... (each node's description)."""
        nodes = self.nodes
        return [
            nodes[0].c.graph_id.label("gid"),
            *(n.c.idx.label(f"i{i}") for i, n in enumerate(nodes)),
            *(n.c.feature_id.label(f"f{i}") for i, n in enumerate(nodes)),
            *(link.c.weight.label(f"w{i}") for i, link in enumerate(self.links)),
            *(n.c.input_total.label(f"c{i}") for i, n in enumerate(nodes) if i),
            self.score.label("score"),
            # each node described, as describe_nodes would: the join has read its row already
            *(n.c[name].label(f"{name}{i}") for i, n in enumerate(nodes) for name in _DESCRIBED),
        ]

    def select(self, columns: Sequence[Any]) -> Select:
        """``columns`` of the chains."""
        return select(*columns).select_from(self.joined).where(self.nodes[self.origin].c.graph_id.in_(self.gids), *self.conditions)


def _feature_in_graph(nodes: Any, gid: ColumnElement[Any], fid: ColumnElement[Any]) -> ColumnElement[bool]:
    """``nodes`` (graph_nodes or an alias) of feature ``fid`` in graph ``gid``, sought by the
    feature index: the graph is compared as a range, because with `=` SQLite prefers the primary
    key and reads each key's whole graph."""
    return and_(nodes.c.feature_id == fid, nodes.c.graph_id >= gid, nodes.c.graph_id <= gid)


def _edge_start(step: Step, after: Step) -> bool:
    """Whether a chain may start from the feature edges between these two steps: both list their
    features and take only feature nodes. Every link from a node of one listed feature to a node
    of another is in a feature edge of its graph (kb.aggregates keeps them with the graph), and
    the edges of a few features are far fewer than the links out of their nodes."""
    return all(s.fids is not None and not s.embeddings and s.graph_fids is None for s in (step, after))


def _graph_pairs(per_graph: Mapping[int, frozenset[int]], gids: Sequence[int]) -> list[tuple[int, int]]:
    """(gid, value) of the values ``per_graph`` lists for each graph of ``gids``."""
    return [(gid, value) for gid in gids for value in sorted(per_graph.get(gid, ()))]


def _step_condition(conn: Connection, node: Any, step: Step, gids: Sequence[int], joined_to_keys: bool) -> ColumnElement[bool]:
    """Whether ``node`` may stand at ``step``; its features per graph are left out where the
    node is already joined to them (the start of a :class:`_ChainPath`)."""
    feature: ColumnElement[bool] = node.c.kind == "feature"
    if step.fids is not None:
        feature = and_(feature, node.c.feature_id.in_(sorted(step.fids)))
    if step.graph_fids is not None and not joined_to_keys:
        keys = keys_table(conn, _graph_pairs(step.graph_fids, gids), ("gid", "fid"))
        feature = and_(feature, tuple_(node.c.graph_id, node.c.feature_id).in_(select(keys.c.gid, keys.c.fid)))
    condition = or_(feature, node.c.kind == "embedding") if step.embeddings else feature
    if step.positions is not None:
        pairs = _graph_pairs(step.positions, gids)
        condition = and_(condition, tuple_(node.c.graph_id, node.c.ctx_idx).in_(pairs))
    return condition
