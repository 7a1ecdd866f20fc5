"""Cypher of whole graphs: the store's instance marker, writing, purging, reading and counting.

A node's columns (``kb.stores.base.NODE_COLUMNS``) are properties of the same names on
``(:Node)``, except the SQL feature id, which is ``fid`` there as on ``(:Feature)``.
"""

from __future__ import annotations

from typing import Any, Sequence

from kb.stores.base import NODE_COLUMNS
from kb.stores.cypher import Query

PROPERTY_OF_COLUMN = {c: ("fid" if c == "feature_id" else c) for c in NODE_COLUMNS}


def node_properties(gid: int, row: Sequence[Any]) -> dict[str, Any]:
    """The properties of a (:Node) from a row in NODE_COLUMNS order; nulls are left out."""
    props = {"gid": gid}
    for column, value in zip(NODE_COLUMNS, row):
        if value is not None:
            props[PROPERTY_OF_COLUMN[column]] = value
    return props


def stored_node_row(node: Any) -> dict[str, Any]:
    """A stored (:Node) as a dict of NODE_COLUMNS."""
    return {c: node.get(PROPERTY_OF_COLUMN[c]) for c in NODE_COLUMNS}


def claim_instance(instance: str) -> Query:
    return (
        "MERGE (m:CircuitKB {singleton: true}) ON CREATE SET m.instance = $instance RETURN m.instance AS instance",
        {"instance": instance},
    )


def adopt_instance(instance: str) -> Query:
    return "MATCH (m:CircuitKB {singleton: true}) SET m.instance = $instance", {"instance": instance}


def any_graph() -> Query:
    return "OPTIONAL MATCH (g:Graph) WITH g LIMIT 1 RETURN g IS NOT NULL AS found", {}


def create_graph(gid: int, slug: str) -> Query:
    return "MERGE (g:Graph {gid: $gid}) SET g.slug = $slug, g.ready = false", {"gid": gid, "slug": slug}


def graph_has_nodes(gid: int) -> Query:
    return "OPTIONAL MATCH (n:Node {gid: $gid}) WITH n LIMIT 1 RETURN n IS NOT NULL AS found", {"gid": gid}


def publish_graph(gid: int, n_nodes: int, n_links: int) -> Query:
    return (
        "MATCH (g:Graph {gid: $gid}) SET g.ready = true, g.n_nodes = $n_nodes, g.n_links = $n_links",
        {"gid": gid, "n_nodes": n_nodes, "n_links": n_links},
    )


def merge_features(rows: list[dict[str, Any]]) -> Query:
    return (
        "UNWIND $rows AS r "
        "MERGE (f:Feature {fid: r.fid}) "
        "ON CREATE SET f.transcoder_set = r.transcoder_set, f.layer = r.layer, f.index = r.index",
        {"rows": rows},
    )


def create_nodes(rows: list[dict[str, Any]]) -> Query:
    return "UNWIND $rows AS r CREATE (n:Node) SET n = r", {"rows": rows}


def link_features(gid: int, idx: list[int], fid: list[int]) -> Query:
    """(:Node)-[:IS]->(:Feature) for the graph's nodes ``idx`` and their features ``fid``.

    Creating a relationship locks the Feature, which other graphs share: the writer runs this
    last in its transaction, features in ascending order, so that locks are held briefly and
    always taken in the same order (two writers then wait for each other, never deadlock).
    """
    return (
        "UNWIND range(0, size($idx) - 1) AS k "
        "MATCH (n:Node {gid: $gid, idx: $idx[k]}) "
        "MATCH (f:Feature {fid: $fid[k]}) "
        "CREATE (n)-[:IS]->(f)",
        {"gid": gid, "idx": idx, "fid": fid},
    )


def create_links(gid: int, src: list[int], tgt: list[int], weight: list[float], first: int) -> Query:
    """Links as parallel lists (cheaper on the wire than one map per link).

    The graph's nodes are collected once in idx order, so each link finds its ends by list
    position instead of two index seeks.
    """
    return (
        "MATCH (n:Node {gid: $gid}) WITH n ORDER BY n.idx "
        "WITH collect(n) AS ns "
        "UNWIND range(0, size($src) - 1) AS k "
        "WITH ns[$src[k]] AS a, ns[$tgt[k]] AS b, $w[k] AS w, $first + k AS i "
        "CREATE (a)-[:LINK {w: w, i: i}]->(b)",
        {"gid": gid, "src": src, "tgt": tgt, "w": weight, "first": first},
    )


def delete_links_batch(gid: int, limit: int) -> Query:
    return (
        "MATCH (:Node {gid: $gid})-[r:LINK]->() WITH r LIMIT $limit DELETE r RETURN count(*) AS n",
        {"gid": gid, "limit": limit},
    )


def delete_nodes_batch(gid: int, limit: int) -> Query:
    return (
        "MATCH (n:Node {gid: $gid}) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n",
        {"gid": gid, "limit": limit},
    )


def delete_graph(gid: int) -> Query:
    return "MATCH (g:Graph {gid: $gid}) DELETE g", {"gid": gid}


def graph_nodes(gid: int) -> Query:
    return "MATCH (n:Node {gid: $gid}) RETURN n ORDER BY n.idx", {"gid": gid}


def graph_links(gid: int) -> Query:
    return (
        "MATCH (a:Node {gid: $gid})-[r:LINK]->(b) RETURN a.idx AS s, b.idx AS t, r.w AS w ORDER BY r.i",
        {"gid": gid},
    )


def count_nodes(gids: list[int] | None) -> Query:
    if gids is None:
        return "MATCH (n:Node) RETURN count(n) AS n", {}
    return "UNWIND $gids AS gid MATCH (n:Node {gid: gid}) RETURN count(n) AS n", {"gids": gids}


def count_links(gids: list[int] | None) -> Query:
    if gids is None:
        return "MATCH (:Node)-[r:LINK]->() RETURN count(r) AS n", {}
    return "UNWIND $gids AS gid MATCH (:Node {gid: gid})-[r:LINK]->() RETURN count(r) AS n", {"gids": gids}


def count_features(gids: list[int] | None) -> Query:
    if gids is None:
        return "MATCH (n:Node) WHERE n.fid IS NOT NULL RETURN count(DISTINCT n.fid) AS n", {}
    return (
        "UNWIND $gids AS gid MATCH (n:Node {gid: gid}) WHERE n.fid IS NOT NULL RETURN count(DISTINCT n.fid) AS n",
        {"gids": gids},
    )
