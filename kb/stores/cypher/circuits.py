"""Cypher of circuits: feature edges, skeletons, chains, and pieces of one graph.

Every lookup of a graph's nodes by gid also says ``n.idx IS NOT NULL`` or names the idx, so that
the planner can seek the (gid, idx) index instead of scanning every :Node.

A graph's feature edges are kept on (:FeatureEdges) nodes as base64 text of the packed arrays
(see :class:`kb.stores.circuit_queries.FeatureEdges`): the driver's ``Record.data()``, which
every read goes through, walks a byte array one byte at a time, and a thousand graphs' edges
then take a minute to read instead of a fraction of a second.
"""

from __future__ import annotations

import base64
from typing import Any, Iterable, Sequence

from kb.stores.circuit_queries import OUT, SKELETON_COLUMNS, Step
from kb.stores.cypher import Query
from kb.stores.cypher.graphs import PROPERTY_OF_COLUMN

_PACKED = (("src", "src"), ("tgt", "tgt"), ("w", "weight"), ("nl", "n_links"))


def _unpack(value: str | bytes) -> bytes:
    """A packed array as stored: base64 text, or a byte array (knowledge bases written before
    the arrays were stored as text)."""
    return bytes(value) if isinstance(value, (bytes, bytearray)) else base64.b64decode(value)


def part_of_record(record: dict[str, Any]) -> dict[str, Any]:
    """A part of a graph's feature edges, as :func:`read_feature_edges` answers it, in the shape
    :meth:`kb.stores.circuit_queries.FeatureEdges.from_parts` reads."""
    return {"part": record["part"], **{key: _unpack(record[prop]) for prop, key in _PACKED}}


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


def skeleton_nodes(gid: int) -> Query:
    """A graph's nodes in one record, each a list of SKELETON_COLUMNS (collecting a column at a
    time would drop its nulls)."""
    fields = ", ".join(f"n.{PROPERTY_OF_COLUMN[c]}" for c in SKELETON_COLUMNS)
    return f"MATCH (n:Node {{gid: $gid}}) WHERE n.idx IS NOT NULL RETURN collect([{fields}]) AS nodes", {"gid": gid}


def skeleton_links(gid: int) -> Query:
    """A graph's links in file order as three lists in one record (one record per link costs
    the driver several times more)."""
    return (
        "MATCH (a:Node {gid: $gid})-[r:LINK]->(b:Node) WHERE a.idx IS NOT NULL "
        "WITH a, b, r ORDER BY r.i RETURN collect(a.idx) AS s, collect(b.idx) AS t, collect(r.w) AS w",
        {"gid": gid},
    )


def input_total(name: str) -> str:
    """The input total of node ``name``: its stored ``input_total``, or, on a node written before
    totals were stored, the sum of |w| of the links into it."""
    return (
        f"CASE WHEN {name}.input_total IS NULL "
        f"THEN reduce(s = 0.0, w IN [({name})<-[x:LINK]-() | x.w] | s + abs(w)) "
        f"ELSE {name}.input_total END"
    )


def _chain_match(gids: Sequence[int], steps: Sequence[Step]) -> tuple[str, dict[str, Any]]:
    """MATCH ... WITH ...: the chains n0 -[l0]-> n1 -> ... -> t (t a target logit) whose nodes match
    ``steps``, with c1.. the input total of each node after the first and ``score`` the product of
    each link's share of its target's input (as :class:`ChainMatch` computes it)."""
    k = len(steps)
    names = [f"n{i}" for i in range(k)] + ["t"]
    pattern = "(n0:Node)" + "".join(f"-[l{i}:LINK]->({names[i + 1]}:Node)" for i in range(k))
    params: dict[str, Any] = {"gids": sorted(set(gids))}
    conditions = ["n0.gid IN $gids", "t.is_target_logit = true"]
    for i, step in enumerate(steps):
        conditions.append(_step_condition(f"n{i}", i, step, params))
    totals = ", ".join(f"{input_total(n)} AS c{i}" for i, n in enumerate(names[1:], start=1))
    shares = " * ".join(f"(CASE WHEN c{i + 1} > 0 THEN abs(l{i}.w) / c{i + 1} ELSE 0.0 END)" for i in range(k))
    links = ", ".join(f"l{i}" for i in range(k))
    carried = ", ".join(names) + ", " + links + ", " + ", ".join(f"c{i}" for i in range(1, k + 1))
    return (
        f"MATCH {pattern} WHERE {' AND '.join(conditions)} "
        f"WITH {', '.join(names)}, {links}, {totals} "
        f"WITH {carried}, {shares} AS score ",
        params,
    )


def chain_query(gids: Sequence[int], steps: Sequence[Step], top: int | None = None) -> Query:
    """Chains as :func:`_chain_match` finds them, all or the ``top`` best of each graph (by score,
    ties by nodes): one record per graph with the chains as parallel flat lists (i0.. the idx and
    f0.. the fid of the node at each place, w0.. each link's weight, c1.. each target's input
    total); fewer records and flat lists cost the driver far less than a record or a nested list
    per chain."""
    k = len(steps)
    names = [f"n{i}" for i in range(k)] + ["t"]
    match, params = _chain_match(gids, steps)
    fields = [f"{n}.idx" for n in names] + [f"{n}.fid" for n in names] + [f"l{i}.w" for i in range(k)] + [f"c{i}" for i in range(1, k + 1)]
    lists = [f"i{i}" for i in range(k + 1)] + [f"f{i}" for i in range(k + 1)] + [f"w{i}" for i in range(k)] + [f"c{i}" for i in range(1, k + 1)]
    kept = "collect([" + ", ".join(fields) + "])"
    if top is not None:
        match += f"ORDER BY score DESC, {', '.join(f'{n}.idx' for n in names)} "
        kept += "[..$top]"
        params["top"] = top
    columns = ", ".join(f"[p IN kept | p[{j}]] AS {name}" for j, name in enumerate(lists))
    return f"{match}WITH n0.gid AS gid, {kept} AS kept RETURN gid, {columns}", params


def chain_groups_query(gids: Sequence[int], steps: Sequence[Step], at: Sequence[int]) -> Query:
    """Chains as :func:`_chain_match` finds them, counted by graph and by the fids of their nodes
    at the steps ``at``, with the best score of each group: one record per graph, its groups as
    parallel lists (``keys`` the fids of each group)."""
    match, params = _chain_match(gids, steps)
    key = "[" + ", ".join(f"n{i}.fid" for i in at) + "]"
    return (
        f"{match}WITH n0.gid AS gid, {key} AS key, count(*) AS n, max(score) AS best "
        "RETURN gid, collect(key) AS keys, collect(n) AS counts, collect(best) AS bests",
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
    if step.graph_fids is not None:
        params[f"g{i}"] = {str(gid): sorted(fids) for gid, fids in step.graph_fids.items()}
        feature = f"({feature} AND {name}.fid IN $g{i}[toString({name}.gid)])"
    condition = f"({feature} OR {name}.kind = 'embedding')" if step.embeddings else feature
    if step.positions is not None:
        params[f"p{i}"] = {str(gid): sorted(positions) for gid, positions in step.positions.items()}
        condition = f"({condition} AND {name}.ctx_idx IN $p{i}[toString({name}.gid)])"
    return condition


def input_totals_query(nodes: Sequence[tuple[int, int]]) -> Query:
    return (
        "UNWIND $groups AS g UNWIND g[1] AS i MATCH (n:Node {gid: g[0], idx: i}) "
        f"WITH g[0] AS gid, i, {input_total('n')} AS total "
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
