"""What the synthetic files imitate: the constants, ids and records of a schema-1 graph file.

gemma-2-2b traced with the 2.5M-feature cross-layer transcoder, as Neuronpedia writes it; and
what marks a file as synthetic (the ``synth-`` slug, the creator and generator names).
"""

from __future__ import annotations

import math
import random
import re
from typing import Any, Sequence

from synth.tokens import token_id

GENERATOR_NAME = "circuitkb-synth"
GENERATOR_VERSION = "1.0.0"
CREATOR_NAME = "circuitkb synthetic"
SLUG_PREFIX = "synth-"
SCAN = "gemma-2-2b"
TRANSCODER_SET = "mntss/clt-gemma-2-2b-2.5M"
N_LAYERS = 26
# Verified in all nine real files: logit nodes sit on layer str(n_layers + 1), i.e. "27".
LOGIT_LAYER = str(N_LAYERS + 1)
# 2.5M features over 26 layers; the largest index seen in the real files is 98223.
D_TRANSCODER = 98_304
# Feature indices start above the layer count so that no feature id `0_{i}_{pos}` can collide
# with an error id `0_{layer}_{pos}` (real files can hold such collisions; ours must not).
MIN_FEATURE_INDEX = N_LAYERS
NODE_THRESHOLD = 0.8
EDGE_THRESHOLD = 0.85

# The feature_type of each node kind; the synthetic features are all cross-layer transcoder ones.
CLT_FEATURE_TYPE = "cross layer transcoder"
ERROR_TYPE = "mlp reconstruction error"
EMBEDDING_TYPE = "embedding"
LOGIT_TYPE = "logit"
# One letter per node kind, as the calibration statistics name them (link kinds are two letters).
KIND_LETTER = {CLT_FEATURE_TYPE: "F", ERROR_TYPE: "R", EMBEDDING_TYPE: "E", LOGIT_TYPE: "L"}
KIND_NAME = {"F": "feature", "R": "error", "E": "embedding", "L": "logit"}
LINK_KINDS = ("EF", "FF", "RF", "EL", "FL", "RL")


def cantor_pair(layer: int, index: int) -> int:
    """Schema-1 feature id of (layer, index): the Cantor pairing (l+i)(l+i+1)/2 + i."""
    s = layer + index
    return s * (s + 1) // 2 + index


def cantor_unpair(value: int) -> tuple[int, int]:
    """Inverse of :func:`cantor_pair`: (layer, index)."""
    w = (math.isqrt(8 * value + 1) - 1) // 2
    index = value - w * (w + 1) // 2
    return w - index, index


def logit_node_dict(token: str, prob: float, pos: int, is_target: bool) -> dict[str, Any]:
    """The node of an output token at the last position."""
    vocab = token_id(token)
    node = node_dict(f"{LOGIT_LAYER}_{vocab}_{pos}", vocab, LOGIT_LAYER, pos, LOGIT_TYPE, f"L_{vocab}-{pos}",
                     f'Output "{token}" (p={prob:.3f})', None, None)
    node["token_prob"] = prob
    node["is_target_logit"] = is_target
    return node


def node_dict(node_id: str, feature: int, layer: str, pos: int, kind: str, js_id: str, clerp: str,
              influence: float | None, activation: float | None) -> dict[str, Any]:
    """One node record, its fields in the order of the real Neuronpedia files."""
    return {"node_id": node_id, "feature": feature, "layer": layer, "ctx_idx": pos, "feature_type": kind,
            "token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0,
            "jsNodeId": js_id, "clerp": clerp, "influence": influence, "activation": activation}


def graph_metadata(slug: str, tokens: Sequence[str], create_time_ms: int) -> dict[str, Any]:
    """The ``metadata`` of a synthetic file, saying that it is synthetic."""
    return {
        "slug": slug,
        "scan": SCAN,
        "transcoder_list": [],
        "prompt_tokens": list(tokens),
        "prompt": "".join(tokens),
        "node_threshold": NODE_THRESHOLD,
        "schema_version": 1,
        "info": {
            "creator_name": CREATOR_NAME,
            "description": "Synthetic attribution graph made by circuitkb-synth: features, activations "
                           "and weights are simulated, calibrated on real gemma-2-2b graphs; not traced "
                           "from a model.",
            "source_urls": [],
            "transcoder_set": TRANSCODER_SET,
            "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION},
            "create_time_ms": create_time_ms,
        },
        "generation_settings": {"max_n_logits": 10, "desired_logit_prob": 0.95, "batch_size": 48,
                                "max_feature_nodes": 5000},
        "pruning_settings": {"node_threshold": NODE_THRESHOLD, "edge_threshold": EDGE_THRESHOLD},
    }


def create_time(rng: random.Random) -> int:
    """A creation time in milliseconds, in the second half of 2025 or so."""
    return 1_750_000_000_000 + rng.randrange(20_000_000_000)


def slugify(text: str) -> str:
    """Lower-case letters and digits joined by dashes, for slugs and file names."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "graph"
