"""The statistics the generator imitates: measured on real graph files (:func:`calibrate`) and kept
as :data:`REAL_STATS`."""

from __future__ import annotations

import gzip as gzip_module
import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from synth.fileformat import KIND_LETTER, KIND_NAME, LINK_KINDS, N_LAYERS
from synth.sampling import quantiles

# Measured by `calibrate()` on the eight schema-1 graphs of gemma-2-2b with the 2.5M CLT
# (shared/data/graphs/0[2-8]*_schema1.json and 10_*_schema1.json), with
#   python -c "import glob,json; from synth import calibrate;
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
            k = KIND_LETTER[n["feature_type"]]
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
                self.influence[KIND_NAME[k]].append(float(n["influence"]))
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
            pair = KIND_LETTER[s["feature_type"]] + KIND_LETTER[t["feature_type"]]
            w = float(link["weight"])
            self.pair_count[pair] += 1
            self.pair_positive[pair] += w > 0
            self.pair_same[pair] += s["ctx_idx"] == t["ctx_idx"]
            self.abs_weights[pair].append(abs(w))
            self.abs_weights["all"].append(abs(w))
            in_count[link["target"]] += 1
        for n in nodes:
            k = KIND_LETTER[n["feature_type"]]
            if k in "FL":
                self.in_degree[KIND_NAME[k]].append(in_count[n["node_id"]])

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
            "abs_weight_quantiles": {p: quantiles(self.abs_weights[p]) for p in (*LINK_KINDS, "all")},
            "activation_quantiles": quantiles(self.activations),
            "influence_quantiles": {k: quantiles(v) for k, v in sorted(self.influence.items())},
            "in_degree_quantiles": {k: [float(x) for x in quantiles(v)] for k, v in sorted(self.in_degree.items())},
            "feature_layer_fraction": [c / max(1, sum(self.layer_count)) for c in self.layer_count],
            "feature_last_position_fraction": [
                last / count if count else 1.0 for last, count in zip(self.layer_last, self.layer_count)],
            "error_rate_last": [c / n for c in self.err_last],
            "error_rate_other": [c / max(1, self.other_slots) for c in self.err_other],
            "feature_multi_position_fraction": self.multi_position / max(1, self.distinct_features),
            "target_logit_prob_quantiles": quantiles(self.target_probs),
            "logit_prob_mass": sum(self.logit_mass) / max(1, len(self.logit_mass)),
        }


def _sd(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
