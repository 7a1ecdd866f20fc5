"""The samplers the generator draws from, derived from a statistics dict (:data:`REAL_STATS`)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping

from synth.calibration import REAL_STATS
from synth.fileformat import LINK_KINDS
from synth.sampling import InverseCdf, bf16, cumulative, seeded

# Link weights are drawn from a pool of 2**WEIGHT_POOL_BITS values per link kind.
WEIGHT_POOL_BITS = 14


class Model:
    """Samplers derived from a statistics dict (REAL_STATS by default)."""

    def __init__(self, stats: Mapping[str, Any]) -> None:
        self.stats = stats
        self.layer_cum = cumulative(stats["feature_layer_fraction"])
        self.last_fraction = stats["feature_last_position_fraction"]
        self.err_last = stats["error_rate_last"]
        self.err_other = stats["error_rate_other"]
        self.fpt_mean = stats["features_per_token"]["mean"]
        self.fpt_sd = stats["features_per_token"]["sd"]
        self.activation = InverseCdf(stats["activation_quantiles"])
        self.influence = {k: InverseCdf(v, log=False) for k, v in stats["influence_quantiles"].items()}
        self.target_prob = InverseCdf(stats["target_logit_prob_quantiles"], log=False)
        self.logit_mass = stats["logit_prob_mass"]
        self.same_position = stats["same_position_fraction"]
        self.weights = {p: _weight_pool(stats, p) for p in LINK_KINDS}
        self.abs_weight = {p: InverseCdf(stats["abs_weight_quantiles"][p]) for p in LINK_KINDS}
        self._weight_texts: dict[str, list[str]] = {}

    def weight_texts(self) -> dict[str, list[str]]:
        """The weight pools as JSON text closing a link object: '0.25}'."""
        if not self._weight_texts:
            self._weight_texts = {p: [repr(w) + "}" for w in pool] for p, pool in self.weights.items()}
        return self._weight_texts


def _weight_pool(stats: Mapping[str, Any], pair: str) -> list[float]:
    """bf16 link weights drawn from the calibrated sign ratio and |weight| quantiles of a pair.

    Weights are picked from this pool rather than sampled one by one: bf16 has few distinct
    values anyway, and a table lookup is what keeps 10,000 graphs within minutes.
    """
    rng = seeded("weights", pair, json.dumps(stats["abs_weight_quantiles"][pair]))
    icdf = InverseCdf(stats["abs_weight_quantiles"][pair])
    positive = stats["positive_fraction"][pair]
    pool = []
    for _ in range(1 << WEIGHT_POOL_BITS):
        w = bf16(icdf(rng.random()))
        pool.append(w if rng.random() < positive else -w)
    return pool


@lru_cache(maxsize=1)
def default_model() -> Model:
    """The samplers of :data:`REAL_STATS`, built once per process."""
    return Model(REAL_STATS)
