"""The SQL schema: graph registry, feature metadata, labels, and the embedded graph store.

SQLAlchemy Core tables, one MetaData. Alembic migrations in ``schema/migrations`` create
exactly these; ``tests/test_schema.py`` checks that they agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# graph lifecycle: a row is 'loading' while its data is written, 'ready' once complete and
# visible, 'replaced' when a newer version of the same slug took its place, 'removed' when
# `circuitkb remove` took it out (its data is purged next; the row then goes).
LOADING, READY, REPLACED, REMOVED = "loading", "ready", "replaced", "removed"

features = Table(
    "features",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("transcoder_set", String(200), nullable=False),
    Column("layer", Integer, nullable=False),
    Column("index", BigInteger, nullable=False),
    UniqueConstraint("transcoder_set", "layer", "index"),
)

graphs = Table(
    "graphs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("store", String(16), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("prompt_tokens", JSON, nullable=False),
    Column("model", String(200)),
    Column("scan", String(300)),
    Column("transcoder_set", String(200), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("language", String(16)),
    Column("family", String(200)),
    Column("n_nodes", Integer, nullable=False, server_default=text("0")),
    Column("n_links", BigInteger, nullable=False, server_default=text("0")),
    Column("n_features", Integer, nullable=False, server_default=text("0")),
    Column("metadata", JSON, nullable=False),
    Column("qparams", JSON, nullable=False),
    Column("extra", JSON, nullable=False),
    Column("owner", String(200)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("ready_at", DateTime(timezone=True)),
    Index("ix_graphs_visible_slug", "slug", unique=True, sqlite_where=text("status = 'ready'"), postgresql_where=text("status = 'ready'")),
    Index(
        "ix_graphs_live_version",
        "slug",
        "content_hash",
        unique=True,
        sqlite_where=text("status IN ('loading', 'ready')"),
        postgresql_where=text("status IN ('loading', 'ready')"),
    ),
    Index("ix_graphs_status", "status"),
    # with the status, so that a family's or language's visible graphs are found in one index
    Index("ix_graphs_family_status", "family", "status"),
    Index("ix_graphs_language_status", "language", "status"),
)

graph_tags = Table(
    "graph_tags",
    metadata,
    Column("graph_id", Integer, ForeignKey("graphs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Index("ix_graph_tags_tag", "tag"),
)

descriptions = Table(
    "descriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("feature_id", Integer, ForeignKey("features.id"), nullable=False),
    Column("source", String(32), nullable=False),  # neuronpedia | clerp | label | ...
    Column("kind", String(100), nullable=False, server_default=text("''")),  # e.g. Neuronpedia's explanation type
    Column("author", String(200), nullable=False, server_default=text("''")),
    Column("text", Text, nullable=False),
    Column("text_hash", String(64), nullable=False),
    Column("graph_id", Integer, ForeignKey("graphs.id", ondelete="CASCADE")),
    Column("scores", JSON),
    Column("origin", Text),  # file it came from
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("feature_id", "source", "kind", "author", "text_hash", "graph_id"),
    # a feature's distinct texts without reading its rows (a clerp repeats in every graph with
    # the feature): grouped by hash in the index, only the first row of each text is read
    Index("ix_descriptions_feature_text", "feature_id", "source", "text_hash"),
    Index("ix_descriptions_graph", "graph_id"),
)

feature_details = Table(
    "feature_details",
    metadata,
    Column("feature_id", Integer, ForeignKey("features.id"), primary_key=True),
    Column("examples_quantiles", JSON),
    Column("top_logits", JSON),
    Column("bottom_logits", JSON),
    Column("act_min", Float),
    Column("act_max", Float),
    Column("activation_frequency", Float),
    Column("extra", JSON),
    Column("origin", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# What people say about features. ``labels`` holds each label's current version (search, compare
# and circuits read it); ``label_versions`` every version. A label is about a feature everywhere
# (graph_slug NULL), about the feature in one graph (graph_slug), or about one node of a graph
# (graph_slug and node_id). ``version`` is the number of the current version: an edit names the
# version it was based on and is refused when that is no longer current. ``up_votes`` and
# ``down_votes`` are recounted from ``label_votes`` in the transaction of each vote.
PROPOSED, ACCEPTED, REJECTED = "proposed", "accepted", "rejected"
LABEL_STATUSES = (PROPOSED, ACCEPTED, REJECTED)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("feature_id", Integer, ForeignKey("features.id"), nullable=False),
    Column("graph_slug", String(300)),  # a label may be about the feature in one graph
    Column("node_id", String(200)),  # ... or about one node of that graph
    Column("author", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("note", Text),
    Column("confidence", Float),
    Column("status", String(16), nullable=False, server_default=text("'proposed'")),
    Column("status_by", String(200)),  # the admin who set the status, or "votes"
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("edited_by", String(200)),
    Column("up_votes", Integer, nullable=False, server_default=text("0")),
    Column("down_votes", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("uuid"),
    Index("ix_labels_feature", "feature_id"),
)

label_versions = Table(
    "label_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("label_id", Integer, ForeignKey("labels.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # create | edit | revert | import
    Column("based_on", Integer),  # the version an edit started from; a revert's target
    Column("text", Text, nullable=False),
    Column("note", Text),
    Column("confidence", Float),
    Column("editor", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("label_id", "version"),
)

label_votes = Table(
    "label_votes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("label_id", Integer, ForeignKey("labels.id", ondelete="CASCADE"), nullable=False),
    Column("voter", String(200), nullable=False),
    Column("value", Integer, nullable=False),  # +1 or -1
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("label_id", "voter"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("feature_id", Integer, ForeignKey("features.id"), nullable=False),
    Column("author", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("uuid"),
    Index("ix_comments_feature", "feature_id"),
)

# --- people ------------------------------------------------------------------------------------------

VIEWER, LABELLER, ADMIN = "viewer", "labeller", "admin"
ROLES = (VIEWER, LABELLER, ADMIN)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("password_hash", Text, nullable=False),  # argon2id, with its parameters and salt
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the token; the token itself is never stored
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# failed sign-ins per user name (known or not), for the rate limit
sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
)

# who did what: written in the transaction of each write; no function changes or deletes a row
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_log_at", "at"),
)

# --- saved subgraphs: a named view of one graph, as Neuronpedia saves them ------------------------------

subgraphs = Table(
    "subgraphs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("graph_slug", String(300), nullable=False),
    Column("name", String(200), nullable=False),
    Column("author", String(200), nullable=False),
    Column("pinned_ids", JSON, nullable=False),  # [node_id, ...]
    Column("supernodes", JSON, nullable=False),  # [[name, node_id, ...], ...]
    Column("clerps", JSON, nullable=False),  # [[node_id, clerp], ...]
    Column("thresholds", JSON, nullable=False),  # {"pruningThreshold": .8, "densityThreshold": .99}
    Column("view", JSON, nullable=False),  # the other qParams: linkType, clickedId, sg_pos
    Column("origin", String(100)),  # "qParams:<content hash>" for the view saved in the graph file
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("uuid"),
    UniqueConstraint("graph_slug", "name"),
)

# --- the embedded graph store: each graph's nodes and links, keyed by graph id -----------------

graph_nodes = Table(
    "graph_nodes",
    metadata,
    Column("graph_id", Integer, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("node_id", String(200), nullable=False),
    Column("js_node_id", String(200)),
    Column("kind", String(16), nullable=False),
    Column("feature_type", String(64), nullable=False),
    Column("layer", String(16), nullable=False),
    Column("layer_num", Integer, nullable=False),
    Column("ctx_idx", Integer, nullable=False),
    Column("feature", BigInteger),
    Column("feature_id", Integer),
    Column("clerp", Text),
    Column("influence", Float),
    Column("activation", Float),
    Column("token_prob", Float),
    Column("is_target_logit", Boolean),
    Column("extra", Text),
    # the sum of |weight| of the links into the node (0.0 for none), written with the node: what a
    # link's share of its target's input divides by (see kb.stores.base.node_input_totals)
    Column("input_total", Float),
    # a node by its feature, with its position: where a feature sits in a graph, from the index alone
    Index("ix_graph_nodes_feature_ctx", "feature_id", "graph_id", "ctx_idx"),
    # each graph's target logit, found without reading the graph's other nodes (chains end there);
    # its condition written as SQLAlchemy writes the test (SQLite uses the index only for that text)
    Index("ix_graph_nodes_target", "graph_id", "idx", sqlite_where=text("is_target_logit = 1"), postgresql_where=text("is_target_logit = true")),
    sqlite_with_rowid=False,
)

# A graph's links, keyed by their source: the primary key is (graph_id, src, tgt, idx), so one
# B-tree holds the table and serves a node's outgoing links and the links between chosen nodes;
# ix_graph_links_graph_id_tgt_src below serves incoming links. idx is the link's place in the file
# (unique in its graph); a graph is read in file order by sorting on it. The store writes each
# graph's links sorted by the key, so that inserting them appends to the B-tree.
graph_links = Table(
    "graph_links",
    metadata,
    Column("graph_id", Integer, primary_key=True),
    Column("src", Integer, primary_key=True),
    Column("tgt", Integer, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("weight", Float, nullable=False),
    sqlite_with_rowid=False,
)

graph_link_extra = Table(
    "graph_link_extra",
    metadata,
    Column("graph_id", Integer, primary_key=True),
    Column("extra", JSON, nullable=False),  # {"fields": {link idx: {...}}, "ambiguous": [raw links]}
)

# Each graph's QK tracing (CRM engine): for a Lorsa node (target_idx, a graph_nodes idx; its node_id
# and its feature target_feature_id), the features and nodes that drive its query and key. role 'pair' names a
# query and a key contributor together, 'q' and 'k' one of them; rank is the row's place in the
# file's list. A contributor is named by node_id (in the graph's nodes or in its qk_only_nodes) and
# by features.id when it is a feature. Kept in SQL for every graph store, written with the registry
# row that publishes the graph. The file's qk_tracing_results stay in the node's extra for export.
graph_qk = Table(
    "graph_qk",
    metadata,
    Column("graph_id", Integer, ForeignKey("graphs.id", ondelete="CASCADE"), primary_key=True),
    Column("target_idx", Integer, primary_key=True),
    Column("role", String(8), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("target_node_id", String(200), nullable=False),
    Column("target_feature_id", Integer),
    Column("q_node_id", String(200)),
    Column("q_feature_id", Integer),
    Column("k_node_id", String(200)),
    Column("k_feature_id", Integer),
    Column("weight", Float, nullable=False),
    Index("ix_graph_qk_target_feature_id_graph_id", "target_feature_id", "graph_id"),
)

# --- saved sets of graphs ------------------------------------------------------------------------

graph_sets = Table(
    "graph_sets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("slugs", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# --- circuits: each graph's feature-to-feature edges, and link indexes for pieces of big graphs ---

# Each graph's feature edges (every link from a node of feature A to a node of feature B, summed
# over positions), packed as little-endian arrays of equal length, in parts of at most a million
# edges: src and tgt are features.id (int32), weight the summed weight (float64), n_links how
# many links were summed (int32). Written in the same transaction as the graph's nodes and links;
# read whole by kb.stores.embedded_circuit_queries, which aggregates many graphs in numpy (SQLite
# needs seconds to GROUP BY a million rows; unpacking and sorting them takes a fraction of that).
graph_feature_edges = Table(
    "graph_feature_edges",
    metadata,
    Column("graph_id", Integer, primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("n_edges", Integer, nullable=False),
    Column("src", LargeBinary, nullable=False),
    Column("tgt", LargeBinary, nullable=False),
    Column("weight", LargeBinary, nullable=False),
    Column("n_links", LargeBinary, nullable=False),
)

# a node's incoming links without reading the whole graph (k-hop pieces of big graphs); its
# outgoing links, and the links among chosen nodes, are found by the primary key
Index("ix_graph_links_graph_id_tgt_src", graph_links.c.graph_id, graph_links.c.tgt, graph_links.c.src)

# --- aggregates over the visible graphs, the same for every graph store (kb.aggregates) ------------
#
# Written in the SQL transaction that publishes a graph (status 'ready') or takes it out of sight,
# so that they always count exactly the visible graphs. A graph's feature values and feature edges
# are kept per graph (the first two tables), so that a minimum or maximum that a removed graph held
# is recomputed from the graphs that remain; the totals answer the questions over all graphs.

# Each visible graph's features: the strongest activation and the best (smallest) influence of
# the feature's nodes in the graph (None when no node has one). Keyed by feature first: the
# graphs that contain a feature, without reading any graph.
feature_graphs = Table(
    "feature_graphs",
    metadata,
    Column("feature_id", Integer, primary_key=True),
    Column("graph_id", Integer, primary_key=True),
    Column("activation", Float),
    Column("influence", Float),
    Index("ix_feature_graphs_graph_id_feature_id", "graph_id", "feature_id"),
    Index("ix_feature_graphs_feature_id_activation", "feature_id", "activation"),
    Index("ix_feature_graphs_feature_id_influence", "feature_id", "influence"),
    sqlite_with_rowid=False,
)

# Each visible graph's feature edges (as graph_feature_edges holds them, one row per edge): the
# summed weight of the links from a node of feature src to a node of feature tgt, and their number.
feature_edge_graphs = Table(
    "feature_edge_graphs",
    metadata,
    Column("src", Integer, primary_key=True),
    Column("tgt", Integer, primary_key=True),
    Column("graph_id", Integer, primary_key=True),
    Column("weight", Float, nullable=False),
    Column("n_links", Integer, nullable=False),
    Index("ix_feature_edge_graphs_graph_id_src_tgt", "graph_id", "src", "tgt"),
    sqlite_with_rowid=False,
)

# Each visible graph's two-step paths into its target logit, grouped: from a feature or embedding
# node at position ctx_idx, through a node of a feature (a middle feature), to a target logit (one
# link per hop). Per group, how many such paths, the best score (the product of each link's share
# of its target's input, as kb.stores.circuit_queries.ChainMatch scores it) and the next best, and
# the best path: its nodes' idx, its links' weights, the input totals of its middle and target
# nodes; and the next paths it keeps (kb.aggregates.paths.KEPT_PATHS in all) with the best score
# of those it does not keep. Packed, one row per (graph, start position): ``groups`` holds that position's groups and
# ``positions`` where their middle features sit in the graph, as little-endian arrays
# (kb.aggregates.paths.PACKED_GROUP and PACKED_POSITION). Two-hop questions read the rows of the
# positions they start from, instead of matching every path of every graph, and take a graph's
# best paths from its groups' kept paths when no other path can be among them.
path_group_packs = Table(
    "path_group_packs",
    metadata,
    Column("graph_id", Integer, primary_key=True),
    Column("ctx_idx", Integer, primary_key=True),
    Column("groups", LargeBinary, nullable=False),
    Column("positions", LargeBinary, nullable=False),
    # the paths each group keeps after its best (kb.aggregates.paths.PACKED_PATH); None in a
    # pack written before they were kept (migration 0018), until the aggregates are rebuilt
    Column("more", LargeBinary, nullable=True),
)

# Per feature over the visible graphs that contain it: how many, and count, sum, minimum and
# maximum of its per-graph activation and influence (those of feature_graphs that are not None).
feature_totals = Table(
    "feature_totals",
    metadata,
    Column("feature_id", Integer, primary_key=True),
    Column("n_graphs", Integer, nullable=False),
    Column("activation_n", Integer, nullable=False),
    Column("activation_sum", Float),
    Column("activation_min", Float),
    Column("activation_max", Float),
    Column("influence_n", Integer, nullable=False),
    Column("influence_sum", Float),
    Column("influence_min", Float),
    Column("influence_max", Float),
    Index("ix_feature_totals_n_graphs", "n_graphs"),
    sqlite_with_rowid=False,
)

# Per feature edge over the visible graphs that have it: how many, and sum, sum of absolute
# values, minimum and maximum of the per-graph weight, and the links folded into it. Indexed by
# number of graphs (the most widely shared first, without sorting them all) and by target (the
# edges into a feature); every publish moves thousands of keys in the first index, so it is the
# only one on a column that changes.
feature_edge_totals = Table(
    "feature_edge_totals",
    metadata,
    Column("src", Integer, primary_key=True),
    Column("tgt", Integer, primary_key=True),
    Column("n_graphs", Integer, nullable=False),
    Column("weight_sum", Float, nullable=False),
    Column("abs_sum", Float, nullable=False),
    Column("weight_min", Float, nullable=False),
    Column("weight_max", Float, nullable=False),
    Column("n_links", BigInteger, nullable=False),
    Index("ix_feature_edge_totals_n_graphs", "n_graphs"),
    Index("ix_feature_edge_totals_tgt_src", "tgt", "src"),
    sqlite_with_rowid=False,
)

# How many feature edges are in exactly n_graphs visible graphs (rows with none are left out):
# how many edges recur in at least k graphs, without counting them.
feature_edge_histogram = Table(
    "feature_edge_histogram",
    metadata,
    Column("n_graphs", Integer, primary_key=True),
    Column("n_edges", BigInteger, nullable=False),
)

# --- facts about this knowledge base ---------------------------------------------------------------

kb_meta = Table(
    "kb_meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)
