"""Small numeric helpers of the generator: bf16 and float32 rounding, quantiles, seeded generators."""

from __future__ import annotations

import bisect
import math
import random
import struct
from typing import Sequence

QUANTILE_POINTS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


def bf16(x: float) -> float:
    """Round to bfloat16 (8 significant bits), as the weights of Neuronpedia-made graphs are."""
    if x == 0.0 or not math.isfinite(x):
        return x
    m, e = math.frexp(x)
    return math.ldexp(round(m * 256.0) / 256.0, e)


_F32 = struct.Struct("<f")


def f32(x: float) -> float:
    """Round to float32, as the influences of the real files are."""
    return _F32.unpack(_F32.pack(x))[0]


def quantiles(values: Sequence[float], points: Sequence[float] = QUANTILE_POINTS) -> list[float]:
    """The values at ``points`` of the sorted ``values`` (lower element; zeros when empty)."""
    xs = sorted(values)
    if not xs:
        return [0.0] * len(points)
    n = len(xs)
    return [xs[min(n - 1, int(p * n))] for p in points]


class InverseCdf:
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


def cumulative(xs: Sequence[float]) -> list[float]:
    """Running sums, as random.choices takes for ``cum_weights``."""
    out, total = [], 0.0
    for x in xs:
        total += x
        out.append(total)
    return out


def seeded(*parts: object) -> random.Random:
    """An independent generator for a named purpose (str seeds go through SHA-512: stable)."""
    return random.Random("|".join(str(p) for p in parts))
