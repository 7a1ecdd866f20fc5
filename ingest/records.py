"""Typed records that a graph file turns into.

Conventions: a graph's nodes are numbered by their position in the file's ``nodes`` array
(``Node.idx``); that number, not ``node_id``, is a node's identity inside its graph, because
real files repeat node_ids (an error node ``0_2_1`` collides with feature 2 of layer 0 at
position 1). Links name their ends by that number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# a node's kind (Node.kind), as stored: not to be confused with the Neo4j label
# schema.graph_schema.FEATURE ("Feature") nor with a file's feature_type values
FEATURE_KIND = "feature"
ERROR_KIND = "error"
EMBEDDING_KIND = "embedding"
LOGIT_KIND = "logit"

# the file's feature_type -> the node's kind
FEATURE_TYPES = {
    "cross layer transcoder": FEATURE_KIND,
    "transcoder": FEATURE_KIND,
    "mlp reconstruction error": ERROR_KIND,
    "embedding": EMBEDDING_KIND,
    "logit": LOGIT_KIND,
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


@dataclass(frozen=True, order=True)
class FeatureKey:
    """A feature's identity across graphs."""

    transcoder_set: str
    layer: int
    index: int

    def __str__(self) -> str:
        return f"{self.transcoder_set}/L{self.layer}/{self.index}"


@dataclass
class Node:
    idx: int
    node_id: str
    js_node_id: str | None
    kind: str
    feature_type: str
    layer: str
    layer_num: int
    """Order in the model: -1 for embeddings, the layer for features and errors, n_layers+1 for logits."""
    ctx_idx: int
    feature: int | None
    feature_key: FeatureKey | None
    clerp: str | None
    influence: float | None
    activation: float | None
    token_prob: float | None
    is_target_logit: bool | None
    extra: dict[str, Any] = field(default_factory=dict)
    """Every other field of the node, plus ``__absent__``: promoted fields the file left out."""


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
    """Unknown top-level fields, kept as they were."""


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

    @property
    def n_links(self) -> int:
        return len(self.link_src)

    def features(self) -> set[FeatureKey]:
        return {n.feature_key for n in self.nodes if n.feature_key is not None}
