"""Cypher of features across graphs (the questions of :class:`kb.stores.feature_queries.FeatureQueries`).

Nodes of chosen graphs are found through the composite ``(:Node {gid, idx})`` index: a predicate
on ``gid`` alone does not let the planner use it, so queries add ``n.idx >= 0`` (true of every
node) to make it an index seek, and a hint, because Neo4j caches one plan per query text: a plan
made for ten thousand graph ids (a scan of every feature node) would otherwise be reused for a
family of four.
"""

from __future__ import annotations

from typing import Sequence

from kb.stores.cypher import Query

# "all of them" for a list slice; Cypher has no unbounded slice parameter
_ALL = 2**31 - 1


def _ids(values: Sequence[int]) -> list[int]:
    return sorted({int(v) for v in values})


def presence_query(fids: Sequence[int], gids: Sequence[int] | None) -> Query:
    """Where the features ``fids`` occur (in ``gids`` if given): one record per feature, its
    graphs as [gid, activation, influence, positions] lists. Driven by the features."""
    graph_filter = "WHERE n.gid IN $gids " if gids is not None else ""
    return (
        "UNWIND $fids AS fid "
        "MATCH (n:Node {fid: fid}) " + graph_filter + ""
        "WITH fid, n.gid AS gid, max(n.activation) AS activation, min(n.influence) AS influence, "
        "collect(DISTINCT n.ctx_idx) AS positions "
        "RETURN fid, collect([gid, activation, influence, positions]) AS graphs",
        {"fids": _ids(fids), "gids": _ids(gids) if gids is not None else None},
    )


def graph_presence_query(gids: Sequence[int], fids: Sequence[int] | None = None) -> Query:
    """The features of the graphs ``gids`` (only ``fids`` if given): one record per graph, its
    features as [fid, activation, influence, positions] lists (a record per (feature, graph)
    costs the driver far more).

    Driven by the graphs, so its cost follows their size, not how common the features are."""
    only = "AND n.fid IN $fids " if fids is not None else ""
    return (
        "MATCH (n:Node) USING INDEX n:Node(gid, idx) WHERE n.gid IN $gids AND n.idx >= 0 AND n.fid IS NOT NULL " + only + ""
        "WITH n.gid AS gid, n.fid AS fid, max(n.activation) AS activation, min(n.influence) AS influence, "
        "collect(DISTINCT n.ctx_idx) AS positions "
        "RETURN gid, collect([fid, activation, influence, positions]) AS features",
        {"gids": _ids(gids), "fids": _ids(fids) if fids is not None else None},
    )


def shared_fids_query(gids: Sequence[int], min_graphs: int) -> Query:
    """The features that have nodes in at least ``min_graphs`` of ``gids``."""
    return (
        "MATCH (n:Node) USING INDEX n:Node(gid, idx) WHERE n.gid IN $gids AND n.idx >= 0 AND n.fid IS NOT NULL "
        "WITH n.fid AS fid, count(DISTINCT n.gid) AS n_graphs WHERE n_graphs >= $min_graphs "
        "RETURN fid",
        {"gids": _ids(gids), "min_graphs": min_graphs},
    )


# each feature node of the chosen graphs with every link into it (dir 0, upstream) and out of it
# (dir 1, downstream); dir is the position in DIRECTIONS
_LINKED = (
    "MATCH (f:Node) WHERE f.fid IN $fids AND f.gid IN $gids "
    "CALL (f) { "
    "MATCH (nb)-[l:LINK]->(f) RETURN 0 AS dir, nb, l "
    "UNION ALL "
    "MATCH (f)-[l:LINK]->(nb) RETURN 1 AS dir, nb, l "
    "} "
)


def neighbours_query(fids: Sequence[int], gids: Sequence[int], top: int | None) -> Query:
    """Per (graph, feature, direction): its ``top`` neighbours by |summed weight|."""
    return (
        _LINKED + "WITH f.gid AS gid, f.fid AS fid, dir, nb.fid AS nfid, CASE WHEN nb.fid IS NULL THEN nb.idx ELSE -1 END AS own, "
        "sum(l.w) AS weight, count(l) AS n_links, min(nb.idx) AS node_idx "
        "ORDER BY abs(weight) DESC, CASE WHEN nfid IS NULL THEN 1 ELSE 0 END, nfid, node_idx "
        "WITH gid, fid, dir, collect({nfid: nfid, node_idx: node_idx, weight: weight, n_links: n_links})[..$top] AS best "
        "UNWIND range(0, size(best) - 1) AS rank "
        "WITH gid, fid, dir, rank, best[rank] AS b "
        "MATCH (node:Node) WHERE node.gid = gid AND node.idx = b.node_idx "
        "RETURN gid, fid, dir, rank, b.nfid AS nfid, b.node_idx AS node_idx, node.node_id AS node_id, node.kind AS kind, "
        "node.layer AS layer, node.ctx_idx AS ctx_idx, b.weight AS weight, b.n_links AS n_links",
        {"fids": _ids(fids), "gids": _ids(gids), "top": _ALL if top is None else top},
    )


def neighbour_summary_query(fids: Sequence[int], gids: Sequence[int], top: int | None) -> Query:
    """Per (feature, direction): its ``top`` feature neighbours by graphs, then |mean weight|."""
    return (
        _LINKED + "WITH f.fid AS fid, f.gid AS gid, dir, nb.fid AS nfid, sum(l.w) AS weight WHERE nfid IS NOT NULL "
        "WITH fid, dir, nfid, count(*) AS n_graphs, avg(weight) AS mean_weight "
        "ORDER BY n_graphs DESC, abs(mean_weight) DESC, nfid "
        "WITH fid, dir, collect({nfid: nfid, n_graphs: n_graphs, mean_weight: mean_weight})[..$top] AS best "
        "UNWIND range(0, size(best) - 1) AS rank "
        "RETURN fid, dir, rank, best[rank].nfid AS nfid, best[rank].n_graphs AS n_graphs, best[rank].mean_weight AS mean_weight",
        {"fids": _ids(fids), "gids": _ids(gids), "top": _ALL if top is None else top},
    )


def layer_counts_query(gids: Sequence[int]) -> Query:
    return (
        "MATCH (n:Node) USING INDEX n:Node(gid, idx) WHERE n.gid IN $gids AND n.idx >= 0 AND n.fid IS NOT NULL "
        "RETURN n.gid AS gid, n.layer_num AS layer, count(DISTINCT n.fid) AS n",
        {"gids": _ids(gids)},
    )


def graph_layer_features_query(gids: Sequence[int]) -> Query:
    """Each graph's distinct features with their layers, as two lists in one record per graph."""
    return (
        "UNWIND $gids AS gid MATCH (n:Node {gid: gid}) WHERE n.idx >= 0 AND n.fid IS NOT NULL "
        "WITH DISTINCT gid, n.fid AS fid, n.layer_num AS layer "
        "RETURN gid, collect(fid) AS fids, collect(layer) AS layers",
        {"gids": _ids(gids)},
    )
