"""CircuitQueries on Neo4j, and the Cypher they run (pure builders returning (query, params)).

Every lookup of a graph's nodes by gid also says ``n.idx IS NOT NULL`` or names the idx, so that
the planner can seek the (gid, idx) index instead of scanning every :Node.

A graph's feature edges are kept on (:FeatureEdges) nodes as base64 text of the packed arrays
(see :class:`kb.stores.circuit_queries.FeatureEdges`): the driver's ``Record.data()``, which
every read goes through, walks a byte array one byte at a time, and a thousand graphs' edges
then take a minute to read instead of a fraction of a second.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ingest.records import FeatureKey, ParsedGraph
from kb.errors import NotFoundError
from kb.stores.base import NODE_COLUMNS
from kb.stores.neo4j_feature_queries import graph_layer_features_query
from kb.stores.circuit_queries import (
    BOTH,
    IN,
    OUT,
    SKELETON_COLUMNS,
    ChainMatch,
    ChainNode,
    CircuitQueries,
    FeatureEdges,
    LinkSet,
    Skeleton,
    Step,
    fold_feature_edges,
    fold_link_features,
    skeleton_from_rows,
)

log = logging.getLogger(__name__)

Query = tuple[str, dict[str, Any]]

# the Neo4j property that holds a column of graph_nodes (the SQL feature id is `fid` on nodes)
_PROPERTY = {c: ("fid" if c == "feature_id" else c) for c in NODE_COLUMNS}


# --- Cypher ----------------------------------------------------------------------------------


_PACKED = (("src", "src"), ("tgt", "tgt"), ("w", "weight"), ("nl", "n_links"))


def _unpack(value: str | bytes) -> bytes:
    """A packed array as stored: base64 text, or a byte array (knowledge bases written before
    the arrays were stored as text)."""
    return bytes(value) if isinstance(value, (bytes, bytearray)) else base64.b64decode(value)


def _part_params(gid: int, part: dict[str, Any]) -> dict[str, Any]:
    params = {"gid": gid, "part": part["part"], "n": part["n"]}
    for prop, key in _PACKED:
        params[prop] = base64.b64encode(part[key]).decode("ascii")
    return params


def create_feature_edges(gid: int, part: dict[str, Any]) -> Query:
    return "CREATE (e:FeatureEdges {gid: $gid, part: $part, n: $n, src: $src, tgt: $tgt, w: $w, nl: $nl})", _part_params(gid, part)


def create_feature_edges_of_stored_graph(gid: int, part: dict[str, Any]) -> Query:
    """As create_feature_edges, but only while the graph is stored; returns how many were made."""
    return (
        "MATCH (g:Graph {gid: $gid}) "
        "CREATE (e:FeatureEdges {gid: $gid, part: $part, n: $n, src: $src, tgt: $tgt, w: $w, nl: $nl}) RETURN count(e) AS n",
        _part_params(gid, part),
    )


def graphs_with_feature_edges(gids: Sequence[int]) -> Query:
    return (
        "UNWIND $gids AS gid MATCH (e:FeatureEdges {gid: gid}) WHERE e.part IS NOT NULL RETURN DISTINCT gid",
        {"gids": sorted(set(gids))},
    )


def delete_feature_edges(gid: int) -> Query:
    return "MATCH (e:FeatureEdges {gid: $gid}) WHERE e.part IS NOT NULL DELETE e", {"gid": gid}


def read_feature_edges(gids: Sequence[int]) -> Query:
    return (
        "UNWIND $gids AS gid MATCH (e:FeatureEdges {gid: gid}) WHERE e.part IS NOT NULL "
        "RETURN e.gid AS gid, e.part AS part, e.src AS src, e.tgt AS tgt, e.w AS w, e.nl AS nl",
        {"gids": list(gids)},
    )


def link_features(gid: int) -> Query:
    """Every link of a graph with its ends' feature ids (-1 for other nodes), in file order, as lists."""
    return (
        "MATCH (a:Node {gid: $gid})-[r:LINK]->(b:Node) WHERE a.idx IS NOT NULL "
        "WITH a, b, r ORDER BY r.i RETURN collect(coalesce(a.fid, -1)) AS s, collect(coalesce(b.fid, -1)) AS t, collect(r.w) AS w",
        {"gid": gid},
    )


def skeleton_nodes(gid: int) -> Query:
    """A graph's nodes in one record, each a list of SKELETON_COLUMNS (collecting a column at a
    time would drop its nulls)."""
    fields = ", ".join(f"n.{_PROPERTY[c]}" for c in SKELETON_COLUMNS)
    return f"MATCH (n:Node {{gid: $gid}}) WHERE n.idx IS NOT NULL RETURN collect([{fields}]) AS nodes", {"gid": gid}


def skeleton_links(gid: int) -> Query:
    """A graph's links in file order as three lists in one record (one record per link costs
    the driver several times more)."""
    return (
        "MATCH (a:Node {gid: $gid})-[r:LINK]->(b:Node) WHERE a.idx IS NOT NULL "
        "WITH a, b, r ORDER BY r.i RETURN collect(a.idx) AS s, collect(b.idx) AS t, collect(r.w) AS w",
        {"gid": gid},
    )


def chain_query(gids: Sequence[int], steps: Sequence[Step]) -> Query:
    """Paths n0 -> n1 -> ... -> t, one LINK per hop, with t a target logit.

    One record per (first node, target), with its paths as parallel flat lists: m1.., f1.. the
    idx and fid of each middle node, w0.. each link's weight (fewer records and flat lists cost
    the driver far less than a record or a nested list per path).
    """
    k = len(steps)
    names = [f"n{i}" for i in range(k)] + ["t"]
    pattern = "(n0:Node)" + "".join(f"-[l{i}:LINK]->({names[i + 1]}:Node)" for i in range(k))
    params: dict[str, Any] = {"gids": sorted(set(gids))}
    conditions = ["n0.gid IN $gids", "t.is_target_logit = true"]
    for i, step in enumerate(steps):
        conditions.append(_step_condition(f"n{i}", i, step, params))
    lists = [f"collect({n}.idx) AS m{i}, collect({n}.fid) AS f{i}" for i, n in enumerate(names[1:-1], start=1)]
    lists += [f"collect(l{i}.w) AS w{i}" for i in range(k)]
    return (
        f"MATCH {pattern} WHERE {' AND '.join(conditions)} "
        f"RETURN n0.gid AS gid, n0.idx AS first, n0.fid AS first_fid, t.idx AS last, t.fid AS last_fid, {', '.join(lists)}",
        params,
    )


def _by_graph(keys: Iterable[tuple[int, ...]]) -> list[list[Any]]:
    """[[gid, [rest of each key...]], ...]: queries answer one record per graph, not per key
    (each record costs the driver far more than a list element)."""
    groups: dict[int, list[Any]] = {}
    for gid, *rest in sorted(set(keys)):
        groups.setdefault(gid, []).append(rest[0] if len(rest) == 1 else rest)
    return [[gid, items] for gid, items in groups.items()]


def describe_nodes_query(nodes: Sequence[tuple[int, int]]) -> Query:
    return (
        "UNWIND $groups AS g UNWIND g[1] AS i MATCH (n:Node {gid: g[0], idx: i}) "
        "RETURN g[0] AS gid, collect([n.idx, n.node_id, n.kind, n.ctx_idx, n.fid, n.clerp]) AS about",
        {"groups": _by_graph(nodes)},
    )


def direct_weights_query(pairs: Sequence[tuple[int, int, int]]) -> Query:
    return (
        "UNWIND $groups AS g UNWIND g[1] AS p MATCH (a:Node {gid: g[0], idx: p[0]})-[r:LINK]->(b:Node) WHERE b.idx = p[1] "
        "WITH g[0] AS gid, p, r ORDER BY r.i WITH gid, p, collect(r.w) AS weights "
        "RETURN gid, collect(p) AS pairs, collect(weights) AS weights",
        {"groups": _by_graph(pairs)},
    )


def feature_positions_query(keys: Sequence[tuple[int, int]]) -> Query:
    return (
        # by graph: left to itself the planner seeks each listed feature in every graph
        "UNWIND $groups AS g MATCH (n:Node) USING INDEX n:Node(gid, idx) WHERE n.gid = g[0] AND n.idx >= 0 AND n.fid IN g[1] "
        "RETURN g[0] AS gid, collect(n.fid) AS fids, collect(n.ctx_idx) AS positions",
        {"groups": _by_graph(keys)},
    )


def _step_condition(name: str, i: int, step: Step, params: dict[str, Any]) -> str:
    feature = f"{name}.kind = 'feature'"
    if step.fids is not None:
        params[f"f{i}"] = sorted(step.fids)
        feature = f"({feature} AND {name}.fid IN $f{i})"
    condition = f"({feature} OR {name}.kind = 'embedding')" if step.embeddings else feature
    if step.positions is not None:
        params[f"p{i}"] = {str(gid): sorted(positions) for gid, positions in step.positions.items()}
        condition = f"({condition} AND {name}.ctx_idx IN $p{i}[toString({name}.gid)])"
    return condition


def input_totals_query(nodes: Sequence[tuple[int, int]]) -> Query:
    return (
        "UNWIND $groups AS g UNWIND g[1] AS i MATCH (n:Node {gid: g[0], idx: i}) "
        "OPTIONAL MATCH (n)<-[r:LINK]-() "
        "WITH g[0] AS gid, i, sum(abs(r.w)) AS total "
        "RETURN gid, collect(i) AS idxs, collect(total) AS totals",
        {"groups": _by_graph(nodes)},
    )


def top_nodes_query(gid: int, n: int) -> Query:
    return (
        "MATCH (n:Node {gid: $gid}) WHERE n.idx IS NOT NULL AND n.influence IS NOT NULL "
        "RETURN n.idx AS idx ORDER BY n.influence, n.idx LIMIT $n",
        {"gid": gid, "n": n},
    )


def node_rows_query(gid: int, idxs: Sequence[int]) -> Query:
    return "UNWIND $idxs AS i MATCH (n:Node {gid: $gid, idx: i}) RETURN n ORDER BY n.idx", {"gid": gid, "idxs": sorted(set(idxs))}


def find_nodes_query(gid: int, node_id: str) -> Query:
    return (
        "MATCH (n:Node {gid: $gid}) WHERE n.idx IS NOT NULL AND n.node_id = $node_id RETURN n.idx AS idx ORDER BY idx",
        {"gid": gid, "node_id": node_id},
    )


def logit_nodes_query(gid: int) -> Query:
    return (
        "MATCH (n:Node {gid: $gid}) WHERE n.idx IS NOT NULL AND n.kind = 'logit' RETURN n.idx AS idx ORDER BY idx",
        {"gid": gid},
    )


def links_among_query(gid: int, idxs: Sequence[int]) -> Query:
    """The links among nodes ``idxs``, as three lists in one record."""
    return (
        "UNWIND $idxs AS i MATCH (a:Node {gid: $gid, idx: i})-[r:LINK]->(b:Node) WHERE b.idx IN $idxs "
        "RETURN collect(a.idx) AS s, collect(b.idx) AS t, collect(r.w) AS w",
        {"gid": gid, "idxs": sorted(set(idxs))},
    )


def links_around_query(gid: int, idxs: Sequence[int], min_abs_weight: float, direction: str) -> Query:
    """Links out of (``out``) or into (``in``) the nodes ``idxs`` with |w| >= min_abs_weight."""
    arrow = "-[r:LINK]->(b:Node)" if direction == OUT else "<-[r:LINK]-(b:Node)"
    ends = "a.idx AS s, b.idx AS t" if direction == OUT else "b.idx AS s, a.idx AS t"
    return (
        f"UNWIND $idxs AS i MATCH (a:Node {{gid: $gid, idx: i}}){arrow} WHERE abs(r.w) >= $min "
        f"WITH r.i AS i, {ends}, r.w AS w "
        "RETURN collect(i) AS i, collect(s) AS s, collect(t) AS t, collect(w) AS w",
        {"gid": gid, "idxs": sorted(set(idxs)), "min": float(min_abs_weight)},
    )


# --- the mixin -------------------------------------------------------------------------------


class Neo4jCircuitQueries(CircuitQueries):
    run_read: Callable[[str, dict[str, Any]], list[dict[str, Any]]]  # provided by Neo4jStore
    run_write: Callable[[str, dict[str, Any]], list[dict[str, Any]]]

    def write_feature_edges(self, gid: int, graph: ParsedGraph, feature_ids: dict[FeatureKey, int]) -> None:
        """Store graph ``gid``'s feature edges; called before the graph is published."""
        fids = np.full(len(graph.nodes), -1, dtype=np.int64)
        for node in graph.nodes:
            if node.feature_key is not None:
                fids[node.idx] = feature_ids[node.feature_key]
        edges = fold_feature_edges(gid, fids, graph.link_src, graph.link_tgt, graph.link_weight)
        for part in edges.parts():
            self.run_write(*create_feature_edges(gid, part))

    def purge_feature_edges(self, gid: int) -> None:
        self.run_write(*delete_feature_edges(gid))

    def graphs_without_feature_edges(self, gids: Sequence[int]) -> list[int]:
        have = {r["gid"] for r in self.run_read(*graphs_with_feature_edges(gids))}
        return [g for g in gids if g not in have]

    def save_feature_edges(self, edges: FeatureEdges) -> bool:
        self.purge_feature_edges(edges.gid)
        for part in edges.parts():
            made = self.run_write(*create_feature_edges_of_stored_graph(edges.gid, part))
            if not made or made[0]["n"] == 0:
                self.purge_feature_edges(edges.gid)
                return False
        return True

    def feature_edges(self, gids: Sequence[int]) -> list[FeatureEdges]:
        parts: dict[int, list[dict[str, Any]]] = {}
        unique = sorted(set(gids))
        for start in range(0, len(unique), 2000):
            for row in self.run_read(*read_feature_edges(unique[start : start + 2000])):
                unpacked = {key: _unpack(row[prop]) for prop, key in _PACKED}
                parts.setdefault(row["gid"], []).append({"part": row["part"], **unpacked})
        missing = [g for g in unique if g not in parts]
        if missing:
            log.warning("%d graphs have no stored feature edges; computing them from their links (`circuitkb circuits backfill` stores them)", len(missing))
        computed = {g: self._feature_edges_from_links(g) for g in missing}
        return [computed[g] if g in computed else FeatureEdges.from_parts(g, parts[g]) for g in gids]

    def _feature_edges_from_links(self, gid: int) -> FeatureEdges:
        row = self.run_read(*link_features(gid))[0]
        return fold_link_features(gid, np.array(row["s"], dtype=np.int64), np.array(row["t"], dtype=np.int64), np.array(row["w"], dtype=np.float64))

    def graph_skeleton(self, gid: int) -> Skeleton:
        nodes = self.run_read(*skeleton_nodes(gid))[0]["nodes"]
        if not nodes:
            raise NotFoundError(f"graph {gid} has no nodes in Neo4j")
        rows = [dict(zip(SKELETON_COLUMNS, values)) for values in nodes]
        links = self.run_read(*skeleton_links(gid))[0]
        return skeleton_from_rows(gid, rows, links["s"], links["t"], links["w"])

    def chains(self, gids: Sequence[int], steps: Sequence[Step]) -> list[ChainMatch]:
        if not steps or not gids:
            return []
        out = []
        k = len(steps)
        for r in self.run_read(*chain_query(gids, steps)):
            middles = list(zip(*(r[f"m{i}"] for i in range(1, k)))) or [()] * len(r["w0"])
            middle_fids = list(zip(*(r[f"f{i}"] for i in range(1, k)))) or [()] * len(r["w0"])
            for mids, mid_fids, weights in zip(middles, middle_fids, zip(*(r[f"w{i}"] for i in range(k)))):
                nodes = (r["first"], *mids, r["last"])
                fids = (r["first_fid"], *mid_fids, r["last_fid"])
                out.append(ChainMatch(r["gid"], nodes, tuple(float(w) for w in weights), fids))
        out.sort()
        return out

    def describe_nodes(self, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], ChainNode]:
        if not nodes:
            return {}
        return {(r["gid"], a[0]): ChainNode(*a) for r in self.run_read(*describe_nodes_query(nodes)) for a in r["about"]}

    def direct_weights(self, pairs: Sequence[tuple[int, int, int]]) -> dict[tuple[int, int, int], float]:
        if not pairs:
            return {}
        return {
            (r["gid"], src, tgt): _sum_or_none(weights)
            for r in self.run_read(*direct_weights_query(pairs))
            for (src, tgt), weights in zip(r["pairs"], r["weights"])
        }

    def graph_features(self, gids: Sequence[int]) -> dict[int, np.ndarray]:
        found = {g: np.empty(0, dtype=np.int64) for g in gids}
        if gids:
            for r in self.run_read(*graph_layer_features_query(gids)):
                found[r["gid"]] = np.unique(np.array(r["fids"], dtype=np.int64))
        return found

    def feature_positions(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, ...]]:
        if not keys:
            return {}
        found: dict[tuple[int, int], set[int]] = {}
        for r in self.run_read(*feature_positions_query(keys)):
            for fid, pos in zip(r["fids"], r["positions"]):
                found.setdefault((r["gid"], fid), set()).add(pos)
        return {key: tuple(sorted(p)) for key, p in found.items()}

    def input_totals(self, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], float]:
        out = {key: 0.0 for key in set(nodes)}
        if nodes:
            for r in self.run_read(*input_totals_query(nodes)):
                for idx, total in zip(r["idxs"], r["totals"]):
                    out[(r["gid"], idx)] = float(total or 0.0)
        return out

    def top_nodes(self, gid: int, n: int) -> list[int]:
        return [r["idx"] for r in self.run_read(*top_nodes_query(gid, n))]

    def node_rows(self, gid: int, idxs: Sequence[int]) -> list[dict[str, Any]]:
        return [{c: r["n"].get(_PROPERTY[c]) for c in NODE_COLUMNS} for r in self.run_read(*node_rows_query(gid, idxs))]

    def find_nodes(self, gid: int, node_id: str) -> list[int]:
        return [r["idx"] for r in self.run_read(*find_nodes_query(gid, node_id))]

    def logit_nodes(self, gid: int) -> list[int]:
        return [r["idx"] for r in self.run_read(*logit_nodes_query(gid))]

    def links_among(self, gid: int, idxs: Sequence[int]) -> LinkSet:
        r = self.run_read(*links_among_query(gid, idxs))[0]
        return LinkSet.of(list(zip(r["s"], r["t"], r["w"])))

    def links_around(self, gid: int, idxs: Sequence[int], min_abs_weight: float, direction: str = BOTH) -> LinkSet:
        found: dict[int, tuple[int, int, float]] = {}
        for side in {IN: (IN,), OUT: (OUT,), BOTH: (OUT, IN)}[direction]:
            r = self.run_read(*links_around_query(gid, idxs, min_abs_weight, side))[0]
            found.update(zip(r["i"], zip(r["s"], r["t"], r["w"])))
        return LinkSet.of(list(found.values()))


def _sum_or_none(weights: list[float]) -> float | None:
    total = None
    for w in weights:
        total = w if total is None else total + w
    return total
