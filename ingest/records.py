"""Typed records that a graph file turns into.

Conventions: a graph's nodes are numbered by their position in the file's ``nodes`` array
(``Node.idx``); that number, not ``node_id``, is a node's identity inside its graph, because
real files repeat node_ids (an error node ``0_2_1`` collides with feature 2 of layer 0 at
position 1). Links name their ends by that number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

# a node's kind (Node.kind), as stored: not to be confused with the Neo4j label
# schema.graph_schema.FEATURE ("Feature") nor with a file's feature_type values
FEATURE_KIND = "feature"
ERROR_KIND = "error"
EMBEDDING_KIND = "embedding"
LOGIT_KIND = "logit"
BIAS_KIND = "bias"
OTHER_KIND = "other"
"""Nodes that are none of the above: the converter's ``unknown`` sources, the viewer's own
kinds, and feature types newer than this code. They are kept and exported, never features."""

# the file's feature_type -> the node's kind
FEATURE_TYPES = {
    "cross layer transcoder": FEATURE_KIND,
    "transcoder": FEATURE_KIND,
    "lorsa": FEATURE_KIND,
    "mlp reconstruction error": ERROR_KIND,
    "lorsa error": ERROR_KIND,
    "embedding": EMBEDDING_KIND,
    "logit": LOGIT_KIND,
    "bias": BIAS_KIND,
    "unknown": OTHER_KIND,
    "unexplored node": OTHER_KIND,
    "supernode": OTHER_KIND,
}

# feature types whose nodes sit in the attention sublayer of their layer (the CRM engine's Lorsa);
# every other feature and error sits in the MLP sublayer, which reads the attention's output
ATTENTION_TYPES = frozenset({"lorsa", "lorsa error"})
LORSA = "lorsa"

# the three lists of a Lorsa node's qk_tracing_results, and the role each gives its rows
QK_LISTS = {
    "pair_wise_contributors": "pair",
    "top_q_marginal_contributors": "q",
    "top_k_marginal_contributors": "k",
}

# fields of a node that get their own column; everything else is kept in Node.extra
PROMOTED_NODE_FIELDS = (
    "node_id",
    "jsNodeId",
    "feature",
    "layer",
    "ctx_idx",
    "feature_type",
    "clerp",
    "influence",
    "activation",
    "token_prob",
    "is_target_logit",
)


# marker in Node.extra: the file wrote the node's layer as a number (the CRM engine does), not a string
INT_LAYER = "__int_layer__"


class FeatureKey(NamedTuple):
    """A feature's identity across graphs.

    A named tuple rather than a frozen dataclass: an ingest hashes and compares one per node
    many times, and a tuple does that in C.
    """

    transcoder_set: str
    layer: int
    index: int

    def __str__(self) -> str:
        return f"{self.transcoder_set}/L{self.layer}/{self.index}"


@dataclass(frozen=True)
class QKContribution:
    """One row of a Lorsa node's QK tracing: what drives the query and/or key of node ``target_idx``.

    ``role`` is ``pair`` (a query contributor and a key contributor together), ``q`` or ``k``
    (marginal); ``rank`` is the row's place in its list. A contributor is named by node_id, which
    the file resolves in ``nodes`` or in the top-level ``qk_only_nodes``; ``*_feature`` is its
    feature when it is one.
    """

    target_idx: int
    role: str
    rank: int
    q_node_id: str | None
    k_node_id: str | None
    weight: float
    q_feature: FeatureKey | None = None
    k_feature: FeatureKey | None = None


@dataclass
class Node:
    idx: int
    node_id: str
    js_node_id: str | None
    kind: str
    feature_type: str
    layer: str
    layer_num: int
    """The layer number: -1 for embeddings, the layer for features, errors and biases, the logit
    layer for logits (-1 for a node of another kind whose layer is not a number)."""
    ctx_idx: int
    feature: int | None
    feature_key: FeatureKey | None
    clerp: str | None
    influence: float | None
    activation: float | None
    token_prob: float | None
    is_target_logit: bool | None
    extra: dict[str, Any] = field(default_factory=dict)
    """Every other field of the node, plus ``__absent__``: promoted fields the file left out, and
    ``__int_layer__`` when the layer was written as a number."""

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # pickled as its field values, in order: half the cost of a dataclass's state dict, and a
        # parsed graph's nodes travel from the parsing process to the writer (ingest.readahead)
        return Node, tuple(self.__dict__.values())


@dataclass
class GraphHeader:
    """Everything of a graph file except its nodes and links."""

    slug: str
    scan: str | None
    prompt: str
    prompt_tokens: list[str]
    schema_version: int
    transcoder_set: str
    model: str | None
    metadata: dict[str, Any]
    qparams: dict[str, Any]
    extra: dict[str, Any]
    """Unknown top-level fields (and ``qk_only_nodes``), kept as they were."""
    lorsa_set: str | None = None
    """The canonical transcoder set of the graph's Lorsa (attention) features."""


@dataclass
class ParsedGraph:
    """A whole graph, validated.

    Its links are three parallel arrays of the same length, in file order: ``link_src`` and
    ``link_tgt`` (int32, the ends' ``Node.idx``) and ``link_weight`` (float64). A link whose
    ends cannot be told apart (a node_id shared by several nodes, no causal order to decide)
    is not in them: ``ambiguous_links`` keeps each as ``{"index": its place in the file's
    links, "link": the link as written}``. ``link_extra`` maps a link's place in the arrays
    (not in the file, when links were set aside) to its fields other than source, target and
    weight. ``warnings`` says what was kept aside or told apart.
    """

    path: str
    content_hash: str
    header: GraphHeader
    nodes: list[Node]
    link_src: np.ndarray
    link_tgt: np.ndarray
    link_weight: np.ndarray
    link_extra: dict[int, dict[str, Any]]
    ambiguous_links: list[dict[str, Any]]
    warnings: list[str]
    qk: list[QKContribution] = field(default_factory=list)
    qk_only_nodes: list[Node] = field(default_factory=list)
    """The file's ``qk_only_nodes``, parsed (``idx`` -1): QK contributors pruned out of ``nodes``."""

    @property
    def n_links(self) -> int:
        return len(self.link_src)

    def features(self) -> set[FeatureKey]:
        return {n.feature_key for n in self.nodes if n.feature_key is not None}

    def qk_features(self) -> set[FeatureKey]:
        """Features named by QK tracing, whether or not they have a node in ``nodes``."""
        out = {c.q_feature for c in self.qk if c.q_feature is not None}
        return out | {c.k_feature for c in self.qk if c.k_feature is not None}
