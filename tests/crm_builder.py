"""Graphs built the way Neuronpedia's converter for the CRM engine (OpenMOSS's llamascopium)
builds them: Lorsa attention features beside transcoder features, Lorsa and MLP errors, bias
leaves, an ``unknown`` source, integer layers, QK tracing on Lorsa nodes with contributors both in
``nodes`` and in the top-level ``qk_only_nodes``, two Neuronpedia source sets, ``qParams: {}``.

The model has 4 layers (logits on layer 4, at the last position) and a five-token prompt.
"""

from __future__ import annotations

import copy
from typing import Any

from ingest.featureid import cantor_pair

MODEL = "qwen3-1.7b"
TRANSCODER_SOURCE = "llama-scope-2-transcoder-8x-k64"
LORSA_SOURCE = "llama-scope-2-lorsa-8x-k64"
TRANSCODER_SET = f"{MODEL}/{TRANSCODER_SOURCE}"
LORSA_SET = f"{MODEL}/{LORSA_SOURCE}"
N_LAYERS = 4
TOKENS = ["<|bos|>", "The", " capital", " of", " Texas"]
TOKEN_IDS = [1, 785, 6722, 315, 8257]


def embedding(pos: int) -> dict[str, Any]:
    node_id = f"E_{TOKEN_IDS[pos]}_{pos}"
    token = TOKENS[pos]
    return {"node_id": node_id, "jsNodeId": node_id, "feature": None, "feature_type": "embedding", "layer": "E",
            "ctx_idx": pos, "clerp": f'Emb: "{token}"', "token": token, "activation": None}  # fmt: skip


def feature(layer: int, index: int, pos: int, activation: float, lorsa: bool = False) -> dict[str, Any]:
    feature_type = "lorsa" if lorsa else "cross layer transcoder"
    value = cantor_pair(layer, index)
    node_id = f"{layer}_{feature_type[:3]}_{index}_{pos}"
    return {"node_id": node_id, "jsNodeId": node_id, "feature": value, "feature_type": feature_type, "layer": layer,
            "ctx_idx": pos, "clerp": f"F{value}", "activation": activation}  # fmt: skip


def error(layer: int, pos: int, lorsa: bool) -> dict[str, Any]:
    prefix = "attn" if lorsa else "mlp"
    node_id = f"{layer}_error_{prefix}_{pos}"
    return {"node_id": node_id, "jsNodeId": node_id, "feature": None,
            "feature_type": "lorsa error" if lorsa else "mlp reconstruction error", "layer": layer, "ctx_idx": pos,
            "clerp": f'Err: {prefix} "{TOKENS[pos]}"', "activation": None}  # fmt: skip


def bias(layer: int, kind: str, pos: int) -> dict[str, Any]:
    node_id = f"{layer}_bias_{kind}_{pos}"
    return {"node_id": node_id, "jsNodeId": node_id, "feature": None, "feature_type": "bias", "layer": layer,
            "ctx_idx": pos, "clerp": f"L{layer} Bias ({kind})", "activation": None}  # fmt: skip


def unknown(layer: int, hook: str, pos: int) -> dict[str, Any]:
    node_id = f"{layer}_unknown_{hook.replace('.', '_')}_{pos}"
    return {"node_id": node_id, "jsNodeId": node_id, "feature": None, "feature_type": "unknown", "layer": layer,
            "ctx_idx": pos, "clerp": hook, "activation": None}  # fmt: skip


def logit(vocab: int, token: str, prob: float) -> dict[str, Any]:
    pos = len(TOKENS) - 1
    node_id = f"{N_LAYERS}_{vocab}_{pos}"
    return {"node_id": node_id, "jsNodeId": node_id, "feature": vocab, "feature_type": "logit", "layer": N_LAYERS,
            "ctx_idx": pos, "clerp": f'Logit "{token}" (p={prob:.3f})', "token_prob": prob, "token": token, "activation": None}  # fmt: skip


# node ids the tests name
LORSA_TOP = "3_lor_9_4"  # the Lorsa feature whose QK tracing the tests query
LORSA_LOW = "1_lor_7_3"  # a Lorsa feature at the same (layer, index) as transcoder feature 1_cro_7_3
TC_SAME = "1_cro_7_3"
TC_MID = "2_cro_50_4"
TC_PRUNED = "0_cro_33_1"  # only in qk_only_nodes
LORSA_PRUNED = "0_lor_5_2"  # only in qk_only_nodes
BIAS_Q = "3_bias_lorsa_bQ_4"  # only in qk_only_nodes
UNKNOWN = "0_unknown_blocks_0_hook_resid_mid_2"


def crm_graph(slug: str = "crm-texas", second: bool = False) -> dict[str, Any]:
    """A CRM graph of every node type; ``second`` gives a variant (another prompt's graph) that
    shares most features, QK contributors included, but has no unknown node and other weights."""
    scale = 0.5 if second else 1.0
    nodes = [
        *(embedding(p) for p in range(len(TOKENS))),
        feature(0, 12, 3, 4.0),
        feature(1, 7, 3, 2.5, lorsa=True),
        feature(1, 7, 3, 1.5),
        feature(2, 50, 4, 3.25),
        feature(3, 9, 4, 5.5, lorsa=True),
        error(1, 3, lorsa=True),
        error(2, 4, lorsa=False),
        bias(2, "mlp_bout", 4),
        logit(21_608, " Austin", 0.512),
        logit(3_444, " Dallas", 0.101),
    ]
    if not second:
        nodes.append(unknown(0, "blocks.0.hook_resid_mid", 2))
    links = [
        ("E_315_3", "0_cro_12_3", 1.5),
        ("0_cro_12_3", LORSA_LOW, 0.75),
        (LORSA_LOW, TC_SAME, 1.25),  # attention of layer 1 feeds the MLP of layer 1
        ("1_error_attn_3", TC_SAME, 0.25),
        (TC_SAME, TC_MID, 0.5),
        ("E_8257_4", TC_MID, 2.0),
        ("2_bias_mlp_bout_4", LORSA_TOP, 0.125),
        (TC_MID, LORSA_TOP, 1.75),
        ("2_error_mlp_4", LORSA_TOP, -0.375),
        (LORSA_TOP, "4_21608_4", 3.0),
        (TC_MID, "4_21608_4", 0.625),
        (LORSA_TOP, "4_3444_4", -0.5),
    ]
    if not second:
        links.append((UNKNOWN, TC_MID, 0.0625))
    doc_links = [{"source": s, "target": t, "weight": w * scale} for s, t, w in links]
    qk_only = {
        TC_PRUNED: feature(0, 33, 1, 0.875),
        LORSA_PRUNED: feature(0, 5, 2, 0.625, lorsa=True),
        BIAS_Q: bias(3, "lorsa_bQ", 4),
    }
    by_id = {n["node_id"]: n for n in nodes}
    by_id[LORSA_TOP]["qk_tracing_results"] = {
        "pair_wise_contributors": [[TC_MID, TC_SAME, 0.8 * scale], [BIAS_Q, TC_PRUNED, 0.2 * scale]],
        "top_q_marginal_contributors": [[TC_MID, 1.1 * scale], [BIAS_Q, 0.3 * scale]],
        "top_k_marginal_contributors": [[TC_SAME, 0.9 * scale], [TC_PRUNED, 0.4 * scale], [LORSA_LOW, 0.1 * scale]],
    }
    by_id[LORSA_LOW]["qk_tracing_results"] = {
        "pair_wise_contributors": [["E_315_3", LORSA_PRUNED, 0.5]],
        "top_q_marginal_contributors": [["E_315_3", 0.6]],
        "top_k_marginal_contributors": [[LORSA_PRUNED, 0.45]],
    }
    for i, node in enumerate(nodes):
        node["influence"] = round(0.05 + 0.07 * i, 4)  # the converter's cumulative influence: every node has one
    return {
        "metadata": {
            "slug": slug,
            "scan": MODEL,
            "prompt": "".join(TOKENS),
            "prompt_tokens": list(TOKENS),
            "schema_version": 1,
            "node_threshold": 0.8,
            "info": {"generator": {"name": "llamascopium (CRM) by OpenMOSS", "version": "2.1.0", "url": "https://github.com/OpenMOSS/Language-Model-SAEs"}},
            "pruning_settings": {"node_threshold": 0.8, "edge_threshold": 0.98},
            "feature_details": {"neuronpedia_source_set": TRANSCODER_SOURCE, "neuronpedia_lorsa_source_set": LORSA_SOURCE},
            "generation_settings": {"max_n_logits": 10, "desired_logit_prob": 0.95, "batch_size": 32, "max_feature_nodes": 8192},
        },
        "qParams": {},
        "nodes": nodes,
        "links": doc_links,
        "qk_only_nodes": copy.deepcopy(qk_only),
    }
