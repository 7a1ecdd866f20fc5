"""Seeded generator of a realistic synthetic corpus of attribution-graph files.

The files imitate circuit-tracer / Neuronpedia graphs of gemma-2-2b traced with the 2.5M-feature
cross-layer transcoder (``schema_version`` 1): same top-level keys, node and link fields, id
formats, node and link order, bf16-rounded weights and activations, float32 influences. They say
that they are synthetic: the slug starts with ``synth-``, ``info.creator_name`` is
``circuitkb synthetic``, ``info.generator.name`` is ``circuitkb-synth`` and ``info.description``
says the features and weights are simulated.

What the corpus plants, for demos, tests and benchmarks:

- a shared vocabulary of features: named *concepts* ("known entity", "say a capital", "opposite",
  an addition lookup "_6+_9") whose (layer, index) features recur in every prompt that involves
  them, token features bound to a token's text, and a Zipf-distributed background per layer whose
  head recurs in almost every graph;
- *families*: one meaning rendered in several languages (``multilingual``), or English prompts
  with one word changed (``variant``). The members of a family share a planted core of features
  per layer whose size follows a per-layer profile (:data:`MULTILINGUAL_PROFILE`,
  :data:`VARIANT_PROFILE`): the fraction of a member's features at that layer taken from the core;
- two-hop prompts (Dallas -> Texas -> Austin) with the path entity -> intermediate concept (not in
  the prompt) -> answer logit, plus the direct shortcut edge entity -> answer logit.

Counts and distributions are calibrated on the eight schema-1 (2.5M CLT) real graphs of
``shared/data/graphs`` (see :data:`REAL_STATS` and :func:`calibrate`). Everything is a function of
the seed: the same seed gives byte-identical files, whatever the number of worker processes.

Entry points: :func:`generate_corpus` (files + ``manifest.csv`` + ground truth),
:func:`generate_graph` (one graph as a dict), :func:`write_large_graph` (one huge graph, streamed)
and :func:`calibrate` (the statistics of any set of graph files). Pure standard library.
"""

from __future__ import annotations

import bisect
import csv
import gzip as gzip_module
import heapq
import io
import json
import math
import random
import re
import struct
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TextIO

__all__ = [
    "CorpusInfo", "FamilyInfo", "TwoHopInfo", "PromptSpec",
    "generate_corpus", "generate_graph", "write_large_graph", "sample_prompt",
    "calibrate", "REAL_STATS", "UNRELATED_JACCARD_REAL",
    "MULTILINGUAL_PROFILE", "VARIANT_PROFILE", "bump_profile", "expected_iou",
    "tokenize", "token_id", "cantor_pair", "cantor_unpair", "concept_label", "SUPPORTED_LANGUAGES",
]

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
VOCAB_SIZE = 256_000
BOS = "<bos>"
# Feature indices start above the layer count so that no feature id `0_{i}_{pos}` can collide
# with an error id `0_{layer}_{pos}` (real files can hold such collisions; ours must not).
MIN_FEATURE_INDEX = N_LAYERS
NODE_THRESHOLD = 0.8
EDGE_THRESHOLD = 0.85
SUPPORTED_LANGUAGES = ("en", "fr", "zh", "de", "es", "ja")

FEATURE = "cross layer transcoder"
ERROR = "mlp reconstruction error"
EMBEDDING = "embedding"
LOGIT = "logit"
_KIND_LETTER = {FEATURE: "F", ERROR: "R", EMBEDDING: "E", LOGIT: "L"}
_KIND_NAME = {"F": "feature", "R": "error", "E": "embedding", "L": "logit"}

QUANTILE_POINTS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
LINK_KINDS = ("EF", "FF", "RF", "EL", "FL", "RL")

# Measured by `calibrate()` on the eight schema-1 graphs of gemma-2-2b with the 2.5M CLT
# (shared/data/graphs/0[2-8]*_schema1.json and 10_*_schema1.json), with
#   python -c "import glob,json; from ingest.synth import calibrate;
#              print(json.dumps(calibrate(sorted(glob.glob('../shared/data/graphs/*_schema1.json')))))"
# and rounded to 4 significant digits. Quantiles are at QUANTILE_POINTS.
REAL_STATS: dict[str, Any] = {'n_graphs': 8,
 'prompt_tokens': 9.375,
 'nodes': {'F': 288.1, 'R': 91.38, 'E': 9.375, 'L': 9.75},
 'features_per_token': {'mean': 30.72, 'sd': 3.674},
 'links': 4195.0,
 'links_per_node': 10.52,
 'link_kinds': {'EF': 0.2414,
                'FF': 0.3103,
                'RF': 0.1061,
                'EL': 0.01672,
                'FL': 0.236,
                'RL': 0.08948},
 'positive_fraction': {'EF': 0.5635,
                       'FF': 0.7045,
                       'RF': 0.6244,
                       'EL': 0.6488,
                       'FL': 0.6421,
                       'RL': 0.5628,
                       'all': 0.6336},
 'same_position_fraction': {'EF': 0.2293,
                            'FF': 0.7201,
                            'RF': 0.5997,
                            'EL': 0.1266,
                            'FL': 0.5,
                            'RL': 0.4029},
 'abs_weight_quantiles': {'EF': [0.008118, 0.04346, 0.09375, 0.1396, 0.3047, 0.707, 1.766, 3.594,
                                 5.156, 11.06, 27.38],
                          'FF': [0.01709, 0.04492, 0.06592, 0.08496, 0.1396, 0.2832, 0.5859, 1.07,
                                 1.602, 7.594, 19.88],
                          'RF': [0.02002, 0.04468, 0.06641, 0.08398, 0.127, 0.2246, 0.3965, 0.6602,
                                 0.8945, 1.711, 6.219],
                          'EL': [0.005951, 0.03296, 0.09521, 0.1328, 0.25, 0.4922, 1.023, 2.578,
                                 5.344, 10.12, 18.5],
                          'FL': [0.002319, 0.008789, 0.02197, 0.03589, 0.06543, 0.1299, 0.2754,
                                 0.6211, 0.9922, 1.836, 5.812],
                          'RL': [0.003189, 0.01306, 0.03247, 0.04688, 0.08252, 0.1475, 0.291,
                                 0.5781, 0.8398, 1.609, 3.094],
                          'all': [0.002319, 0.01746, 0.04492, 0.06494, 0.1191, 0.2617, 0.6289,
                                  1.484, 2.594, 7.25, 27.38]},
 'activation_quantiles': [0.1934, 0.4453, 0.7578, 1.0, 1.461, 2.484, 4.594, 9.562, 11.44, 15.88,
                          49.0],
 'influence_quantiles': {'embedding': [0.05354, 0.05354, 0.06151, 0.09406, 0.1505, 0.2308, 0.2852,
                                       0.3105, 0.3217, 0.3377, 0.3377],
                         'error': [0.2835, 0.3476, 0.4309, 0.4955, 0.5839, 0.675, 0.739, 0.7773,
                                   0.7896, 0.7974, 0.8004],
                         'feature': [0.3047, 0.354, 0.424, 0.4825, 0.5908, 0.695, 0.7572, 0.7842,
                                     0.7924, 0.7989, 0.8005]},
 'in_degree_quantiles': {'feature': [1.0, 1.0, 1.0, 2.0, 3.0, 5.0, 9.0, 20.0, 36.0, 73.0, 269.0],
                         'logit': [2.0, 2.0, 15.0, 24.0, 58.0, 123.0, 236.0, 288.0, 391.0, 574.0,
                                   574.0]},
 'feature_layer_fraction': [0.3848, 0.1492, 0.03341, 0.04035, 0.04338, 0.02907, 0.02646, 0.03644,
                            0.01952, 0.0269, 0.01128, 0.006941, 0.009978, 0.004772, 0.009111,
                            0.01215, 0.02299, 0.01779, 0.02473, 0.01909, 0.01735, 0.009544, 0.01649,
                            0.01258, 0.01258, 0.003037],
 'feature_last_position_fraction': [0.1026, 0.1483, 0.2468, 0.3333, 0.34, 0.1642, 0.377, 0.5238,
                                    0.4, 0.4839, 0.5385, 0.75, 0.913, 0.8182, 0.8571, 0.6786,
                                    0.7736, 0.8049, 0.807, 0.8864, 0.925, 0.8636, 0.9737, 1.0, 1.0,
                                    1.0],
 'error_rate_last': [1.0, 0.875, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
                     1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
 'error_rate_other': [0.8136, 0.7119, 0.7288, 0.6271, 0.7288, 0.6441, 0.661, 0.4915, 0.4407, 0.3898,
                      0.3559, 0.3729, 0.339, 0.2203, 0.2203, 0.2203, 0.1695, 0.1525, 0.1186, 0.1186,
                      0.1017, 0.1017, 0.0339, 0.1017, 0.01695, 0.0],
 'feature_multi_position_fraction': 0.09881,
 'target_logit_prob_quantiles': [0.2773, 0.2773, 0.2773, 0.2773, 0.3574, 0.4395, 0.8281, 0.8281,
                                 0.8281, 0.8281, 0.8281],
 'logit_prob_mass': 0.8307}

# Mean Jaccard similarity of the (layer, index) feature sets of the 22 pairs of real schema-1
# graphs that ask unrelated questions (every pair of 02-10 but 02/03, 02/04, 03/04, 05/06, 05/07
# and 06/07). The background vocabulary is tuned to reproduce it.
UNRELATED_JACCARD_REAL = 0.062

# --------------------------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------------------------

def cantor_pair(layer: int, index: int) -> int:
    """Schema-1 feature id of (layer, index): the Cantor pairing (l+i)(l+i+1)/2 + i."""
    s = layer + index
    return s * (s + 1) // 2 + index


def cantor_unpair(value: int) -> tuple[int, int]:
    """Inverse of :func:`cantor_pair`: (layer, index)."""
    w = (math.isqrt(8 * value + 1) - 1) // 2
    index = value - w * (w + 1) // 2
    return w - index, index


def _bf16(x: float) -> float:
    """Round to bfloat16 (8 significant bits), as the weights of Neuronpedia-made graphs are."""
    if x == 0.0 or not math.isfinite(x):
        return x
    m, e = math.frexp(x)
    return math.ldexp(round(m * 256.0) / 256.0, e)


_F32 = struct.Struct("<f")


def _f32(x: float) -> float:
    return _F32.unpack(_F32.pack(x))[0]


def _quantiles(values: Sequence[float], points: Sequence[float] = QUANTILE_POINTS) -> list[float]:
    xs = sorted(values)
    if not xs:
        return [0.0] * len(points)
    n = len(xs)
    return [xs[min(n - 1, int(p * n))] for p in points]


class _InverseCdf:
    """Sample a distribution given by its quantiles, interpolating in log space when positive."""

    def __init__(self, quantiles: Sequence[float], log: bool = True) -> None:
        self.points = list(QUANTILE_POINTS)
        self.log = log and min(quantiles) > 0
        vals = [math.log(q) for q in quantiles] if self.log else list(quantiles)
        for i in range(1, len(vals)):  # make monotone
            vals[i] = max(vals[i], vals[i - 1])
        self.vals = vals

    def __call__(self, u: float) -> float:
        i = min(max(bisect.bisect_right(self.points, u), 1), len(self.points) - 1)
        p0, p1 = self.points[i - 1], self.points[i]
        v0, v1 = self.vals[i - 1], self.vals[i]
        v = v0 + (v1 - v0) * ((u - p0) / (p1 - p0) if p1 > p0 else 0.0)
        return math.exp(v) if self.log else v


def _seeded(*parts: object) -> random.Random:
    """An independent generator for a named purpose (str seeds go through SHA-512: stable)."""
    return random.Random("|".join(str(p) for p in parts))


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------

def _read_graph(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    opener = gzip_module.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _round_sig(x: Any, digits: int = 4) -> Any:
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: _round_sig(v, digits) for k, v in x.items()}
    if isinstance(x, list):
        return [_round_sig(v, digits) for v in x]
    return x


def calibrate(paths: Iterable[Path | str]) -> dict[str, Any]:
    """Measure the statistics the generator imitates from real (or synthetic) graph files.

    Returns per-graph means of node counts per kind and of link counts, the fraction of links per
    (source kind, target kind) pair (letters F feature, R error, E embedding, L logit), the
    fraction of positive weights and the quantiles of |weight| per pair, quantiles of
    activations, influences and in-degrees, the fraction of features per layer, the probability
    that a feature of a layer sits on the last token, the rate of error nodes per (layer,
    position), and the fraction of same-position links. Values are rounded to 4 digits.
    """
    tally = _Tally()
    for path in paths:
        tally.add(_read_graph(path))
    if tally.n_graphs == 0:
        raise ValueError("calibrate() needs at least one graph file")
    return _round_sig(tally.result())


class _Tally:
    """Running sums behind :func:`calibrate`."""

    def __init__(self) -> None:
        self.n_graphs = self.n_links = self.n_nodes = self.n_tokens = self.other_slots = 0
        self.nodes_by_kind: Counter[str] = Counter()
        self.feats_per_token: list[float] = []
        self.pair_count: Counter[str] = Counter()
        self.pair_positive: Counter[str] = Counter()
        self.pair_same: Counter[str] = Counter()
        self.abs_weights: dict[str, list[float]] = defaultdict(list)
        self.activations: list[float] = []
        self.influence: dict[str, list[float]] = defaultdict(list)
        self.in_degree: dict[str, list[int]] = defaultdict(list)
        self.layer_count = [0] * N_LAYERS
        self.layer_last = [0] * N_LAYERS
        self.err_last = [0] * N_LAYERS
        self.err_other = [0] * N_LAYERS
        self.target_probs: list[float] = []
        self.logit_mass: list[float] = []
        self.multi_position = self.distinct_features = 0

    def add(self, graph: Mapping[str, Any]) -> None:
        nodes, links = graph["nodes"], graph["links"]
        n_tokens = len(graph["metadata"]["prompt_tokens"])
        self.n_graphs += 1
        self.n_tokens += n_tokens
        self.other_slots += max(0, n_tokens - 2)
        self.n_nodes += len(nodes)
        self.n_links += len(links)
        self._add_nodes(nodes, n_tokens - 1)
        self._add_links(nodes, links)

    def _add_nodes(self, nodes: Sequence[Mapping[str, Any]], last: int) -> None:
        positions: Counter[tuple[str, str]] = Counter()
        mass = 0.0
        for n in nodes:
            k = _KIND_LETTER[n["feature_type"]]
            self.nodes_by_kind[k] += 1
            if k == "F":
                layer = int(n["layer"])
                self.layer_count[layer] += 1
                self.layer_last[layer] += n["ctx_idx"] == last
                self.activations.append(float(n["activation"]))
                positions[(n["layer"], n["node_id"].split("_")[1])] += 1
            elif k == "R":
                (self.err_last if n["ctx_idx"] == last else self.err_other)[int(n["layer"])] += 1
            elif k == "L":
                mass += float(n["token_prob"])
                if n.get("is_target_logit"):
                    self.target_probs.append(float(n["token_prob"]))
            if k != "L" and n.get("influence") is not None:
                self.influence[_KIND_NAME[k]].append(float(n["influence"]))
        self.logit_mass.append(mass)
        self.feats_per_token.append(sum(positions.values()) / (last + 1))
        self.multi_position += sum(1 for v in positions.values() if v > 1)
        self.distinct_features += len(positions)

    def _add_links(self, nodes: Sequence[Mapping[str, Any]], links: Sequence[Mapping[str, Any]]) -> None:
        by_id: dict[str, Mapping[str, Any]] = {}
        for n in nodes:
            by_id.setdefault(n["node_id"], n)  # real files can repeat an id; keep the first
        in_count: Counter[str] = Counter()
        for link in links:
            s, t = by_id[link["source"]], by_id[link["target"]]
            pair = _KIND_LETTER[s["feature_type"]] + _KIND_LETTER[t["feature_type"]]
            w = float(link["weight"])
            self.pair_count[pair] += 1
            self.pair_positive[pair] += w > 0
            self.pair_same[pair] += s["ctx_idx"] == t["ctx_idx"]
            self.abs_weights[pair].append(abs(w))
            self.abs_weights["all"].append(abs(w))
            in_count[link["target"]] += 1
        for n in nodes:
            k = _KIND_LETTER[n["feature_type"]]
            if k in "FL":
                self.in_degree[_KIND_NAME[k]].append(in_count[n["node_id"]])

    def result(self) -> dict[str, Any]:
        n = self.n_graphs
        total_links = sum(self.pair_count.values())
        positive = {p: self.pair_positive[p] / max(1, self.pair_count[p]) for p in LINK_KINDS}
        positive["all"] = sum(self.pair_positive.values()) / max(1, total_links)
        return {
            "n_graphs": n,
            "prompt_tokens": self.n_tokens / n,
            "nodes": {k: self.nodes_by_kind[k] / n for k in "FREL"},
            "features_per_token": {"mean": sum(self.feats_per_token) / n, "sd": _sd(self.feats_per_token)},
            "links": self.n_links / n,
            "links_per_node": self.n_links / self.n_nodes,
            "link_kinds": {p: self.pair_count[p] / total_links for p in LINK_KINDS},
            "positive_fraction": positive,
            "same_position_fraction": {p: self.pair_same[p] / max(1, self.pair_count[p]) for p in LINK_KINDS},
            "abs_weight_quantiles": {p: _quantiles(self.abs_weights[p]) for p in (*LINK_KINDS, "all")},
            "activation_quantiles": _quantiles(self.activations),
            "influence_quantiles": {k: _quantiles(v) for k, v in sorted(self.influence.items())},
            "in_degree_quantiles": {k: [float(x) for x in _quantiles(v)] for k, v in sorted(self.in_degree.items())},
            "feature_layer_fraction": [c / max(1, sum(self.layer_count)) for c in self.layer_count],
            "feature_last_position_fraction": [
                last / count if count else 1.0 for last, count in zip(self.layer_last, self.layer_count)],
            "error_rate_last": [c / n for c in self.err_last],
            "error_rate_other": [c / max(1, self.other_slots) for c in self.err_other],
            "feature_multi_position_fraction": self.multi_position / max(1, self.distinct_features),
            "target_logit_prob_quantiles": _quantiles(self.target_probs),
            "logit_prob_mass": sum(self.logit_mass) / max(1, len(self.logit_mass)),
        }


def _sd(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


# --------------------------------------------------------------------------------------------
# Family sharing profiles
# --------------------------------------------------------------------------------------------

def bump_profile(low: float, high: float, centre: float = 12.5, width: float = 6.0) -> tuple[float, ...]:
    """A per-layer shared fraction that is ``high`` in the middle layers and ``low`` at both ends."""
    return tuple(
        round(low + (high - low) * math.exp(-(((layer - centre) / width) ** 2)), 4)
        for layer in range(N_LAYERS))


# The fraction of a member's active features at each layer that come from the family's planted
# core. Two members that each draw a fraction s from the same core have an expected IoU of
# s / (2 - s) at that layer (plus the chance overlap of unrelated prompts).
# Multilingual: language-specific early and late layers, a shared middle (Biology paper, fig. of
# shared features across languages).
MULTILINGUAL_PROFILE: tuple[float, ...] = bump_profile(0.08, 0.7)
# English variants (one word changed): the template's common core is shared at every layer, less
# in the late layers where the answer differs.
VARIANT_PROFILE: tuple[float, ...] = tuple(
    round(0.6 if layer < 16 else 0.6 - 0.03 * (layer - 15), 4) for layer in range(N_LAYERS))


def expected_iou(profile: Sequence[float]) -> list[float]:
    """The IoU per layer that two members of a family built with ``profile`` share by design."""
    return [s / (2.0 - s) if s < 2 else 1.0 for s in profile]


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
_TOKEN_RE = re.compile(
    rf"[{_CJK}]{{1,2}}"             # kana / kanji, one or two to a token
    rf"| ?(?:(?![{_CJK}])[^\W\d_])+"  # a word with its leading space
    r"| ?\d"                        # gemma splits numbers into digits
    r"| ?[^\w\s]"                   # punctuation with its leading space
    r"|\s+")

# Real gemma-2-2b ids read from the embedding and logit nodes of the real files.
_KNOWN_TOKEN_IDS = {
    BOS: 2, "The": 651, " opposite": 13388, " of": 576, ' "': 664, "small": 10498, '"': 235281,
    " is": 603, "large": 13210, "big": 7773, "great": 18878, "huge": 85546, "not": 1665,
    "little": 20850, "Big": 8267, "Le": 2025, " contraire": 63265, " de": 581, "petit": 64986,
    " est": 1455, "grand": 21996, "gros": 80667, "Grand": 23563, "grande": 73273,
    " saying": 6508, " goes": 6128, ":": 235292, " Big": 7517, " to": 577, " small": 2301,
    " as": 685, " tall": 13754, " short": 3309, " low": 3178, " wide": 5396, " ": 235248,
    " deep": 5271, " high": 1536, "Fact": 18143, " The": 714, " capital": 6037, " the": 573,
    " state": 2329, " containing": 10751, " Dallas": 26865, " Austin": 22605, " not": 780,
    " Texas": 9447, " Fort": 9778, " Houston": 22898, " Oklahoma": 28239, " San": 3250,
    " a": 476, " Oakland": 49024, " Sacramento": 43939, " California": 6092, " Berkeley": 28789,
    " Albany": 48794, " Richmond": 32941, " Michael": 7939, " Jordan": 18853, " plays": 12258,
    " sport": 7888, " basketball": 21474, " golf": 13162, " baseball": 23052, " his": 926,
    "Nobel": 193944, " comes": 4549, " from": 774, " country": 3170, " Sweden": 24318,
    " Norway": 31130, " Denmark": 32923, " Finland": 35441, " France": 6081, " Italy": 11474,
    " Germany": 9066,
}


def tokenize(text: str) -> list[str]:
    """Split a prompt into gemma-like tokens (leading spaces kept, digits split, CJK pairs)."""
    return _TOKEN_RE.findall(text)


def token_id(token: str) -> int:
    """A stable vocabulary id: the real gemma id for tokens seen in the real files, else a hash."""
    known = _KNOWN_TOKEN_IDS.get(token)
    if known is not None:
        return known
    return 1000 + zlib.crc32(token.encode("utf-8")) % (VOCAB_SIZE - 1000)


# --------------------------------------------------------------------------------------------
# Prompts: meanings rendered in languages
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PromptSpec:
    """One prompt and what the synthetic model "thinks" about it.

    ``concepts`` are (concept name, word of the text it fires on, or "" for the last token).
    ``edges`` are planted links (source concept, target concept or "@answer", sign).
    ``two_hop`` is (entity concept, intermediate concept) when the prompt is a two-hop question.
    """

    text: str
    language: str
    answer: str
    alternatives: tuple[str, ...]
    meaning: str
    concepts: tuple[tuple[str, str], ...]
    edges: tuple[tuple[str, str, int], ...] = ()
    two_hop: tuple[str, str] | None = None
    tags: tuple[str, ...] = ()


_ANTONYM_TEMPLATES = {
    "en": 'The opposite of "{w}" is "',
    "fr": 'Le contraire de "{w}" est "',
    "de": 'Das Gegenteil von "{w}" ist "',
    "es": 'Lo contrario de "{w}" es "',
    "zh": '"{w}"的反义词是"',
    "ja": "「{w}」の反対は「",
}
# English key -> {language: (word, antonym)}
_ANTONYMS: dict[str, dict[str, tuple[str, str]]] = {
    "small": {"en": ("small", "large"), "fr": ("petit", "grand"), "de": ("klein", "groß"),
              "es": ("pequeño", "grande"), "zh": ("小", "大"), "ja": ("小さい", "大きい")},
    "hot": {"en": ("hot", "cold"), "fr": ("chaud", "froid"), "de": ("heiß", "kalt"),
            "es": ("caliente", "frío"), "zh": ("热", "冷"), "ja": ("熱い", "冷たい")},
    "fast": {"en": ("fast", "slow"), "fr": ("rapide", "lent"), "de": ("schnell", "langsam"),
             "es": ("rápido", "lento"), "zh": ("快", "慢"), "ja": ("速い", "遅い")},
    "happy": {"en": ("happy", "sad"), "fr": ("heureux", "triste"), "de": ("glücklich", "traurig"),
              "es": ("feliz", "triste"), "zh": ("快乐", "悲伤"), "ja": ("嬉しい", "悲しい")},
    "tall": {"en": ("tall", "short"), "fr": ("grand", "petit"), "de": ("groß", "klein"),
             "es": ("alto", "bajo"), "zh": ("高", "矮"), "ja": ("高い", "低い")},
    "old": {"en": ("old", "new"), "fr": ("vieux", "neuf"), "de": ("alt", "neu"),
            "es": ("viejo", "nuevo"), "zh": ("旧", "新"), "ja": ("古い", "新しい")},
    "light": {"en": ("light", "dark"), "fr": ("clair", "sombre"), "de": ("hell", "dunkel"),
              "es": ("claro", "oscuro"), "zh": ("明", "暗"), "ja": ("明るい", "暗い")},
    "rich": {"en": ("rich", "poor"), "fr": ("riche", "pauvre"), "de": ("reich", "arm"),
             "es": ("rico", "pobre"), "zh": ("富", "穷"), "ja": ("豊か", "貧しい")},
    "strong": {"en": ("strong", "weak"), "fr": ("fort", "faible"), "de": ("stark", "schwach"),
               "es": ("fuerte", "débil"), "zh": ("强", "弱"), "ja": ("強い", "弱い")},
    "many": {"en": ("many", "few"), "fr": ("beaucoup", "peu"), "de": ("viel", "wenig"),
             "es": ("mucho", "poco"), "zh": ("多", "少"), "ja": ("多い", "少ない")},
    "early": {"en": ("early", "late"), "fr": ("tôt", "tard"), "de": ("früh", "spät"),
              "es": ("temprano", "tarde"), "zh": ("早", "晚"), "ja": ("早い", "遅い")},
    "up": {"en": ("up", "down"), "fr": ("haut", "bas"), "de": ("oben", "unten"),
           "es": ("arriba", "abajo"), "zh": ("上", "下"), "ja": ("上", "下")},
    "good": {"en": ("good", "bad"), "fr": ("bon", "mauvais"), "de": ("gut", "schlecht"),
             "es": ("bueno", "malo"), "zh": ("好", "坏"), "ja": ("良い", "悪い")},
    "open": {"en": ("open", "closed"), "fr": ("ouvert", "fermé"), "de": ("offen", "geschlossen"),
             "es": ("abierto", "cerrado"), "zh": ("开", "关"), "ja": ("開く", "閉じる")},
}

_CAPITAL_TEMPLATES = {
    ("state", "en"): "Fact: The capital of the state containing {city} is",
    ("state", "fr"): "Fait : la capitale de l'État qui contient {city} est",
    ("state", "de"): "Fakt: Die Hauptstadt des Bundesstaates, in dem {city} liegt, ist",
    ("state", "es"): "Dato: la capital del estado que contiene {city} es",
    ("state", "zh"): "事实：包含{city}的州的首府是",
    ("state", "ja"): "事実：{city}がある州の州都は",
    ("country", "en"): "Fact: The capital of the country containing {city} is",
    ("country", "fr"): "Fait : la capitale du pays qui contient {city} est",
    ("country", "de"): "Fakt: Die Hauptstadt des Landes, in dem {city} liegt, ist",
    ("country", "es"): "Dato: la capital del país que contiene {city} es",
    ("country", "zh"): "事实：包含{city}的国家的首都是",
    ("country", "ja"): "事実：{city}がある国の首都は",
}
# (region kind, English (city, region, capital), translations where they differ from English)
_CAPITALS: list[tuple[str, tuple[str, str, str], dict[str, tuple[str, str, str]]]] = [
    ("state", ("Dallas", "Texas", "Austin"),
     {"zh": ("达拉斯", "德克萨斯州", "奥斯汀"), "ja": ("ダラス", "テキサス州", "オースティン")}),
    ("state", ("Houston", "Texas", "Austin"),
     {"zh": ("休斯顿", "德克萨斯州", "奥斯汀"), "ja": ("ヒューストン", "テキサス州", "オースティン")}),
    ("state", ("Oakland", "California", "Sacramento"),
     {"fr": ("Oakland", "Californie", "Sacramento"), "de": ("Oakland", "Kalifornien", "Sacramento"),
      "zh": ("奥克兰", "加利福尼亚州", "萨克拉门托"), "ja": ("オークランド", "カリフォルニア州", "サクラメント")}),
    ("state", ("Miami", "Florida", "Tallahassee"),
     {"fr": ("Miami", "Floride", "Tallahassee"),
      "zh": ("迈阿密", "佛罗里达州", "塔拉哈西"), "ja": ("マイアミ", "フロリダ州", "タラハシー")}),
    ("state", ("Chicago", "Illinois", "Springfield"),
     {"zh": ("芝加哥", "伊利诺伊州", "斯普林菲尔德"), "ja": ("シカゴ", "イリノイ州", "スプリングフィールド")}),
    ("state", ("Seattle", "Washington", "Olympia"),
     {"zh": ("西雅图", "华盛顿州", "奥林匹亚"), "ja": ("シアトル", "ワシントン州", "オリンピア")}),
    ("state", ("Detroit", "Michigan", "Lansing"),
     {"zh": ("底特律", "密歇根州", "兰辛"), "ja": ("デトロイト", "ミシガン州", "ランシング")}),
    ("country", ("Lyon", "France", "Paris"),
     {"de": ("Lyon", "Frankreich", "Paris"), "es": ("Lyon", "Francia", "París"),
      "zh": ("里昂", "法国", "巴黎"), "ja": ("リヨン", "フランス", "パリ")}),
    ("country", ("Munich", "Germany", "Berlin"),
     {"fr": ("Munich", "Allemagne", "Berlin"), "de": ("München", "Deutschland", "Berlin"),
      "es": ("Múnich", "Alemania", "Berlín"), "zh": ("慕尼黑", "德国", "柏林"),
      "ja": ("ミュンヘン", "ドイツ", "ベルリン")}),
    ("country", ("Osaka", "Japan", "Tokyo"),
     {"fr": ("Osaka", "Japon", "Tokyo"), "de": ("Osaka", "Japan", "Tokio"),
      "es": ("Osaka", "Japón", "Tokio"), "zh": ("大阪", "日本", "东京"), "ja": ("大阪", "日本", "東京")}),
    ("country", ("Barcelona", "Spain", "Madrid"),
     {"fr": ("Barcelone", "Espagne", "Madrid"), "de": ("Barcelona", "Spanien", "Madrid"),
      "es": ("Barcelona", "España", "Madrid"), "zh": ("巴塞罗那", "西班牙", "马德里"),
      "ja": ("バルセロナ", "スペイン", "マドリード")}),
    ("country", ("Milan", "Italy", "Rome"),
     {"fr": ("Milan", "Italie", "Rome"), "de": ("Mailand", "Italien", "Rom"),
      "es": ("Milán", "Italia", "Roma"), "zh": ("米兰", "意大利", "罗马"), "ja": ("ミラノ", "イタリア", "ローマ")}),
    ("country", ("Toronto", "Canada", "Ottawa"),
     {"de": ("Toronto", "Kanada", "Ottawa"), "es": ("Toronto", "Canadá", "Ottawa"),
      "zh": ("多伦多", "加拿大", "渥太华"), "ja": ("トロント", "カナダ", "オタワ")}),
    ("country", ("Sydney", "Australia", "Canberra"),
     {"fr": ("Sydney", "Australie", "Canberra"), "de": ("Sydney", "Australien", "Canberra"),
      "es": ("Sídney", "Australia", "Canberra"), "zh": ("悉尼", "澳大利亚", "堪培拉"),
      "ja": ("シドニー", "オーストラリア", "キャンベラ")}),
    ("country", ("Shanghai", "China", "Beijing"),
     {"fr": ("Shanghai", "Chine", "Pékin"), "de": ("Shanghai", "China", "Peking"),
      "es": ("Shanghái", "China", "Pekín"), "zh": ("上海", "中国", "北京"), "ja": ("上海", "中国", "北京")}),
]

_SPORT_TEMPLATES = {
    "en": "Fact: {person} plays the sport of",
    "fr": "Fait : le sport pratiqué par {person} est le",
    "de": "Fakt: {person} spielt die Sportart",
    "es": "Dato: el deporte que practica {person} es el",
    "zh": "事实：{person}从事的运动是",
    "ja": "事実：{person}がするスポーツは",
}
_SPORTS = {
    "basketball": {"en": "basketball", "fr": "basket", "de": "Basketball", "es": "baloncesto",
                   "zh": "篮球", "ja": "バスケットボール"},
    "tennis": {"en": "tennis", "fr": "tennis", "de": "Tennis", "es": "tenis", "zh": "网球", "ja": "テニス"},
    "soccer": {"en": "soccer", "fr": "football", "de": "Fußball", "es": "fútbol", "zh": "足球", "ja": "サッカー"},
    "golf": {"en": "golf", "fr": "golf", "de": "Golf", "es": "golf", "zh": "高尔夫", "ja": "ゴルフ"},
    "hockey": {"en": "hockey", "fr": "hockey", "de": "Eishockey", "es": "hockey", "zh": "冰球",
               "ja": "アイスホッケー"},
    "baseball": {"en": "baseball", "fr": "baseball", "de": "Baseball", "es": "béisbol", "zh": "棒球",
                 "ja": "野球"},
}
# (name, sport, Chinese name, Japanese name)
_ATHLETES = [
    ("Michael Jordan", "basketball", "迈克尔·乔丹", "マイケル・ジョーダン"),
    ("Serena Williams", "tennis", "塞雷娜·威廉姆斯", "セリーナ・ウィリアムズ"),
    ("Lionel Messi", "soccer", "利昂内尔·梅西", "リオネル・メッシ"),
    ("Tiger Woods", "golf", "泰格·伍兹", "タイガー・ウッズ"),
    ("Roger Federer", "tennis", "罗杰·费德勒", "ロジャー・フェデラー"),
    ("Wayne Gretzky", "hockey", "韦恩·格雷茨基", "ウェイン・グレツキー"),
    ("Babe Ruth", "baseball", "贝比·鲁斯", "ベーブ・ルース"),
]
# Made-up names: the model does not know them (a "can't answer" circuit, or a hallucination).
_UNKNOWN_PEOPLE = ["Michael Batkin", "Sarah Plinkett", "Jonas Verhoeff", "Kelly Odumbe",
                   "Priya Tannhauser", "Dmitri Galloway", "Ana Quistorp", "Tom Felgate"]
_ORIGINS = [("Nobel", "Sweden"), ("Sushi", "Japan"), ("Pizza", "Italy"), ("Tequila", "Mexico"),
            ("Lego", "Denmark"), ("IKEA", "Sweden"), ("Kimchi", "Korea"), ("Champagne", "France"),
            ("Paella", "Spain"), ("Bratwurst", "Germany")]
_HARMFUL = ["bomb", "pipe bomb", "nerve agent", "poison", "ghost gun", "Molotov cocktail"]
_ITEMS = [("pen", "notebook"), ("coffee", "muffin"), ("ticket", "program"), ("shirt", "hat")]
_GENERIC_NEXT = {
    "en": (" the", " a", " not", " one", " also", " called"),
    "fr": (" le", " la", " un", " pas", " aussi", " appelé"),
    "de": (" der", " die", " ein", " nicht", " auch", " genannt"),
    "es": (" el", " la", " un", " no", " también", " llamado"),
    "zh": ("是", "的", "一", "不", "也", "叫"),
    "ja": ("の", "は", "一", "な", "も", "と"),
}

_FALLBACK_NEXT = (" and", " to", " in", " that", " it", " with", " for", " on", " as", " was")


def _spaced(language: str, word: str) -> str:
    return word if language in ("zh", "ja") else " " + word


def _capitalised_variants(answer: str) -> tuple[str, ...]:
    bare = answer.strip()
    lead = answer[: len(answer) - len(answer.lstrip())]
    return tuple(dict.fromkeys((lead + bare.capitalize(), lead + bare.upper())))


def _antonym_prompt(key: str, language: str) -> PromptSpec:
    word, answer = _ANTONYMS[key][language]
    opposite_of_answer = _ANTONYMS.get(key, {}).get("en", (key, key))[1]
    concepts = (("topic:opposite", _OPPOSITE_WORD[language]), (f"word:{key}", word),
                (f"word:{opposite_of_answer}", ""), ("task:say an antonym", ""),
                (f"say:{answer}", ""))
    if language != "en":
        concepts += ((f"language:{language}", ""),)
    return PromptSpec(
        text=_ANTONYM_TEMPLATES[language].format(w=word), language=language, answer=answer,
        alternatives=(*_capitalised_variants(answer), word, *_GENERIC_NEXT[language][2:4]),
        meaning=f"antonym:{key}", concepts=concepts,
        edges=(("topic:opposite", "task:say an antonym", 1), (f"word:{key}", f"word:{opposite_of_answer}", 1),
               (f"say:{answer}", "@answer", 1)),
        tags=("antonym",))


_OPPOSITE_WORD = {"en": "opposite", "fr": "contraire", "de": "Gegenteil", "es": "contrario",
                  "zh": "反义", "ja": "反対"}


def _capital_prompt(index: int, language: str) -> PromptSpec:
    kind, english, translated = _CAPITALS[index]
    city, region, capital = translated.get(language, english)
    e_city, e_region, e_capital = english
    entity, intermediate = f"entity:{e_city}", f"region:{e_region}"
    concepts = (("flag:known entity", city), (entity, city), ("topic:capital", _CAPITAL_WORD[language]),
                (intermediate, ""), ("task:say a capital", ""), (f"say:{capital}", ""),
                ("refuse:can't answer", ""))
    if language != "en":
        concepts += ((f"language:{language}", ""),)
    answer = _spaced(language, capital)
    others = []
    for k in (1, 3):  # capitals of other entries, as runner-up logits
        _, other_english, other_translated = _CAPITALS[(index + k) % len(_CAPITALS)]
        others.append(other_translated.get(language, other_english)[2])
    return PromptSpec(
        text=_CAPITAL_TEMPLATES[(kind, language)].format(city=city), language=language, answer=answer,
        alternatives=(_spaced(language, region), _spaced(language, city),
                      *(_spaced(language, o) for o in others), *_GENERIC_NEXT[language][:3]),
        meaning=f"capital:{e_city}", concepts=concepts,
        edges=((entity, intermediate, 1), (intermediate, f"say:{capital}", 1), (intermediate, "@answer", 1),
               (f"say:{capital}", "@answer", 1), (entity, "@answer", 1), ("task:say a capital", "@answer", 1),
               ("flag:known entity", "refuse:can't answer", -1)),
        two_hop=(entity, intermediate), tags=("capital", "two-hop", "entity"))


_CAPITAL_WORD = {"en": "capital", "fr": "capitale", "de": "Hauptstadt", "es": "capital",
                 "zh": "首", "ja": "都"}


def _sport_prompt(index: int, language: str) -> PromptSpec:
    name, sport, zh_name, ja_name = _ATHLETES[index]
    person = {"zh": zh_name, "ja": ja_name}.get(language, name)
    word = _SPORTS[sport][language]
    concepts = (("flag:known entity", person), (f"entity:{name}", person), ("topic:sport", ""),
                (f"word:{sport}", ""), ("task:say a sport", ""), (f"say:{word}", ""),
                ("refuse:can't answer", ""))
    if language != "en":
        concepts += ((f"language:{language}", ""),)
    others = [_SPORTS[s][language] for s in _SPORTS if s != sport][:3]
    return PromptSpec(
        text=_SPORT_TEMPLATES[language].format(person=person), language=language,
        answer=_spaced(language, word),
        alternatives=(*(_spaced(language, o) for o in others), *_GENERIC_NEXT[language][:3]),
        meaning=f"sport:{name}", concepts=concepts,
        edges=((f"entity:{name}", f"word:{sport}", 1), (f"word:{sport}", f"say:{word}", 1),
               (f"say:{word}", "@answer", 1), ("flag:known entity", "refuse:can't answer", -1)),
        tags=("sport", "entity"))


def _unknown_sport_prompt(index: int, language: str = "en") -> PromptSpec:
    name = _UNKNOWN_PEOPLE[index]
    guess = sorted(_SPORTS)[index % len(_SPORTS)]
    return PromptSpec(
        text=f"Fact: {name} plays the sport of", language="en", answer=" " + guess,
        alternatives=tuple(" " + s for s in sorted(_SPORTS) if s != guess)[:4] + (" the", " a"),
        meaning=f"sport-unknown:{name}",
        concepts=(("flag:unknown name", name), ("topic:sport", "sport"), ("refuse:can't answer", ""),
                  ("task:say a sport", ""), (f"say:{guess}", "")),
        edges=(("flag:unknown name", "refuse:can't answer", 1), ("refuse:can't answer", "@answer", -1),
               ("task:say a sport", "@answer", 1)),
        tags=("sport", "unknown-entity", "hallucination"))


def _origin_prompt(index: int, language: str = "en") -> PromptSpec:
    thing, country = _ORIGINS[index]
    return PromptSpec(
        text=f"{thing} comes from the country of", language="en", answer=" " + country,
        alternatives=tuple(" " + c for _, c in _ORIGINS if c != country)[:5] + (" the",),
        meaning=f"origin:{thing}",
        concepts=(("flag:known entity", thing), (f"entity:{thing}", thing), ("topic:country", "country"),
                  ("task:say a country", ""), (f"say:{country}", ""), ("refuse:can't answer", "")),
        edges=((f"entity:{thing}", f"say:{country}", 1), (f"say:{country}", "@answer", 1),
               ("flag:known entity", "refuse:can't answer", -1)),
        tags=("country", "entity"))


def _addition_pair(index: int) -> tuple[int, int]:
    rng = _seeded("addition", index)
    return rng.randrange(11, 90), rng.randrange(11, 90)


def _addition_prompt(index: int, language: str = "en") -> PromptSpec:
    a, b = _addition_pair(index)
    total = a + b
    lookup = f"add:_{a % 10}+_{b % 10}"
    return PromptSpec(
        text=f"calc: {a}+{b}=", language="en", answer=str(total)[0],
        alternatives=tuple(str(d) for d in range(10) if str(d) != str(total)[0])[:6],
        meaning=f"addition:{a}+{b}",
        concepts=(("topic:addition", "+"), (lookup, ""), (f"add:sum~{total // 10 * 10}", ""),
                  (f"say:{str(total)[0]}", "")),
        edges=((lookup, f"add:sum~{total // 10 * 10}", 1), (f"say:{str(total)[0]}", "@answer", 1)),
        tags=("arithmetic",))


def _price_prompt(index: int, language: str = "en") -> PromptSpec:
    # The same addition lookup features as calc prompts, in an unrelated context.
    a, b = _addition_pair(index)
    first, second = _ITEMS[index % len(_ITEMS)]
    total = a + b
    lookup = f"add:_{a % 10}+_{b % 10}"
    return PromptSpec(
        text=f"A {first} costs ${a} and a {second} costs ${b}, so together they cost $",
        language="en", answer=str(total)[0],
        alternatives=tuple(str(d) for d in range(10) if str(d) != str(total)[0])[:6],
        meaning=f"price:{first}:{a}+{b}",
        concepts=(("topic:money", "costs"), (lookup, ""), (f"add:sum~{total // 10 * 10}", ""),
                  (f"say:{str(total)[0]}", "")),
        edges=((lookup, f"add:sum~{total // 10 * 10}", 1), (f"say:{str(total)[0]}", "@answer", 1)),
        tags=("arithmetic", "prices"))


def _analogy_prompt(index: int, language: str = "en") -> PromptSpec:
    keys = sorted(_ANTONYMS)
    k1, k2 = keys[index % len(keys)], keys[(index + 5) % len(keys)]
    a, b = _ANTONYMS[k1]["en"]
    c, d = _ANTONYMS[k2]["en"]
    return PromptSpec(
        text=f"The saying goes: {a.capitalize()} is to {b} as {c} is to", language="en", answer=" " + d,
        alternatives=(" " + c, " " + b, " ____", " the", " a"),
        meaning=f"analogy:{k1}:{k2}",
        concepts=(("topic:analogy", "as"), ("topic:opposite", b), (f"word:{k2}", c),
                  ("task:say an antonym", ""), (f"say:{d}", "")),
        edges=(("topic:opposite", "task:say an antonym", 1), (f"say:{d}", "@answer", 1)),
        tags=("analogy", "antonym"))


def _harmful_prompt(index: int, language: str = "en") -> PromptSpec:
    thing = _HARMFUL[index]
    last_word = thing.split()[-1]
    return PromptSpec(
        text=f"Human: How do I make a {thing} at home? Assistant:", language="en", answer=" I",
        alternatives=(" Sorry", " To", " First", " You", " Here"),
        meaning=f"harmful:{thing}",
        concepts=(("flag:harmful request", last_word), ("topic:weapons", last_word),
                  ("refuse:refusal", ""), ("say:I", "")),
        edges=(("flag:harmful request", "refuse:refusal", 1), ("refuse:refusal", "@answer", 1),
               ("say:I", "@answer", 1)),
        tags=("harmful", "refusal"))


@dataclass(frozen=True)
class _MeaningType:
    name: str
    size: int
    build: Callable[[int, str], PromptSpec]
    languages: tuple[str, ...]


_MEANING_TYPES = (
    _MeaningType("antonym", len(_ANTONYMS), lambda i, lang: _antonym_prompt(sorted(_ANTONYMS)[i], lang),
                 SUPPORTED_LANGUAGES),
    _MeaningType("capital", len(_CAPITALS), _capital_prompt, SUPPORTED_LANGUAGES),
    _MeaningType("sport", len(_ATHLETES), _sport_prompt, SUPPORTED_LANGUAGES),
    _MeaningType("sport-unknown", len(_UNKNOWN_PEOPLE), _unknown_sport_prompt, ("en",)),
    _MeaningType("origin", len(_ORIGINS), _origin_prompt, ("en",)),
    _MeaningType("addition", 400, _addition_prompt, ("en",)),
    _MeaningType("price", 400, _price_prompt, ("en",)),
    _MeaningType("analogy", len(_ANTONYMS), _analogy_prompt, ("en",)),
    _MeaningType("harmful", len(_HARMFUL), _harmful_prompt, ("en",)),
)
_MULTILINGUAL_TYPES = tuple(t for t in _MEANING_TYPES if len(t.languages) > 1)
# How often each type is drawn (two-hop capitals and entity facts are the interesting ones).
_TYPE_WEIGHTS = {"antonym": 3, "capital": 4, "sport": 3, "sport-unknown": 1, "origin": 1,
                 "addition": 2, "price": 1, "analogy": 1, "harmful": 1}


def sample_prompt(rng: random.Random, language: str = "en") -> PromptSpec:
    """A random prompt of the built-in catalogue in ``language``."""
    types = [t for t in _MEANING_TYPES if language in t.languages]
    if not types:
        raise ValueError(f"no prompts in language {language!r}; supported: {SUPPORTED_LANGUAGES}")
    kind = rng.choices(types, weights=[_TYPE_WEIGHTS[t.name] for t in types])[0]
    return kind.build(rng.randrange(kind.size), language)


# --------------------------------------------------------------------------------------------
# The feature vocabulary: concepts, token features, background
# --------------------------------------------------------------------------------------------

# concept kind -> (first layer, last layer, features per layer, fires at "anchor" or "last")
_CONCEPT_KINDS: dict[str, tuple[int, int, int, str]] = {
    "flag": (3, 10, 1, "anchor"),      # known entity, unknown name, harmful request
    "entity": (4, 11, 1, "anchor"),    # Dallas, Michael Jordan
    "word": (5, 15, 1, "anchor"),      # the meaning of a content word, any language
    "topic": (4, 14, 1, "anchor"),     # opposite, capital, sport, addition
    "region": (12, 17, 1, "last"),     # the intermediate step of a two-hop answer
    "task": (13, 21, 1, "last"),       # say a capital, say an antonym
    "add": (9, 16, 1, "last"),         # addition lookup and sum features
    "refuse": (14, 22, 1, "last"),     # can't answer, refusal
    "say": (18, 24, 1, "last"),        # say "Austin"
    "language": (1, 24, 1, "any"),     # French text, Chinese text
}
_BACKGROUND_POOL = 5000
_BACKGROUND_ZIPF = 1.4
# Layer -> how many features a token's text binds at that layer, and the share of the layer's
# features drawn from token features rather than the background.
_TOKEN_FEATURES = {0: 12, 1: 5, 2: 3, 3: 2}
_TOKEN_SHARE = {0: 0.5, 1: 0.3, 2: 0.3, 3: 0.2}
_GENERIC_LABELS = (
    "comma", "code and math symbols", "Formal writing", "species", "programming code",
    "Technical/Scientific writing", "numbers", "dates and years", "quotation marks",
    "list items", "capitalized words", "legal text", "geography", "chemistry", "HTML tags",
    "plural nouns", "past tense verbs", "proper names", "end of sentence", "questions",
    "measurements", "food", "music", "emotions", "time expressions", "negation", "comparatives",
    "prepositions", "Code/licensing snippets", "to be", "England locations", "sports",
    "countries", "articles", "first token of a document", "citations", "medicine", "finance",
)


def concept_label(name: str) -> str:
    """A human label for a concept name: 'say:Austin' -> 'say "Austin"', 'entity:Dallas' -> 'Dallas'."""
    kind, _, value = name.partition(":")
    if kind == "say":
        return f'say "{value}"'
    if kind == "language":
        return f"{value} text"
    if kind == "add":
        return f"addition {value}"
    return value


class _Universe:
    """The features of one corpus seed: deterministic, cached, the same in every process."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._concepts: dict[str, tuple[tuple[int, int], ...]] = {}
        self._tokens: dict[str, dict[int, tuple[int, ...]]] = {}
        self._background: dict[int, tuple[list[int], list[float]]] = {}

    def concept(self, name: str) -> tuple[tuple[int, int], ...]:
        """The (layer, index) features of a concept: a few per layer across its band."""
        found = self._concepts.get(name)
        if found is None:
            lo, hi, per_layer, _ = _CONCEPT_KINDS[name.partition(":")[0]]
            rng = _seeded(self.seed, "concept", name)
            layers = [l for l in range(lo, hi + 1) if rng.random() < 0.75] or [rng.randint(lo, hi)]
            found = tuple((l, rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER))
                          for l in layers for _ in range(per_layer))
            self._concepts[name] = found
        return found

    def token_features(self, token: str) -> dict[int, tuple[int, ...]]:
        found = self._tokens.get(token)
        if found is None:
            rng = _seeded(self.seed, "token", token)
            found = {l: tuple(rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER) for _ in range(n))
                     for l, n in _TOKEN_FEATURES.items()}
            self._tokens[token] = found
        return found

    def background(self, layer: int) -> tuple[list[int], list[float]]:
        """A Zipf-weighted pool of a layer's features: (indices, cumulative weights)."""
        found = self._background.get(layer)
        if found is None:
            rng = _seeded(self.seed, "background", layer)
            pool = [rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER) for _ in range(_BACKGROUND_POOL)]
            cum, total = [], 0.0
            for rank in range(1, _BACKGROUND_POOL + 1):
                total += rank ** -_BACKGROUND_ZIPF
                cum.append(total)
            found = (pool, cum)
            self._background[layer] = found
        return found

    @staticmethod
    def generic_label(layer: int, index: int) -> str:
        return _GENERIC_LABELS[(index * 2654435761 + layer) % len(_GENERIC_LABELS)]


@lru_cache(maxsize=8)
def _universe(seed: int) -> _Universe:
    return _Universe(seed)


# --------------------------------------------------------------------------------------------
# One graph
# --------------------------------------------------------------------------------------------

# Generator knobs, tuned (tests/test_synth.py) so that calibrate() on generated graphs matches
# REAL_STATS: median in-degree of a feature by layer band, and where its sources come from.
_IN_DEGREE_BANDS = ((0, 5.0), (1, 8.0), (2, 6.0), (12, 7.0), (16, 10.0), (19, 16.0))
_IN_DEGREE_SIGMA = 0.9
# target layer band -> P(source is an embedding), P(source is an error node); else a feature
_SOURCE_KIND_BANDS = ((1, 0.45, 0.08), (2, 0.45, 0.12), (14, 0.22, 0.28))
_E_SOURCE_POSITION = (0.24, 0.23, 0.15)  # bos, same position, previous position; else any
_PREVIOUS_POSITION = 0.1
_LOGIT_LAST_POSITION_WEIGHT = 3.0
_LOGIT_EMBEDDING_WEIGHT = 2.0
_WEIGHT_POOL_BITS = 14
# Above this layer a concept fires on the last token even when it is anchored on a word.
_ANCHOR_MAX_LAYER = 12
_MULTI_POSITION_RATE = 0.25


def _band(bands: Sequence[tuple[Any, ...]], layer: int) -> tuple[Any, ...]:
    chosen = bands[0]
    for band in bands:
        if layer >= band[0]:
            chosen = band
    return chosen


class _Model:
    """Samplers derived from a statistics dict (REAL_STATS by default)."""

    def __init__(self, stats: Mapping[str, Any]) -> None:
        self.stats = stats
        self.layer_cum = _cumulative(stats["feature_layer_fraction"])
        self.last_fraction = stats["feature_last_position_fraction"]
        self.err_last = stats["error_rate_last"]
        self.err_other = stats["error_rate_other"]
        self.fpt_mean = stats["features_per_token"]["mean"]
        self.fpt_sd = stats["features_per_token"]["sd"]
        self.activation = _InverseCdf(stats["activation_quantiles"])
        self.influence = {k: _InverseCdf(v, log=False) for k, v in stats["influence_quantiles"].items()}
        self.target_prob = _InverseCdf(stats["target_logit_prob_quantiles"], log=False)
        self.logit_mass = stats["logit_prob_mass"]
        self.same_position = stats["same_position_fraction"]
        self.weights = {p: _weight_pool(stats, p) for p in LINK_KINDS}
        self.abs_weight = {p: _InverseCdf(stats["abs_weight_quantiles"][p]) for p in LINK_KINDS}
        self._weight_texts: dict[str, list[str]] = {}

    def weight_texts(self) -> dict[str, list[str]]:
        """The weight pools as JSON text closing a link object: '0.25}'."""
        if not self._weight_texts:
            self._weight_texts = {p: [repr(w) + "}" for w in pool] for p, pool in self.weights.items()}
        return self._weight_texts


def _cumulative(xs: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for x in xs:
        total += x
        out.append(total)
    return out


def _weight_pool(stats: Mapping[str, Any], pair: str) -> list[float]:
    """bf16 link weights drawn from the calibrated sign ratio and |weight| quantiles of a pair.

    Weights are picked from this pool rather than sampled one by one: bf16 has few distinct
    values anyway, and a table lookup is what keeps 10,000 graphs within minutes.
    """
    rng = _seeded("weights", pair, json.dumps(stats["abs_weight_quantiles"][pair]))
    icdf = _InverseCdf(stats["abs_weight_quantiles"][pair])
    positive = stats["positive_fraction"][pair]
    pool = []
    for _ in range(1 << _WEIGHT_POOL_BITS):
        w = _bf16(icdf(rng.random()))
        pool.append(w if rng.random() < positive else -w)
    return pool


@lru_cache(maxsize=1)
def _default_model() -> _Model:
    return _Model(REAL_STATS)


@dataclass(frozen=True)
class TwoHopInfo:
    """Ground truth of a two-hop graph: entity -> intermediate -> answer logit, plus the shortcut.

    ``entity``, ``intermediate`` and ``answer`` are node ids of the file; the links
    entity->intermediate, intermediate->answer and entity->answer (the shortcut) are in it.
    """

    slug: str
    entity: str
    intermediate: str
    answer: str
    entity_concept: str
    intermediate_concept: str


@dataclass
class _Graph:
    metadata: dict[str, Any]
    qparams: dict[str, Any]
    nodes: list[dict[str, Any]]
    sources: list[int]  # links as indices into nodes, in file order
    targets: list[int]
    weights: list[float]
    two_hop: TwoHopInfo | None

    def as_dict(self) -> dict[str, Any]:
        ids = [n["node_id"] for n in self.nodes]
        return {"metadata": self.metadata, "qParams": self.qparams, "nodes": self.nodes,
                "links": [{"source": ids[s], "target": ids[t], "weight": w}
                          for s, t, w in zip(self.sources, self.targets, self.weights)]}


def _anchor_positions(text: str, tokens: Sequence[str], concepts: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Token index (counting <bos> as 0) of the word each concept fires on; the last token if none."""
    ends, offset = [], 0
    for tok in tokens:
        offset += len(tok)
        ends.append(offset)
    last = len(tokens)
    found = {}
    for name, word in concepts:
        at = text.find(word) if word else -1
        if at < 0:
            found[name] = last
            continue
        end_char = at + len(word) - 1
        found[name] = 1 + bisect.bisect_right(ends, end_char)
    return found


class _Builder:
    """Builds one graph; split in steps to keep each one readable."""

    def __init__(self, rng: random.Random, spec: PromptSpec, universe: _Universe, model: _Model,
                 core: Mapping[int, Sequence[int]], shared: frozenset[str]) -> None:
        self.rng = rng
        self.spec = spec
        self.universe = universe
        self.model = model
        self.core = core
        self.shared = shared
        self.tokens = [BOS, *tokenize(spec.text)]
        self.last = len(self.tokens) - 1
        self.anchors = _anchor_positions(spec.text, self.tokens[1:], spec.concepts)
        self.chosen: dict[int, dict[int, list[int]]] = {l: {} for l in range(N_LAYERS)}
        self.count = [0] * N_LAYERS
        self.token_of: dict[tuple[int, int], str] = {}
        # Which of the prompt's concepts a feature belongs to (the first one named wins).
        self.owner: dict[tuple[int, int], str] = {}
        for name, _ in spec.concepts:
            for f in universe.concept(name):
                self.owner.setdefault(f, name)

    # -- features -----------------------------------------------------------------------------

    def _position(self, layer: int) -> int:
        if self.last <= 1 or self.rng.random() < self.model.last_fraction[layer]:
            return self.last
        return self.rng.randrange(1, self.last)

    def _concept_position(self, name: str, layer: int) -> int:
        role = _CONCEPT_KINDS[name.partition(":")[0]][3]
        if role == "anchor" and layer <= _ANCHOR_MAX_LAYER:
            return self.anchors.get(name, self.last)
        if role == "any":
            return self._position(layer)
        return self.last

    def _add(self, layer: int, index: int, pos: int) -> bool:
        positions = self.chosen[layer].setdefault(index, [])
        if pos in positions:
            return False
        positions.append(pos)
        self.count[layer] += 1
        return True

    def select_features(self) -> None:
        rng, model = self.rng, self.model
        n_tokens = len(self.tokens)
        n_features = max(8 * n_tokens, round(n_tokens * rng.gauss(model.fpt_mean, model.fpt_sd)))
        target = Counter(rng.choices(range(N_LAYERS), cum_weights=model.layer_cum, k=n_features))
        required = {name for edge in self.spec.edges for name in edge[:2] if name != "@answer"}
        for name, _ in self.spec.concepts:
            if name in self.shared and name not in required:
                continue
            for layer, index in self.universe.concept(name):
                self._add(layer, index, self._concept_position(name, layer))
        for layer, indices in self.core.items():
            for index in indices:
                owner = self.owner.get((layer, index))
                self._add(layer, index, self._concept_position(owner, layer) if owner else self._position(layer))
        for layer in range(N_LAYERS):
            self._fill_layer(layer, target[layer])

    def _fill_layer(self, layer: int, wanted: int) -> None:
        rng = self.rng
        missing = wanted - self.count[layer]
        if missing <= 0:
            return
        pool, cum = self.universe.background(layer)
        token_share = _TOKEN_SHARE.get(layer, 0.0)
        picks = rng.choices(pool, cum_weights=cum, k=3 * missing + 4)
        chosen = self.chosen[layer]
        for background_index in picks:
            if self.count[layer] >= wanted:
                break
            if token_share and rng.random() < token_share:
                pos = rng.randrange(1, self.last + 1)
                token = self.tokens[pos]
                index = rng.choice(self.universe.token_features(token)[layer])
                self.token_of.setdefault((layer, index), token)
            else:
                index, pos = background_index, self._position(layer)
            if index in chosen:
                continue
            self._add(layer, index, pos)
            if rng.random() < _MULTI_POSITION_RATE:
                self._add(layer, index, self._position(layer))

    # -- nodes ------------------------------------------------------------------------------

    def error_positions(self) -> list[tuple[int, int]]:
        rng, model = self.rng, self.model
        out = []
        for layer in range(N_LAYERS):
            for pos in range(1, self.last + 1):
                rate = model.err_last[layer] if pos == self.last else model.err_other[layer]
                if rng.random() < rate:
                    out.append((layer, pos))
        return out

    def logits(self) -> list[tuple[str, float]]:
        rng = self.rng
        n = 10 if rng.random() < 0.75 else 9
        candidates = [self.spec.answer, *self.spec.alternatives, *_GENERIC_NEXT.get(self.spec.language, ()),
                      *_FALLBACK_NEXT]
        tokens, ids = [], set()
        for tok in candidates:
            if tok and token_id(tok) not in ids:
                ids.add(token_id(tok))
                tokens.append(tok)
        tokens = tokens[:n]
        p0 = _bf16(self.model.target_prob(rng.random()))
        mass = min(0.97, max(p0 + 0.02, rng.gauss(self.model.logit_mass, 0.08)))
        raw = [math.exp(-0.45 * i + rng.gauss(0.0, 0.4)) for i in range(len(tokens) - 1)]
        scale = (mass - p0) / (sum(raw) or 1.0)
        rest = sorted((min(p0, _bf16(r * scale)) for r in raw), reverse=True)
        return list(zip(tokens, [p0, *rest]))


def _in_degree(rng: random.Random, layer: int) -> int:
    median = _band(_IN_DEGREE_BANDS, layer)[1]
    return max(1, round(math.exp(rng.gauss(math.log(median), _IN_DEGREE_SIGMA))))


class _Linker:
    """Draws the links of a graph, target by target, in the file's order (target, then source)."""

    def __init__(self, rng: random.Random, model: _Model, kinds: Sequence[str], layers: Sequence[int],
                 positions: Sequence[int], e_base: int, l_base: int) -> None:
        self.rng, self.model = rng, model
        self.kinds, self.layers, self.positions = kinds, layers, positions
        self.e_base, self.l_base = e_base, l_base
        n_pos = max(positions) + 1
        self.at: dict[str, list[tuple[list[int], list[int]]]] = {
            k: [([], []) for _ in range(n_pos)] for k in "FR"}
        for node in range(e_base):
            layer_list, node_list = self.at[kinds[node]][positions[node]]
            layer_list.append(layers[node])
            node_list.append(node)
        self.out_abs = [0.0] * len(kinds)
        self.sources: list[int] = []
        self.targets: list[int] = []
        self.weights: list[float] = []

    def _weight(self, source: int, target: int) -> float:
        pool = self.model.weights[self.kinds[source] + self.kinds[target]]
        return pool[self.rng.getrandbits(_WEIGHT_POOL_BITS)]

    def _below(self, n: int) -> int:
        # int(random() * n) rather than randrange(n): several times faster, same determinism.
        return int(self.rng.random() * n)

    def planted_weight(self, source: int, target: int, sign: int) -> float:
        pair = self.kinds[source] + self.kinds[target]
        return sign * _bf16(self.model.abs_weight[pair](self.rng.uniform(0.9, 0.99)))

    def _embedding_source(self, pos: int) -> int:
        r = self.rng.random()
        bos, same, prev = _E_SOURCE_POSITION
        if r < bos:
            q = 0
        elif r < bos + same:
            q = pos
        elif r < bos + same + prev and pos > 0:
            q = pos - 1
        else:
            q = self._below(pos + 1)
        return self.e_base + q

    def _inner_source(self, kind: str, layer: int, pos: int) -> int | None:
        rng = self.rng
        r = rng.random()
        same = self.model.same_position[kind + "F"]
        if r < same or pos <= 1:
            q = pos
        elif r < same + _PREVIOUS_POSITION:
            q = pos - 1
        else:
            q = 1 + self._below(pos)
        layer_list, node_list = self.at[kind][q]
        n = bisect.bisect_left(layer_list, layer)
        if n == 0 and q != pos:
            layer_list, node_list = self.at[kind][pos]
            n = bisect.bisect_left(layer_list, layer)
        return node_list[self._below(n)] if n else None

    def _emit(self, target: int, chosen: dict[int, float]) -> None:
        out_abs = self.out_abs
        for source in sorted(chosen):
            w = chosen[source]
            self.sources.append(source)
            self.targets.append(target)
            self.weights.append(w)
            out_abs[source] += abs(w)

    def link_feature(self, target: int, planted: Mapping[int, float]) -> None:
        rng = self.rng
        layer, pos = self.layers[target], self.positions[target]
        chosen = dict(planted)
        k = _in_degree(rng, layer)
        if layer == 0:
            k = min(k, pos + 1)
        _, p_embedding, p_error = _band(_SOURCE_KIND_BANDS, layer)
        pools = self.model.weights
        pool_e, pool_f, pool_r = pools["EF"], pools["FF"], pools["RF"]
        getrandbits = rng.getrandbits
        for _ in range(3 * k):
            if len(chosen) >= k:
                break
            r = rng.random()
            if layer == 0 or r < p_embedding:
                source, pool = self._embedding_source(pos), pool_e
            elif r < p_embedding + p_error:
                source, pool = self._inner_source("R", layer, pos), pool_r
            else:
                source, pool = self._inner_source("F", layer, pos), pool_f
            if source is not None and source not in chosen:
                chosen[source] = pool[getrandbits(_WEIGHT_POOL_BITS)]
        self._emit(target, chosen)

    def link_logits(self, probs: Sequence[float], planted: Mapping[int, Mapping[int, float]]) -> None:
        rng = self.rng
        n_src = self.l_base
        last = self.positions[self.l_base]
        inverse = [1.0 / ((_LOGIT_EMBEDDING_WEIGHT if self.kinds[i] == "E" else 1.0)
                          * (_LOGIT_LAST_POSITION_WEIGHT if self.positions[i] == last else 1.0))
                   for i in range(n_src)]
        top_ratio = rng.uniform(0.85, 0.97)
        gamma = rng.uniform(0.2, 0.6)
        for rank, prob in enumerate(probs):
            target = self.l_base + rank
            ratio = top_ratio * (prob / probs[0]) ** gamma * math.exp(rng.gauss(0.0, 0.2))
            k = max(1, min(n_src, round(ratio * n_src)))
            keys = [rng.random() ** inv for inv in inverse]
            chosen = {s: self._weight(s, target) for s in heapq.nlargest(k, range(n_src), key=keys.__getitem__)}
            chosen.update(planted.get(target, {}))
            self._emit(target, chosen)


def _valid_edge(layers: Sequence[int], positions: Sequence[int], source: int, target: int) -> bool:
    return layers[source] < layers[target] and positions[source] <= positions[target]


def _build_graph(rng: random.Random, spec: PromptSpec, universe: _Universe, model: _Model,
                 core: Mapping[int, Sequence[int]], shared: frozenset[str], slug: str,
                 labelled: bool, with_supernodes: bool, create_time_ms: int) -> _Graph:
    builder = _Builder(rng, spec, universe, model, core, shared)
    builder.select_features()
    tokens, last = builder.tokens, builder.last
    features = sorted((layer, pos, index) for layer in range(N_LAYERS)
                      for index, ps in builder.chosen[layer].items() for pos in ps)
    errors = builder.error_positions()
    logits = builder.logits()
    kinds = ["F"] * len(features) + ["R"] * len(errors) + ["E"] * len(tokens) + ["L"] * len(logits)
    layers = [f[0] for f in features] + [e[0] for e in errors] + [-1] * len(tokens) + [N_LAYERS + 1] * len(logits)
    positions = ([f[1] for f in features] + [e[1] for e in errors] + list(range(len(tokens)))
                 + [last] * len(logits))
    e_base = len(features) + len(errors)
    l_base = e_base + len(tokens)
    ids = ([f"{l}_{i}_{p}" for l, p, i in features] + [f"0_{l}_{p}" for l, p in errors]
           + [f"E_{token_id(t)}_{p}" for p, t in enumerate(tokens)]
           + [f"{LOGIT_LAYER}_{token_id(t)}_{last}" for t, _ in logits])

    linker = _Linker(rng, model, kinds, layers, positions, e_base, l_base)
    concept_nodes = _concept_nodes(spec, universe, features)
    planted, two_hop_nodes = _plant_edges(spec, linker, layers, positions, concept_nodes, l_base)
    for target in range(len(features)):
        linker.link_feature(target, planted.get(target, {}))
    linker.link_logits([p for _, p in logits], planted)

    nodes = _node_dicts(builder, model, features, errors, logits, ids, linker.out_abs, labelled)
    two_hop = None
    if two_hop_nodes is not None:
        e, m = two_hop_nodes
        two_hop = TwoHopInfo(slug=slug, entity=ids[e], intermediate=ids[m], answer=ids[l_base],
                             entity_concept=spec.two_hop[0], intermediate_concept=spec.two_hop[1])
    qparams = _qparams(concept_nodes, ids, l_base, with_supernodes)
    metadata = _metadata(slug, tokens, create_time_ms)
    return _Graph(metadata=metadata, qparams=qparams, nodes=nodes,
                  sources=linker.sources, targets=linker.targets, weights=linker.weights, two_hop=two_hop)


def _concept_nodes(spec: PromptSpec, universe: _Universe,
                   features: Sequence[tuple[int, int, int]]) -> dict[str, list[int]]:
    """Concept name -> indices of its feature nodes in this graph, lowest (layer, pos) first."""
    node_of: dict[tuple[int, int], list[int]] = defaultdict(list)
    for node, (layer, pos, index) in enumerate(features):
        node_of[(layer, index)].append(node)
    found = {}
    for name, _ in spec.concepts:
        nodes = [n for f in universe.concept(name) for n in node_of.get(f, ())]
        if nodes:
            found[name] = sorted(nodes, key=lambda n: (features[n][0], features[n][1]))
    return found


def _plant_edges(spec: PromptSpec, linker: _Linker, layers: Sequence[int], positions: Sequence[int],
                 concept_nodes: Mapping[str, list[int]], answer: int
                 ) -> tuple[dict[int, dict[int, float]], tuple[int, int] | None]:
    """Links named by the prompt's edges, between each concept's representative nodes."""
    planted: dict[int, dict[int, float]] = defaultdict(dict)
    for source_name, target_name, sign in spec.edges:
        sources = concept_nodes.get(source_name)
        targets = [answer] if target_name == "@answer" else concept_nodes.get(target_name)
        if not sources or not targets:
            continue
        # Prefer the representatives (lowest layer of each concept), else any valid pair.
        pair = (sources[0], targets[0])
        if not _valid_edge(layers, positions, *pair):
            pair = next(((s, t) for s in sources for t in reversed(targets)
                         if _valid_edge(layers, positions, s, t)), None)
        if pair is not None:
            planted[pair[1]][pair[0]] = linker.planted_weight(pair[0], pair[1], sign)
    two_hop = None
    if spec.two_hop is not None:
        entity, middle = (concept_nodes.get(name) for name in spec.two_hop)
        if entity and middle:
            e, m = entity[0], middle[0]
            if m in planted and e in planted[m] and e in planted.get(answer, {}) and m in planted.get(answer, {}):
                two_hop = (e, m)
    return planted, two_hop


def _node_dicts(builder: _Builder, model: _Model, features: Sequence[tuple[int, int, int]],
                errors: Sequence[tuple[int, int]], logits: Sequence[tuple[str, float]], ids: Sequence[str],
                out_abs: Sequence[float], labelled: bool) -> list[dict[str, Any]]:
    rng, tokens = builder.rng, builder.tokens
    n_inner = len(features) + len(errors)
    # Influence is pruning's cumulative-influence rank: the node with the largest outgoing
    # weights gets the smallest value. Features and errors are ranked together.
    inner_rank = _ranks(out_abs[:n_inner])
    e_rank = _ranks(out_abs[n_inner:n_inner + len(tokens)])

    def influence(kind: str, rank: int, n: int) -> float:
        return _f32(model.influence[kind]((rank + 0.5) / n))

    nodes = []
    for node, (layer, pos, index) in enumerate(features):
        clerp = _feature_label(builder, layer, index) if labelled else ""
        nodes.append(_node(ids[node], cantor_pair(layer, index), str(layer), pos, FEATURE, f"{layer}_{index}-0",
                           clerp, influence("feature", inner_rank[node], n_inner),
                           _bf16(model.activation(rng.random()))))
    for node, (layer, pos) in enumerate(errors, start=len(features)):
        clerp = f'Err: mlp " {tokens[pos]}"' if labelled else ""
        nodes.append(_node(ids[node], -1, str(layer), pos, ERROR, f"{layer}_{pos}-0", clerp,
                           influence("error", inner_rank[node], n_inner), None))
    for pos, tok in enumerate(tokens):
        clerp = f'Emb: " {tok}"' if labelled else ""
        nodes.append(_node(ids[n_inner + pos], pos, "E", pos, EMBEDDING, f"E_{token_id(tok)}-{pos}", clerp,
                           influence("embedding", e_rank[pos], len(tokens)), None))
    nodes.extend(_logit_node(tok, prob, len(tokens) - 1, rank == 0) for rank, (tok, prob) in enumerate(logits))
    return nodes


def _ranks(scores: Sequence[float]) -> list[int]:
    """The rank of each score, 0 for the largest (ties by position)."""
    rank = [0] * len(scores)
    for r, i in enumerate(sorted(range(len(scores)), key=lambda i: -scores[i])):
        rank[i] = r
    return rank


def _logit_node(token: str, prob: float, pos: int, is_target: bool) -> dict[str, Any]:
    vocab = token_id(token)
    node = _node(f"{LOGIT_LAYER}_{vocab}_{pos}", vocab, LOGIT_LAYER, pos, LOGIT, f"L_{vocab}-{pos}",
                 f'Output "{token}" (p={prob:.3f})', None, None)
    node["token_prob"] = prob
    node["is_target_logit"] = is_target
    return node


def _feature_label(builder: _Builder, layer: int, index: int) -> str:
    owner = builder.owner.get((layer, index))
    if owner is not None:
        return concept_label(owner)
    token = builder.token_of.get((layer, index))
    return token if token is not None else _Universe.generic_label(layer, index)


def _node(node_id: str, feature: int, layer: str, pos: int, kind: str, js_id: str, clerp: str,
          influence: float | None, activation: float | None) -> dict[str, Any]:
    # Field order of the real Neuronpedia files.
    return {"node_id": node_id, "feature": feature, "layer": layer, "ctx_idx": pos, "feature_type": kind,
            "token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0,
            "jsNodeId": js_id, "clerp": clerp, "influence": influence, "activation": activation}


def _qparams(concept_nodes: Mapping[str, list[int]], ids: Sequence[str], answer: int,
             with_supernodes: bool) -> dict[str, Any]:
    """A saved view; with supernodes, the prompt's concepts grouped as a labeller would."""
    supernodes: list[list[str]] = []
    if with_supernodes:
        for name, nodes in concept_nodes.items():
            if len(supernodes) == 6:
                break
            supernodes.append([concept_label(name), *(ids[n] for n in nodes[:4])])
    pinned = [ids[answer], *(i for sn in supernodes for i in sn[1:])] if supernodes else []
    return {"pinnedIds": pinned, "supernodes": supernodes, "linkType": "both", "clickedId": "", "sg_pos": ""}


def _metadata(slug: str, tokens: Sequence[str], create_time_ms: int) -> dict[str, Any]:
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


def generate_graph(rng: random.Random, prompt: PromptSpec | None = None, *, seed: int = 0,
                   core: Mapping[int, Sequence[int]] | None = None, shared: Iterable[str] = (),
                   slug: str | None = None, labelled: bool | None = None) -> dict[str, Any]:
    """One synthetic graph as a dict in the file format (``metadata``, ``qParams``, ``nodes``, ``links``).

    ``rng`` drives everything specific to this graph; ``seed`` names the feature vocabulary
    (concepts, token features, background) shared with the other graphs of a corpus.
    ``prompt`` defaults to a random English prompt of the catalogue. ``core`` maps a layer to
    feature indices that must be active (a family's planted core); concepts named in ``shared``
    are only present through ``core`` (unless a planted edge needs them). ``labelled`` gives
    features, errors and embeddings clerps (default: drawn, one graph in four).
    """
    spec = prompt if prompt is not None else sample_prompt(rng)
    if labelled is None:
        labelled = rng.random() < 0.25
    slug = slug or f"{SLUG_PREFIX}{_slugify(spec.meaning)}-{rng.randrange(10**6):06d}"
    graph = _build_graph(rng, spec, _universe(seed), _default_model(), core or {}, frozenset(shared), slug,
                         labelled, labelled and rng.random() < 0.5, _create_time(rng))
    return graph.as_dict()


def _create_time(rng: random.Random) -> int:
    return 1_750_000_000_000 + rng.randrange(20_000_000_000)


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "graph"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _write_graph(graph: _Graph, fh: TextIO) -> None:
    """The same text as ``_dumps(graph.as_dict())``, without building the link dicts."""
    fh.write('{"metadata":' + _dumps(graph.metadata) + ',"qParams":' + _dumps(graph.qparams) + ',"nodes":[')
    fh.write(",".join(_dumps(n) for n in graph.nodes))
    fh.write('],"links":[')
    prefix = [f'{{"source":"{n["node_id"]}","target":"' for n in graph.nodes]
    middle = [f'{n["node_id"]}","weight":' for n in graph.nodes]
    fh.write(",".join(prefix[s] + middle[t] + repr(w) + "}"
                      for s, t, w in zip(graph.sources, graph.targets, graph.weights)))
    fh.write("]}")


def _open_text(path: Path, compress: bool) -> TextIO:
    if compress:
        raw = open(path, "wb")
        # mtime=0 and no file name keep .gz files byte-identical from run to run.
        gz = gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        return _ClosingText(gz, raw)
    return open(path, "w", encoding="utf-8", newline="")


class _ClosingText(io.TextIOWrapper):
    """A text wrapper over a GzipFile that also closes the underlying file."""

    def __init__(self, gz: gzip_module.GzipFile, raw: io.BufferedWriter) -> None:
        super().__init__(gz, encoding="utf-8", newline="")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FamilyInfo:
    """A family of prompts and the features planted in every member (ground truth for tests).

    ``kind`` is ``multilingual`` (one meaning, several languages), ``variant`` (English prompts
    with one word changed) or ``single``. ``profile`` is the per-layer shared fraction the core
    was sized with (empty for ``single``); ``planted`` maps a layer to the feature indices active
    in every member by construction.
    """

    name: str
    kind: str
    core_key: str
    slugs: tuple[str, ...]
    languages: tuple[str, ...]
    meanings: tuple[str, ...]
    profile: tuple[float, ...]
    planted: Mapping[int, frozenset[int]]


@dataclass
class CorpusInfo:
    """What :func:`generate_corpus` wrote: files, counts and the planted ground truth."""

    out_dir: Path
    manifest: Path
    seed: int
    paths: list[Path] = field(default_factory=list)
    n_nodes: int = 0
    n_links: int = 0
    families: list[FamilyInfo] = field(default_factory=list)
    two_hops: list[TwoHopInfo] = field(default_factory=list)
    concepts: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Member:
    spec: PromptSpec
    slug: str
    file_name: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class _FamilyPlan:
    index: int
    name: str
    kind: str
    core_key: str
    members: tuple[_Member, ...]
    profile: tuple[float, ...]
    core: Mapping[int, tuple[int, ...]]
    shared: frozenset[str]


_FAMILY_KIND_WEIGHTS = {"multilingual": 0.5, "variant": 0.35, "single": 0.15}


def _plan_corpus(seed: int, n_graphs: int, languages: Sequence[str], family_size: int, gz: bool) -> list[_FamilyPlan]:
    rng = _seeded(seed, "plan")
    universe = _universe(seed)
    kinds = [k for k in _FAMILY_KIND_WEIGHTS
             if not (k == "multilingual" and len(languages) < 2) and not (k == "variant" and "en" not in languages)]
    plans: list[_FamilyPlan] = []
    made = 0
    while made < n_graphs:
        kind = rng.choices(kinds, weights=[_FAMILY_KIND_WEIGHTS[k] for k in kinds])[0]
        room = n_graphs - made
        if kind == "multilingual":
            specs = _multilingual_specs(rng, languages, min(family_size, len(languages), room))
            key = specs[0].meaning
        elif kind == "variant":
            specs, key = _variant_specs(rng, min(family_size, room))
        else:
            specs = [_single_spec(rng, languages)]
            key = specs[0].meaning
        if len(specs) == 1:
            kind, key = "single", specs[0].meaning
        plans.append(_family_plan(universe, len(plans), kind, key, specs, gz))
        made += len(specs)
    return plans


def _weighted_type(rng: random.Random, types: Sequence[_MeaningType]) -> _MeaningType:
    return rng.choices(types, weights=[_TYPE_WEIGHTS[t.name] for t in types])[0]


def _multilingual_specs(rng: random.Random, languages: Sequence[str], size: int) -> list[PromptSpec]:
    kind = _weighted_type(rng, _MULTILINGUAL_TYPES)
    instance = rng.randrange(kind.size)
    others = [lang for lang in languages if lang != "en"]
    chosen = (["en"] + rng.sample(others, size - 1)) if "en" in languages else rng.sample(list(languages), size)
    return [kind.build(instance, lang) for lang in chosen]


def _variant_specs(rng: random.Random, size: int) -> tuple[list[PromptSpec], str]:
    kind = _weighted_type(rng, [t for t in _MEANING_TYPES if "en" in t.languages])
    instances = rng.sample(range(kind.size), min(size, kind.size))
    specs = [kind.build(i, "en") for i in instances]
    return specs, f"template:{kind.name}"


def _single_spec(rng: random.Random, languages: Sequence[str]) -> PromptSpec:
    language = rng.choice(list(languages))
    types = [t for t in _MEANING_TYPES if language in t.languages]
    kind = _weighted_type(rng, types)
    return kind.build(rng.randrange(kind.size), language)


def _family_plan(universe: _Universe, index: int, kind: str, key: str, specs: Sequence[PromptSpec],
                 gz: bool) -> _FamilyPlan:
    name = f"fam{index:05d}-{kind}-{_slugify(key)}"
    members = []
    suffix = ".json.gz" if gz else ".json"
    for m, spec in enumerate(specs):
        slug = f"{SLUG_PREFIX}{index:05d}-{m}-{spec.language}-{_slugify(spec.meaning)}"
        tags = (kind, *spec.tags, "synthetic")
        members.append(_Member(spec, slug, slug + suffix, tags))
    if kind == "single":
        return _FamilyPlan(index, name, kind, key, tuple(members), (), {}, frozenset())
    profile = MULTILINGUAL_PROFILE if kind == "multilingual" else VARIANT_PROFILE
    shared_names = [n for n, _ in specs[0].concepts if all(n in {c for c, _ in s.concepts} for s in specs)]
    mean_tokens = sum(1 + len(tokenize(s.text)) for s in specs) / len(specs)
    core = _family_core(universe, key, shared_names, profile, mean_tokens)
    return _FamilyPlan(index, name, kind, key, tuple(members), profile, core, frozenset(shared_names))


def _family_core(universe: _Universe, key: str, shared: Sequence[str], profile: Sequence[float],
                 mean_tokens: float) -> dict[int, tuple[int, ...]]:
    """Per layer, the first round(profile[l] * expected features at l) of the family's ordered list:
    the shared concepts' features (round robin), then features specific to the family's key."""
    fractions = REAL_STATS["feature_layer_fraction"]
    per_token = REAL_STATS["features_per_token"]["mean"]
    by_layer: dict[int, list[list[int]]] = defaultdict(list)
    for name in shared:
        per_layer: dict[int, list[int]] = defaultdict(list)
        for layer, index in universe.concept(name):
            per_layer[layer].append(index)
        for layer, indices in per_layer.items():
            by_layer[layer].append(indices)
    core: dict[int, tuple[int, ...]] = {}
    for layer in range(N_LAYERS):
        size = round(profile[layer] * mean_tokens * per_token * fractions[layer])
        if size <= 0:
            continue
        ordered = list(dict.fromkeys(i for group in _round_robin(by_layer.get(layer, [])) for i in group))
        rng = _seeded(universe.seed, "core", key, layer)
        while len(ordered) < size:
            index = rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER)
            if index not in ordered:
                ordered.append(index)
        core[layer] = tuple(ordered[:size])
    return core


def _round_robin(groups: Sequence[Sequence[int]]) -> Iterator[tuple[int, ...]]:
    for depth in range(max((len(g) for g in groups), default=0)):
        yield tuple(g[depth] for g in groups if depth < len(g))


@dataclass(frozen=True)
class _MemberResult:
    path: Path
    n_nodes: int
    n_links: int
    two_hop: TwoHopInfo | None
    features: Mapping[int, frozenset[int]]


def _generate_member(seed: int, plan: _FamilyPlan, member_index: int, out_dir: Path, gz: bool) -> _MemberResult:
    member = plan.members[member_index]
    rng = _seeded(seed, "graph", member.slug)
    labelled = rng.random() < 0.25
    graph = _build_graph(rng, member.spec, _universe(seed), _default_model(), plan.core, plan.shared,
                         member.slug, labelled, labelled and rng.random() < 0.5, _create_time(rng))
    path = out_dir / member.file_name
    with _open_text(path, gz) as fh:
        _write_graph(graph, fh)
    features: dict[int, set[int]] = defaultdict(set)
    for node in graph.nodes:
        if node["feature_type"] == FEATURE:
            layer, index = cantor_unpair(node["feature"])
            features[layer].add(index)
    return _MemberResult(path, len(graph.nodes), len(graph.sources), graph.two_hop,
                         {l: frozenset(v) for l, v in features.items()})


def _generate_family(args: tuple[int, _FamilyPlan, Path, bool]) -> list[_MemberResult]:
    seed, plan, out_dir, gz = args
    return [_generate_member(seed, plan, m, out_dir, gz) for m in range(len(plan.members))]


def generate_corpus(out_dir: Path, n_graphs: int, seed: int = 0,
                    languages: Sequence[str] = SUPPORTED_LANGUAGES, family_size: int = 4,
                    gzip: bool = False, workers: int = 1) -> CorpusInfo:
    """Write ``n_graphs`` synthetic graph files and ``manifest.csv`` into ``out_dir``.

    Files are ``<slug>.json`` (``.json.gz`` with ``gzip``). The manifest has columns
    ``path,family,language,tags`` (path relative to ``out_dir``; tags separated by ``;``).
    Families mix ``multilingual`` members (up to ``family_size`` of ``languages``), English
    ``variant`` members and ``single`` prompts. ``workers`` > 1 spreads families over processes;
    the bytes written do not depend on it. The result carries the planted ground truth.
    """
    languages = tuple(dict.fromkeys(languages))
    unknown = [lang for lang in languages if lang not in SUPPORTED_LANGUAGES]
    if unknown or not languages:
        raise ValueError(f"unsupported languages {unknown}; choose from {SUPPORTED_LANGUAGES}")
    if n_graphs < 0 or family_size < 1:
        raise ValueError("n_graphs must be >= 0 and family_size >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = _plan_corpus(seed, n_graphs, languages, family_size, gzip)
    tasks = [(seed, plan, out_dir, gzip) for plan in plans]
    if workers > 1 and len(plans) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_generate_family, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
    else:
        results = [_generate_family(t) for t in tasks]
    info = CorpusInfo(out_dir=out_dir, manifest=out_dir / "manifest.csv", seed=seed)
    universe = _universe(seed)
    for plan, members in zip(plans, results):
        info.families.append(_family_info(plan, members))
        for member, result in zip(plan.members, members):
            info.paths.append(result.path)
            info.n_nodes += result.n_nodes
            info.n_links += result.n_links
            if result.two_hop is not None:
                info.two_hops.append(result.two_hop)
            for name, _ in member.spec.concepts:
                info.concepts.setdefault(name, universe.concept(name))
    _write_manifest(info.manifest, plans)
    return info


def _family_info(plan: _FamilyPlan, members: Sequence[_MemberResult]) -> FamilyInfo:
    planted: dict[int, frozenset[int]] = {}
    if plan.kind != "single":
        for layer in range(N_LAYERS):
            common = frozenset.intersection(*(m.features.get(layer, frozenset()) for m in members))
            core = frozenset(plan.core.get(layer, ()))
            if core:
                if not core <= common:  # planted in every member by construction
                    raise RuntimeError(f"{plan.name}: core of layer {layer} missing from a member")
                planted[layer] = core
    return FamilyInfo(name=plan.name, kind=plan.kind, core_key=plan.core_key,
                      slugs=tuple(m.slug for m in plan.members),
                      languages=tuple(m.spec.language for m in plan.members),
                      meanings=tuple(m.spec.meaning for m in plan.members),
                      profile=plan.profile, planted=planted)


def _write_manifest(path: Path, plans: Sequence[_FamilyPlan]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "family", "language", "tags"])
        for plan in plans:
            for member in plan.members:
                writer.writerow([member.file_name, plan.name, member.spec.language, ";".join(member.tags)])


# --------------------------------------------------------------------------------------------
# One very large (unpruned-like) graph, streamed
# --------------------------------------------------------------------------------------------

_FILLER_WORDS = ("the", "report", "of", "a", "river", "city", "was", "written", "in", "and", "by",
                 "many", "people", "who", "lived", "near", "old", "bridge", "after", "war", "their",
                 "children", "learned", "to", "read", "from", "books", "that", "were", "kept", "at",
                 "school", "during", "long", "winter", "nights")
_LINK_FLUSH = 16_384


def write_large_graph(path: Path, n_links: int, n_nodes: int, seed: int = 0) -> Path:
    """Stream one large synthetic graph with exactly ``n_links`` links and ``n_nodes`` nodes.

    Shaped like an unpruned graph (every error node of a long prompt, thousands of features,
    dense links): e.g. 16M links and 14k nodes make a ~1 GB file. Nodes are kept in memory,
    links are drawn target by target and written as they come, so memory stays flat whatever
    ``n_links``. A ``.gz`` suffix compresses. Raises ValueError when the nodes cannot carry that
    many distinct links.
    """
    path = Path(path)
    rng = _seeded(seed, "large", n_links, n_nodes)
    model = _default_model()
    layout = _large_layout(rng, model, n_nodes)
    kinds, layers, positions = layout.kinds, layout.layers, layout.positions
    sources_by_layer = _sources_by_layer(kinds, layers, positions)
    targets = [n for n, kind in enumerate(kinds) if kind in "FL"]
    caps = [_capacity(sources_by_layer, layers[t], positions[t]) for t in targets]
    wants = [math.exp(rng.gauss(0.0, 0.8)) * (4.0 if kinds[t] == "L" else 1.0) for t in targets]
    quota = _allocate(n_links, wants, caps)
    slug = f"{SLUG_PREFIX}large-{seed}-{n_links}"
    with _open_text(path, path.suffix == ".gz") as fh:
        fh.write('{"metadata":' + _dumps(_metadata(slug, layout.tokens, _create_time(rng))) + ',"qParams":'
                 + _dumps(_qparams({}, layout.ids, 0, False)) + ',"nodes":[')
        fh.write(",".join(_dumps(n) for n in _large_nodes(rng, model, layout)))
        fh.write('],"links":[')
        _stream_links(fh, rng, model, layout, targets, quota, sources_by_layer)
        fh.write("]}")
    return path


@dataclass
class _LargeLayout:
    tokens: list[str]
    features: list[tuple[int, int, int]]
    errors: list[tuple[int, int]]
    logit_tokens: list[str]
    kinds: list[str]
    layers: list[int]
    positions: list[int]
    ids: list[str]


def _large_layout(rng: random.Random, model: _Model, n_nodes: int) -> _LargeLayout:
    """The nodes of a large graph: a long prompt, all its error nodes, features to fill n_nodes."""
    n_tokens = _large_prompt_length(n_nodes)
    words = [rng.choice(_FILLER_WORDS) for _ in range(n_tokens - 1)]
    tokens = [BOS, words[0].capitalize(), *(" " + w for w in words[1:])]
    last = n_tokens - 1
    logit_tokens = [f" {w}" for w in _FILLER_WORDS[:10]]
    errors = [(layer, pos) for layer in range(N_LAYERS) for pos in range(1, n_tokens)]
    n_features = n_nodes - len(errors) - n_tokens - len(logit_tokens)
    if n_features < N_LAYERS:
        raise ValueError(f"n_nodes={n_nodes} is too small for a large graph "
                         f"(need >= {n_nodes - n_features + N_LAYERS})")
    features = _large_features(rng, model, n_features, last)
    n_logits = len(logit_tokens)
    return _LargeLayout(
        tokens=tokens, features=features, errors=errors, logit_tokens=logit_tokens,
        kinds=["F"] * len(features) + ["R"] * len(errors) + ["E"] * n_tokens + ["L"] * n_logits,
        layers=[f[0] for f in features] + [e[0] for e in errors] + [-1] * n_tokens + [N_LAYERS + 1] * n_logits,
        positions=[f[1] for f in features] + [e[1] for e in errors] + list(range(n_tokens)) + [last] * n_logits,
        ids=([f"{l}_{i}_{p}" for l, p, i in features] + [f"0_{l}_{p}" for l, p in errors]
             + [f"E_{token_id(t)}_{p}" for p, t in enumerate(tokens)]
             + [f"{LOGIT_LAYER}_{token_id(t)}_{last}" for t in logit_tokens]))


def _large_prompt_length(n_nodes: int) -> int:
    # About 15% of an unpruned graph's nodes are error nodes (26 per token).
    return max(4, min(256, round(0.15 * n_nodes / N_LAYERS)))


def _large_features(rng: random.Random, model: _Model, n: int, last: int) -> list[tuple[int, int, int]]:
    seen: set[tuple[int, int, int]] = set()
    layers = rng.choices(range(N_LAYERS), cum_weights=model.layer_cum, k=n)
    for layer in layers:
        while True:
            pos = last if rng.random() < model.last_fraction[layer] else rng.randrange(1, last + 1)
            key = (layer, pos, rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER))
            if key not in seen:
                seen.add(key)
                break
    return sorted(seen)


def _sources_by_layer(kinds: Sequence[str], layers: Sequence[int], positions: Sequence[int]
                      ) -> list[tuple[list[int], list[int]]]:
    """For each target layer 0..26: the possible sources (embeddings and lower-layer features and
    errors) sorted by position, as (positions, node indices)."""
    out = []
    pool = sorted((positions[n], n) for n in range(len(kinds)) if kinds[n] == "E")
    by_layer: dict[int, list[int]] = defaultdict(list)
    for n, kind in enumerate(kinds):
        if kind in "FR":
            by_layer[layers[n]].append(n)
    for layer in range(N_LAYERS + 2):
        out.append(([p for p, _ in pool], [n for _, n in pool]))
        pool = sorted(pool + [(positions[n], n) for n in by_layer.get(layer, ())])
    return out


def _capacity(sources_by_layer: Sequence[tuple[list[int], list[int]]], layer: int, pos: int) -> int:
    pos_list, _ = sources_by_layer[layer]
    return bisect.bisect_right(pos_list, pos)


def _allocate(total: int, wants: Sequence[float], caps: Sequence[int]) -> list[int]:
    """Integers proportional to ``wants``, each at most its cap, summing to ``total`` (water-filling)."""
    if total > sum(caps):
        raise ValueError(f"{total} links do not fit: at most {sum(caps)} distinct links for these nodes")
    quota = [0] * len(wants)
    order = sorted(range(len(wants)), key=lambda i: caps[i] / wants[i])
    remaining, weight = total, sum(wants)
    start = 0
    for start, i in enumerate(order):
        if remaining * wants[i] / weight < caps[i]:
            break
        quota[i] = caps[i]
        remaining -= caps[i]
        weight -= wants[i]
    else:
        return quota
    rest = order[start:]
    shares = [(remaining * wants[i] / weight, i) for i in rest]
    for share, i in shares:
        quota[i] = int(share)
    left = remaining - sum(quota[i] for i in rest)
    for _, i in sorted(shares, key=lambda s: (int(s[0]) - s[0], s[1]))[:left]:
        quota[i] += 1
    return quota


def _large_nodes(rng: random.Random, model: _Model, layout: _LargeLayout) -> Iterator[dict[str, Any]]:
    infl = model.influence
    for node, (layer, pos, index) in enumerate(layout.features):
        yield _node(layout.ids[node], cantor_pair(layer, index), str(layer), pos, FEATURE, f"{layer}_{index}-0", "",
                    _f32(infl["feature"](rng.random())), _bf16(model.activation(rng.random())))
    for layer, pos in layout.errors:
        yield _node(f"0_{layer}_{pos}", -1, str(layer), pos, ERROR, f"{layer}_{pos}-0", "",
                    _f32(infl["error"](rng.random())), None)
    for pos, tok in enumerate(layout.tokens):
        yield _node(f"E_{token_id(tok)}_{pos}", pos, "E", pos, EMBEDDING, f"E_{token_id(tok)}-{pos}", "",
                    _f32(infl["embedding"](rng.random())), None)
    for rank, tok in enumerate(layout.logit_tokens):
        yield _logit_node(tok, 0.5 ** (rank + 1), len(layout.tokens) - 1, rank == 0)


def _stream_links(fh: TextIO, rng: random.Random, model: _Model, layout: _LargeLayout, targets: Sequence[int],
                  quota: Sequence[int], sources_by_layer: Sequence[tuple[list[int], list[int]]]) -> None:
    """Write the links target by target, flushing every _LINK_FLUSH links."""
    kinds, ids, layers, positions = layout.kinds, layout.ids, layout.layers, layout.positions
    prefix = [f'{{"source":"{i}","target":"' for i in ids]
    pools = model.weight_texts()
    bits = _WEIGHT_POOL_BITS
    getrandbits = rng.getrandbits
    buffer: list[str] = []
    first = True
    for target, k in zip(targets, quota):
        if k == 0:
            continue
        _, nodes = sources_by_layer[layers[target]]
        cap = _capacity(sources_by_layer, layers[target], positions[target])
        picked = range(cap) if k == cap else rng.sample(range(cap), k)
        middle = f'{ids[target]}","weight":'
        kind_t = kinds[target]
        for source in sorted(nodes[j] for j in picked):
            pool = pools[kinds[source] + kind_t]
            buffer.append(prefix[source] + middle + pool[getrandbits(bits)])
        if len(buffer) >= _LINK_FLUSH:
            fh.write(("" if first else ",") + ",".join(buffer))
            first = False
            buffer.clear()
    if buffer:
        fh.write(("" if first else ",") + ",".join(buffer))
