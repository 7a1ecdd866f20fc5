"""Runs of equal values in an array whose equal values stand together (sorted, or grouped):
where each run begins and ends. Grouping by sorting, then reducing each run, is how the
questions over many graphs fold rows in numpy."""

from __future__ import annotations

import numpy as np


def runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops) of each run of equal consecutive ``values``, as int64 indexes: run ``i``
    is ``values[starts[i]:stops[i]]``. None for an empty array."""
    if len(values) == 0:
        none = np.empty(0, dtype=np.int64)
        return none, none
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return starts, np.r_[starts[1:], len(values)].astype(np.int64)


def first_of_runs(values: np.ndarray, n: int) -> np.ndarray:
    """Whether each of ``values`` is among the first ``n`` of its run (a boolean mask): with rows
    grouped by graph and ranked within it, each graph's best ``n``."""
    starts, stops = runs(values)
    return np.arange(len(values)) - np.repeat(starts, stops - starts) < n
