"""Brute-force answers to the circuit analyses, computed in plain Python from raw graph JSON.

Nothing here goes through circuitkb's reader, stores or analysis code: the tests compare those
with these. Features are named by (layer, index) (schema 0: layer * 100000 + index; schema 1:
Cantor pairing); the graphs under test share one transcoder set. Paths are enumerated, not
searched; scores use a dense matrix inverse instead of repeated products.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from tests.feature_reference import node_links

FEATURE_TYPES = ("cross layer transcoder", "transcoder")
Key = tuple[int, int]


def feature_key(node: dict[str, Any], schema: int) -> Key | None:
    if node["feature_type"] not in FEATURE_TYPES:
        return None
    layer = int(node["layer"])
    if schema == 0:
        return layer, int(node["feature"]) - layer * 100_000
    w = (math.isqrt(8 * int(node["feature"]) + 1) - 1) // 2
    index = int(node["feature"]) - w * (w + 1) // 2
    assert w - index == layer
    return layer, index


@dataclass
class Doc:
    """A graph file: nodes (dicts), links between node positions, prompt tokens, saved view."""

    slug: str
    nodes: list[dict[str, Any]]
    links: list[tuple[int, int, float]]
    tokens: list[str]
    qparams: dict[str, Any]
    keys: list[Key | None]

    def kind(self, i: int) -> str:
        return {"embedding": "embedding", "logit": "logit", "mlp reconstruction error": "error"}.get(self.nodes[i]["feature_type"], "feature")

    def targets(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.get("is_target_logit")]

    def input_total(self) -> dict[int, float]:
        total: dict[int, float] = defaultdict(float)
        for _, t, w in self.links:
            total[t] += abs(w)
        return total

    def share(self, link: tuple[int, int, float], totals: dict[int, float]) -> float:
        return abs(link[2]) / totals[link[1]] if totals[link[1]] else 0.0


def from_doc(doc: dict[str, Any]) -> Doc:
    nodes = doc["nodes"]
    links = node_links(doc)
    schema = int(doc["metadata"].get("schema_version") or 0)
    return Doc(
        doc["metadata"]["slug"],
        nodes,
        links,
        list(doc["metadata"]["prompt_tokens"]),
        doc.get("qParams") or {},
        [feature_key(n, schema) for n in nodes],
    )


def load(path: Path | str) -> Doc:
    return from_doc(json.loads(Path(path).read_text(encoding="utf-8")))


# --- feature edges --------------------------------------------------------------------------------


def feature_edges(doc: Doc) -> dict[tuple[Key, Key], float]:
    out: dict[tuple[Key, Key], float] = defaultdict(float)
    for s, t, w in doc.links:
        a, b = doc.keys[s], doc.keys[t]
        if a is not None and b is not None:
            out[(a, b)] += w
    return dict(out)


def recurring(docs: Iterable[Doc], min_graphs: int) -> dict[tuple[Key, Key], tuple[int, float, float, float]]:
    """(n_graphs, mean, min, max) of each feature edge present in at least min_graphs docs."""
    seen: dict[tuple[Key, Key], list[float]] = defaultdict(list)
    for doc in docs:
        for edge, w in feature_edges(doc).items():
            seen[edge].append(w)
    return {e: (len(ws), sum(ws) / len(ws), min(ws), max(ws)) for e, ws in seen.items() if len(ws) >= min_graphs}


# --- paths ------------------------------------------------------------------------------------------


def positions_of(doc: Doc, token: str) -> list[int]:
    return [i for i, t in enumerate(doc.tokens) if t.strip().lower() == token.strip().lower()]


def all_paths(doc: Doc, sources: Iterable[int], targets: Iterable[int], max_hops: int) -> list[tuple[float, tuple[int, ...]]]:
    """Every path (as node positions) from a source to a target, with its product of shares."""
    totals = doc.input_total()
    out_links: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    for link in doc.links:
        out_links[link[0]].append(link)
    wanted = set(targets)
    found: list[tuple[float, tuple[int, ...]]] = []

    def walk(path: tuple[int, ...], score: float) -> None:
        if len(path) > 1 and path[-1] in wanted:
            found.append((score, path))
            return
        if len(path) - 1 >= max_hops:
            return
        for link in out_links[path[-1]]:
            if link[1] not in path:
                walk(path + (link[1],), score * doc.share(link, totals))

    for s in set(sources):
        walk((s,), 1.0)
    return sorted((f for f in found if f[0] > 0), key=lambda f: (-f[0], f[1]))


def strongest(doc: Doc, positions: Sequence[int], top: int, max_hops: int) -> list[tuple[float, tuple[str, ...]]]:
    sources = [i for i, n in enumerate(doc.nodes) if n["ctx_idx"] in positions and doc.kind(i) == "feature"]
    return [(s, tuple(doc.nodes[i]["node_id"] for i in p)) for s, p in all_paths(doc, sources, doc.targets(), max_hops)[:top]]


_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 2}


def two_hops(doc: Doc, positions: Sequence[int], names: dict[Key, set[str]], via: str | None = None) -> list[dict[str, Any]]:
    """Paths token -> intermediate feature -> target logit whose intermediate is not named by a
    token at its positions; ``names``: every clerp/label of each feature across the corpus."""
    totals = doc.input_total()
    by_pair: dict[tuple[int, int], float] = defaultdict(float)
    has_pair: set[tuple[int, int]] = set()
    for s, t, w in doc.links:
        by_pair[(s, t)] += w
        has_pair.add((s, t))
    feature_positions: dict[Key, set[int]] = defaultdict(set)
    for i, key in enumerate(doc.keys):
        if key is not None:
            feature_positions[key].add(doc.nodes[i]["ctx_idx"])
    targets = set(doc.targets())
    out = []
    for l0 in doc.links:
        s, m, _ = l0
        if doc.nodes[s]["ctx_idx"] not in positions or doc.kind(s) not in ("feature", "embedding") or doc.kind(m) != "feature":
            continue
        for l1 in doc.links:
            if l1[0] != m or l1[1] not in targets:
                continue
            known = set(names.get(doc.keys[m], set()))
            if doc.nodes[m].get("clerp"):
                known.add(doc.nodes[m]["clerp"])
            if not known:
                continue
            name_words = set().union(*(words(n) for n in known))
            if via and not words(via) <= name_words:
                continue
            tokens = [doc.tokens[p] for p in feature_positions[doc.keys[m]]]
            if any(words(t) & name_words for t in tokens):
                continue
            t = l1[1]
            out.append(
                {
                    "nodes": (doc.nodes[s]["node_id"], doc.nodes[m]["node_id"], doc.nodes[t]["node_id"]),
                    "score": doc.share(l0, totals) * doc.share(l1, totals),
                    "shortcut": by_pair[(s, t)] if (s, t) in has_pair else None,
                }
            )
    return out


def pattern(doc: Doc, steps: Sequence[set[Key] | None]) -> list[dict[str, Any]]:
    """Paths through feature nodes of each step's features (None: any feature), then a target logit."""
    totals = doc.input_total()
    out_links: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    for link in doc.links:
        out_links[link[0]].append(link)
    targets = set(doc.targets())

    def ok(i: int, step: set[Key] | None) -> bool:
        return doc.kind(i) == "feature" and (step is None or doc.keys[i] in step)

    found = []

    def extend(path: list[int], links: list[tuple[int, int, float]]) -> None:
        if len(path) == len(steps):
            for link in out_links[path[-1]]:
                if link[1] in targets:
                    score = math.prod(doc.share(x, totals) for x in links + [link])
                    found.append({"nodes": tuple(doc.nodes[i]["node_id"] for i in path + [link[1]]), "score": score})
            return
        for link in out_links[path[-1]]:
            if ok(link[1], steps[len(path)]):
                extend(path + [link[1]], links + [link])

    for i in range(len(doc.nodes)):
        if ok(i, steps[0]):
            extend([i], [])
    return found


# --- comparison ---------------------------------------------------------------------------------


def compare_summary(a: Doc, b: Doc) -> dict[str, Any]:
    from scipy.stats import spearmanr

    def features(doc: Doc) -> dict[Key, float | None]:
        """Each feature's smallest influence over its nodes (None if none has one)."""
        best: dict[Key, float | None] = {}
        for i, key in enumerate(doc.keys):
            if key is None:
                continue
            infl = doc.nodes[i].get("influence")
            if key not in best:
                best[key] = infl
            elif infl is not None and (best[key] is None or infl < best[key]):
                best[key] = infl
        return best

    fa, fb = features(a), features(b)
    ea, eb = feature_edges(a), feature_edges(b)
    shared = sorted(set(fa) & set(fb))
    pairs = [(fa[k], fb[k]) for k in shared if fa[k] is not None and fb[k] is not None]
    rho = float(spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic) if len(pairs) >= 3 else None
    ta, tb = sum(abs(w) for w in ea.values()), sum(abs(w) for w in eb.values())
    low = high = 0.0
    for e in set(ea) | set(eb):
        x, y = abs(ea.get(e, 0.0)) / ta, abs(eb.get(e, 0.0)) / tb
        same = e in ea and e in eb and (ea[e] >= 0) == (eb[e] >= 0)
        low += min(x, y) if same else 0.0
        high += max(x, y)
    return {
        "features_shared": len(set(fa) & set(fb)),
        "features_union": len(set(fa) | set(fb)),
        "features_jaccard": len(set(fa) & set(fb)) / len(set(fa) | set(fb)),
        "feature_edges_jaccard": len(set(ea) & set(eb)) / len(set(ea) | set(eb)),
        "weighted_overlap": low / high,
        "influence_spearman": rho,
    }


def jaccard(a: set[Any], b: set[Any]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


# --- scores ----------------------------------------------------------------------------------------


def scores(doc: Doc, keep: set[str] | None = None) -> tuple[float, float]:
    """Replacement and completeness; ``keep``: node_ids of the feature nodes a subgraph keeps.

    Unkept features become part of the error node of their layer and position: their outgoing
    links leave from it, their incoming links are dropped.
    """
    owner: list[Any] = []
    for i, n in enumerate(doc.nodes):
        kind = doc.kind(i)
        if kind == "error" or (kind == "feature" and keep is not None and n["node_id"] not in keep):
            owner.append(("error", int(n["layer"]), n["ctx_idx"]))
        else:
            owner.append(("node", i))
    ids = sorted(set(owner), key=str)
    row = {o: r for r, o in enumerate(ids)}
    n = len(ids)
    a = np.zeros((n, n))
    for s, t, w in doc.links:
        if owner[t][0] == "error":
            continue
        a[row[owner[t]], row[owner[s]]] += w
    a = np.abs(a)
    sums = a.sum(axis=1)
    a = np.divide(a, sums[:, None], out=np.zeros_like(a), where=sums[:, None] > 0)
    logit = np.zeros(n)
    for i, node in enumerate(doc.nodes):
        if doc.kind(i) == "logit":
            logit[row[owner[i]]] = node.get("token_prob") or 0.0
    influence = logit @ (np.linalg.inv(np.eye(n) - a) - np.eye(n))
    is_error = np.array([o[0] == "error" for o in ids])
    is_token = np.array([o[0] == "node" and doc.kind(o[1]) == "embedding" for o in ids])
    replacement = influence[is_token].sum() / (influence[is_token].sum() + influence[is_error].sum())
    weight = influence + logit
    completeness = ((1.0 - a[:, is_error].sum(axis=1)) * weight).sum() / weight.sum()
    return float(replacement), float(completeness)


# --- pieces ------------------------------------------------------------------------------------------


def top_nodes(doc: Doc, n: int, include_logits: bool = True) -> tuple[set[str], set[tuple[str, str, float]]]:
    ranked = sorted((node["influence"], i) for i, node in enumerate(doc.nodes) if node.get("influence") is not None)
    chosen = {i for _, i in ranked[:n]}
    if include_logits:
        chosen |= {i for i in range(len(doc.nodes)) if doc.kind(i) == "logit"}
    return _piece(doc, chosen, 0.0)


def neighbourhood(doc: Doc, node_id: str, hops: int, min_abs: float, direction: str, max_nodes: int) -> tuple[set[str], set[tuple[str, str, float]]]:
    start = next(i for i, n in enumerate(doc.nodes) if n["node_id"] == node_id)
    reached, frontier = {start}, {start}
    for _ in range(hops):
        if not frontier or len(reached) >= max_nodes:
            break
        best: dict[int, float] = {}
        for s, t, w in doc.links:
            if abs(w) < min_abs:
                continue
            for near, far, ok in ((s, t, direction in ("down", "both")), (t, s, direction in ("up", "both"))):
                if ok and near in frontier and far not in reached:
                    best[far] = max(best.get(far, 0.0), abs(w))
        chosen = sorted(best, key=lambda i: (-best[i], i))[: max_nodes - len(reached)]
        reached |= set(chosen)
        frontier = set(chosen)
    return _piece(doc, reached, min_abs)


def _piece(doc: Doc, chosen: set[int], min_abs: float) -> tuple[set[str], set[tuple[str, str, float]]]:
    ids = {doc.nodes[i]["node_id"] for i in chosen}
    links = {(doc.nodes[s]["node_id"], doc.nodes[t]["node_id"], w) for s, t, w in doc.links if s in chosen and t in chosen and abs(w) >= min_abs}
    return ids, links
