"""Writing a stored graph back as circuit-tracer / Neuronpedia graph JSON."""

from __future__ import annotations

import json
from typing import Any

from ingest.records import INT_LAYER
from kb.stores.base import StoredGraph

_NODE_FIELD_OF_COLUMN = {
    "node_id": "node_id",
    "js_node_id": "jsNodeId",
    "feature": "feature",
    "layer": "layer",
    "ctx_idx": "ctx_idx",
    "feature_type": "feature_type",
    "clerp": "clerp",
    "influence": "influence",
    "activation": "activation",
    "token_prob": "token_prob",
    "is_target_logit": "is_target_logit",
}


def node_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored node as the file had it: promoted fields, then the rest, minus what was absent."""
    extra = row.get("extra")
    if isinstance(extra, str):
        extra = json.loads(extra)
    extra = dict(extra or {})
    absent = set(extra.pop("__absent__", ()))
    int_layer = extra.pop(INT_LAYER, False)
    out: dict[str, Any] = {}
    for column, name in _NODE_FIELD_OF_COLUMN.items():
        if name in absent:
            continue
        value = row[column]
        if column == "is_target_logit" and value is not None:
            value = bool(value)
        elif column == "layer" and int_layer:
            value = int(value)
        out[name] = value
    out.update(extra)
    return out


def graph_json(registry_row: Any, stored: StoredGraph, link_extra: dict[str, Any] | None) -> dict[str, Any]:
    """The whole graph document: metadata, qParams, nodes, links and any extra top-level fields."""
    nodes = [node_json(r) for r in stored.nodes]
    node_ids = [n["node_id"] for n in (stored.nodes)]
    fields = (link_extra or {}).get("fields", {})
    stored_links: list[dict[str, Any]] = []
    for i, (s, t, w) in enumerate(zip(stored.link_src.tolist(), stored.link_tgt.tolist(), stored.link_weight.tolist())):
        link = {"source": node_ids[s], "target": node_ids[t], "weight": w}
        more = fields.get(str(i))
        if more:
            link.update(more)
        stored_links.append(link)
    ambiguous = sorted((link_extra or {}).get("ambiguous", []), key=lambda a: a["index"])
    links = stored_links
    if ambiguous:
        links = []
        it = iter(stored_links)
        pending = list(ambiguous)
        total = len(stored_links) + len(ambiguous)
        for position in range(total):
            if pending and pending[0]["index"] == position:
                links.append(pending.pop(0)["link"])
            else:
                links.append(next(it))
    doc: dict[str, Any] = {
        "metadata": registry_row.metadata,
        "qParams": registry_row.qparams,
        "nodes": nodes,
        "links": links,
    }
    doc.update(registry_row.extra or {})
    return doc
