"""The model's causal order, which every link of an attribution graph respects.

It tells colliding node_ids apart (a link is resolved when exactly one reading respects it), and
it checks links: one that runs against it is kept as the file has it and reported in a warning.

A node's *place* is a number: embeddings first (-1), then each layer L as two sublayers, its
attention (2L) and its MLP (2L + 1), then the logits (infinity). Transcoder features and MLP
reconstruction errors sit in the MLP sublayer; the CRM engine's Lorsa features and Lorsa errors
in the attention sublayer, so a Lorsa feature of layer L feeds a transcoder feature of the same
layer L. In a graph without attention nodes this is simply the order of the layers.

Some nodes have no exact place, so a node has a span (earliest, latest):
- a bias leaf ``{layer}_bias_{kind}_{pos}`` sits in the sublayer its kind names (``attn_bO``,
  ``lorsa_bD``: attention; ``mlp_bout``, ``tc_bD``: MLP); the query and key biases (``*_bQ``,
  ``*_bK``) feed their sublayer's attention pattern, so they come just before it;
- a node of another kind (``unknown``, a type newer than this code) may be anywhere in its layer,
  or anywhere at all when its layer is not a number.

A link from s to t respects the order when s can come before t (earliest of s < latest of t)
and it does not run backwards in the context (position of s <= position of t).
"""

from __future__ import annotations

import math
import re

from ingest.records import ATTENTION_TYPES, BIAS_KIND, EMBEDDING_KIND, ERROR_KIND, FEATURE_KIND, LOGIT_KIND, Node

Span = tuple[float, float]

_BIAS_ID = re.compile(r"^\d+_bias_(.+)_\d+$")
_ATTENTION_BIAS = ("attn_", "lorsa_")
_MLP_BIAS = ("mlp_", "tc_")
_PATTERN_BIAS = ("bQ", "bK")
ANYWHERE: Span = (-math.inf, math.inf)


def causal_span(node: Node, layer_is_number: bool = True) -> Span:
    """(earliest, latest) place of ``node`` in the model (see the module docstring)."""
    if node.kind == EMBEDDING_KIND:
        return (-1.0, -1.0)
    if node.kind == LOGIT_KIND:
        return (math.inf, math.inf)
    if not layer_is_number:
        return ANYWHERE
    attention, mlp = 2.0 * node.layer_num, 2.0 * node.layer_num + 1
    if node.kind in (FEATURE_KIND, ERROR_KIND):
        place = attention if node.feature_type in ATTENTION_TYPES else mlp
        return (place, place)
    if node.kind == BIAS_KIND:
        match = _BIAS_ID.match(node.node_id)
        bias_kind = match.group(1) if match else ""
        place = attention if bias_kind.startswith(_ATTENTION_BIAS) else mlp if bias_kind.startswith(_MLP_BIAS) else None
        if place is not None:
            place -= 0.5 if bias_kind.endswith(_PATTERN_BIAS) else 0.0
            return (place, place)
    return (attention - 0.5, mlp)


def sublayer_name(node: Node) -> str:
    """Where a node sits, as people read it: ``layer 3 attention``, ``embeddings``, ``logits``."""
    if node.kind == EMBEDDING_KIND:
        return "embeddings"
    if node.kind == LOGIT_KIND:
        return "logits"
    if node.kind in (FEATURE_KIND, ERROR_KIND):
        return f"layer {node.layer_num} {'attention' if node.feature_type in ATTENTION_TYPES else 'MLP'}"
    return f"layer {node.layer}"


def may_feed(source: Span, source_ctx: int, target: Span, target_ctx: int) -> bool:
    """Whether a link from a node at ``source`` to one at ``target`` respects the causal order."""
    return source[0] < target[1] and source_ctx <= target_ctx
