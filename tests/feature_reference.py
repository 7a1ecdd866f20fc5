"""Brute-force answers to the feature analyses, computed in plain Python from raw graph JSON.

Nothing here goes through circuitkb's reader or stores: the tests compare the stores' answers
with these. Features are named by (layer, index); the graphs under test use one transcoder set.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

FEATURE_TYPES = ("cross layer transcoder", "transcoder")


def cantor_layer_index(z: int) -> tuple[int, int]:
    w = (math.isqrt(8 * z + 1) - 1) // 2
    index = z - w * (w + 1) // 2
    return w - index, index


@dataclass
class Raw:
    """One graph file as read by json: its slug, node dicts and links between node positions."""

    slug: str
    nodes: list[dict[str, Any]]
    links: list[tuple[int, int, float]]

    def key(self, i: int) -> tuple[int, int] | None:
        node = self.nodes[i]
        if node["feature_type"] not in FEATURE_TYPES:
            return None
        layer, index = cantor_layer_index(node["feature"])
        assert layer == int(node["layer"]), "schema-1 graphs only"
        return layer, index


def load(path: Path | str) -> Raw:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return from_doc(doc)


def node_links(doc: dict[str, Any]) -> list[tuple[int, int, float]]:
    """The links as (source node index, target node index, weight), in file order."""
    where: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(doc["nodes"]):
        where[node["node_id"]].append(i)
    links = []
    for link in doc["links"]:
        sources, targets = where[link["source"]], where[link["target"]]
        assert len(sources) == 1 and len(targets) == 1, "the reference needs unique node_ids"
        links.append((sources[0], targets[0], float(link["weight"])))
    return links


def from_doc(doc: dict[str, Any]) -> Raw:
    return Raw(doc["metadata"]["slug"], doc["nodes"], node_links(doc))


def presence(graphs: Iterable[Raw]) -> dict[tuple[int, int], dict[str, tuple[float | None, float | None, tuple[int, ...]]]]:
    """feature -> slug -> (strongest activation, smallest influence, sorted positions)."""
    out: dict[tuple[int, int], dict[str, Any]] = defaultdict(dict)
    for g in graphs:
        acc: dict[tuple[int, int], list[Any]] = {}
        for i, node in enumerate(g.nodes):
            key = g.key(i)
            if key is None:
                continue
            slot = acc.setdefault(key, [None, None, set()])
            if node.get("activation") is not None:
                slot[0] = node["activation"] if slot[0] is None else max(slot[0], node["activation"])
            if node.get("influence") is not None:
                slot[1] = node["influence"] if slot[1] is None else min(slot[1], node["influence"])
            slot[2].add(node["ctx_idx"])
        for key, (act, infl, positions) in acc.items():
            out[key][g.slug] = (act, infl, tuple(sorted(positions)))
    return dict(out)


def shared(graphs: list[Raw], k: int) -> dict[tuple[int, int], dict[str, Any]]:
    return {key: per_graph for key, per_graph in presence(graphs).items() if len(per_graph) >= k}


def layer_sets(g: Raw) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for i in range(len(g.nodes)):
        key = g.key(i)
        if key is not None:
            out[key[0]].add(key[1])
    return out


def iou(a: Raw, b: Raw, layer: int) -> float:
    sa, sb = layer_sets(a).get(layer, set()), layer_sets(b).get(layer, set())
    union = sa | sb
    return len(sa & sb) / len(union) if union else math.nan


def neighbours(g: Raw, key: tuple[int, int], upstream: bool) -> dict[Any, tuple[float, int, int]]:
    """neighbour -> (summed weight, number of links, lowest linked node position).

    A feature neighbour is its (layer, index); any other node is ("node", position).
    """
    mine = {i for i in range(len(g.nodes)) if g.key(i) == key}
    out: dict[Any, list[Any]] = {}
    for src, tgt, weight in g.links:
        near, far = (tgt, src) if upstream else (src, tgt)
        if near not in mine:
            continue
        other = g.key(far) or ("node", far)
        slot = out.setdefault(other, [0.0, 0, far])
        slot[0] += weight
        slot[1] += 1
        slot[2] = min(slot[2], far)
    return {k: (w, n, idx) for k, (w, n, idx) in out.items()}


def summary(graphs: Iterable[Raw], key: tuple[int, int], upstream: bool) -> dict[tuple[int, int], tuple[int, float]]:
    """neighbour feature -> (graphs in which it is linked, mean per-graph summed weight)."""
    sums: dict[tuple[int, int], list[float]] = defaultdict(list)
    for g in graphs:
        if not any(g.key(i) == key for i in range(len(g.nodes))):
            continue
        for other, (weight, _, _) in neighbours(g, key, upstream).items():
            if other[0] != "node":
                sums[other].append(weight)
    return {other: (len(ws), sum(ws) / len(ws)) for other, ws in sums.items()}
