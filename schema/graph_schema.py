"""The Neo4j schema: labels, relationship types, constraints and indexes.

(:Feature {fid, transcoder_set, layer, index})   one node per feature across all graphs;
                                                  fid is the SQL features.id
(:Graph {gid, slug, ready})                       one per stored graph version
(:Node {gid, idx, node_id, kind, layer, ...})     a graph's own nodes (features at a position,
                                                  errors, embeddings, logits); input_total is the
                                                  sum of |w| of the links into the node (absent on
                                                  nodes written before it was kept)
(:Node)-[:IS]->(:Feature)                         for feature nodes
(:Node)-[:LINK {w, i}]->(:Node)                   weighted links; i is the link's place in the file
(:CircuitKB {singleton, instance})                the id of the SQL database this store belongs to
(:FeatureEdges {gid, part, n, src, tgt, w, nl})   a graph's feature-to-feature edges, summed over
                                                  positions: packed little-endian arrays as base64
                                                  (see kb.stores.cypher.circuits)
(:SearchText {hash, v_<model digest>...})         a description text (SHA-256 hex) and its vector of
                                                  each search model, in one vector index per model
                                                  (see kb.stores.cypher.search; made on first use)

Every statement is idempotent (IF NOT EXISTS); Community edition supports all of them.
"""

from __future__ import annotations

# the labels and relationship types above; Cypher writes them literally (they are never user
# text), and tests/test_store_conformance.py checks that it uses no others
FEATURE_LABEL = "Feature"
GRAPH_LABEL = "Graph"
NODE_LABEL = "Node"
INSTANCE_LABEL = "CircuitKB"
FEATURE_EDGES_LABEL = "FeatureEdges"
SEARCH_TEXT_LABEL = "SearchText"
LABELS = (FEATURE_LABEL, GRAPH_LABEL, NODE_LABEL, INSTANCE_LABEL, FEATURE_EDGES_LABEL, SEARCH_TEXT_LABEL)
IS_TYPE = "IS"
LINK_TYPE = "LINK"
RELATIONSHIP_TYPES = (IS_TYPE, LINK_TYPE)

STATEMENTS: tuple[str, ...] = (
    "CREATE CONSTRAINT feature_fid IF NOT EXISTS FOR (f:Feature) REQUIRE f.fid IS UNIQUE",
    "CREATE CONSTRAINT feature_key IF NOT EXISTS FOR (f:Feature) REQUIRE (f.transcoder_set, f.layer, f.index) IS UNIQUE",
    "CREATE CONSTRAINT graph_gid IF NOT EXISTS FOR (g:Graph) REQUIRE g.gid IS UNIQUE",
    "CREATE INDEX node_gid_idx IF NOT EXISTS FOR (n:Node) ON (n.gid, n.idx)",
    "CREATE INDEX node_fid IF NOT EXISTS FOR (n:Node) ON (n.fid)",
    "CREATE INDEX graph_slug IF NOT EXISTS FOR (g:Graph) ON (g.slug)",
    "CREATE CONSTRAINT circuitkb_singleton IF NOT EXISTS FOR (m:CircuitKB) REQUIRE m.singleton IS UNIQUE",
    # a graph's nodes by gid alone: the (gid, idx) index serves that only when the query also
    # says `n.idx IS NOT NULL`, so `MATCH (n:Node {gid: $gid})` would otherwise scan every node
    "CREATE INDEX node_gid IF NOT EXISTS FOR (n:Node) ON (n.gid)",
    "CREATE CONSTRAINT feature_edges_part IF NOT EXISTS FOR (e:FeatureEdges) REQUIRE (e.gid, e.part) IS UNIQUE",
    "CREATE CONSTRAINT search_text_hash IF NOT EXISTS FOR (t:SearchText) REQUIRE t.hash IS UNIQUE",
)
