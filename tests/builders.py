"""Small graph documents built in code, for tests that need a precise shape."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any, Sequence

from ingest.featureid import cantor_pair


def feature_node(layer: int, index: int, pos: int, activation: float = 1.0, influence: float = 0.5, clerp: str = "") -> dict[str, Any]:
    return {
        "node_id": f"{layer}_{index}_{pos}",
        "feature": cantor_pair(layer, index),
        "layer": str(layer),
        "ctx_idx": pos,
        "feature_type": "cross layer transcoder",
        "jsNodeId": f"{layer}_{index}-{pos}",
        "clerp": clerp,
        "influence": influence,
        "activation": activation,
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
    }


def error_node(layer: int, pos: int) -> dict[str, Any]:
    return {
        "node_id": f"0_{layer}_{pos}",
        "feature": -1,
        "layer": str(layer),
        "ctx_idx": pos,
        "feature_type": "mlp reconstruction error",
        "jsNodeId": f"{layer}_{pos}-0",
        "clerp": "",
        "influence": 0.4,
        "activation": None,
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
    }


def embedding_node(token_id: int, pos: int) -> dict[str, Any]:
    return {
        "node_id": f"E_{token_id}_{pos}",
        "feature": pos,
        "layer": "E",
        "ctx_idx": pos,
        "feature_type": "embedding",
        "jsNodeId": f"E_{token_id}-{pos}",
        "clerp": "",
        "influence": 0.2,
        "activation": None,
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
    }


def logit_node(vocab_id: int, pos: int, prob: float, target: bool) -> dict[str, Any]:
    return {
        "node_id": f"27_{vocab_id}_{pos}",
        "feature": vocab_id,
        "layer": "27",
        "ctx_idx": pos,
        "feature_type": "logit",
        "jsNodeId": f"L_{vocab_id}-{pos}",
        "clerp": f'Output "t{vocab_id}" (p={prob:.3f})',
        "influence": None,
        "activation": None,
        "token_prob": prob,
        "is_target_logit": target,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
    }


def small_graph(slug: str = "tiny", prompt: str = "<bos>The opposite of \"small\" is \"") -> dict[str, Any]:
    """Three tokens, four features, one error node, one logit; every kind of node and link."""
    nodes = [
        embedding_node(2, 0),
        embedding_node(651, 1),
        embedding_node(13388, 2),
        feature_node(1, 100, 1, 2.0, 0.3, "opposite"),
        feature_node(5, 200, 2, 1.5, 0.4),
        feature_node(12, 300, 2, 3.0, 0.2, "say large"),
        feature_node(20, 400, 2, 0.7, 0.6),
        error_node(3, 2),
        logit_node(2910, 2, 0.42, True),
    ]
    links = [
        {"source": "E_651_1", "target": "1_100_1", "weight": 1.25},
        {"source": "E_13388_2", "target": "5_200_2", "weight": 0.5},
        {"source": "1_100_1", "target": "12_300_2", "weight": 2.0},
        {"source": "5_200_2", "target": "12_300_2", "weight": -0.75},
        {"source": "0_3_2", "target": "12_300_2", "weight": 0.1},
        {"source": "12_300_2", "target": "20_400_2", "weight": 1.5},
        {"source": "20_400_2", "target": "27_2910_2", "weight": 3.5},
        {"source": "12_300_2", "target": "27_2910_2", "weight": 0.9},
    ]
    return {
        "metadata": {
            "slug": slug,
            "scan": "gemma-2-2b",
            "prompt_tokens": ["<bos>", "The", " opposite"],
            "prompt": prompt,
            "node_threshold": 0.8,
            "schema_version": 1,
            "info": {"transcoder_set": "mntss/clt-gemma-2-2b-2.5M", "creator_name": "tests"},
        },
        "qParams": {"pinnedIds": ["12_300_2"], "supernodes": [["say large", "12_300_2", "20_400_2"]], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": nodes,
        "links": links,
    }


def graph_of(slug: str, n_pos: int, nodes: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, Any]:
    """A graph document of ``nodes`` and ``links`` over a prompt of ``n_pos`` tokens (``<bos>``,
    then `` w1``, `` w2``, ...), without pinned nodes or supernodes."""
    doc = small_graph(slug)
    doc["metadata"]["prompt_tokens"] = ["<bos>"] + [f" w{p}" for p in range(1, n_pos)]
    doc["metadata"]["prompt"] = "".join(doc["metadata"]["prompt_tokens"])
    doc["qParams"] = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    doc["nodes"], doc["links"] = nodes, links
    return doc


def variant(doc: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["metadata"].update(metadata)
    return out


def write(path: Path, doc: Any, compress: bool = False) -> Path:
    text = json.dumps(doc, ensure_ascii=False)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def prompt_graph(
    slug: str,
    prompt: str,
    features: Sequence[tuple[int, int]],
    outputs: Sequence[tuple[int, float]] = ((2910, 0.5),),
    transcoder_set: str = "mntss/clt-gemma-2-2b-2.5M",
) -> dict[str, Any]:
    """A graph of ``prompt`` whose features (layer, index) sit on the last token and each drive
    the output logits (vocabulary id, probability; the first is the target)."""
    nodes = [embedding_node(2, 0), embedding_node(651, 1)]
    nodes += [feature_node(layer, index, 1) for layer, index in features]
    nodes += [logit_node(vocab, 1, prob, i == 0) for i, (vocab, prob) in enumerate(outputs)]
    links = [{"source": "E_651_1", "target": f"{layer}_{index}_1", "weight": 1.0} for layer, index in features]
    links += [{"source": f"{layer}_{index}_1", "target": f"27_{vocab}_1", "weight": 0.5} for layer, index in features for vocab, _ in outputs]
    return {
        "metadata": {
            "slug": slug,
            "scan": "gemma-2-2b",
            "prompt_tokens": ["<bos>", "x"],
            "prompt": prompt,
            "node_threshold": 0.8,
            "schema_version": 1,
            "info": {"transcoder_set": transcoder_set, "creator_name": "tests"},
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": nodes,
        "links": links,
    }
