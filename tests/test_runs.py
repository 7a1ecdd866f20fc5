"""Runs of equal values, as the questions fold rows."""

from __future__ import annotations

import numpy as np

from kb.runs import runs


def test_runs_give_where_each_run_of_equal_values_begins_and_ends() -> None:
    starts, stops = runs(np.array([3, 3, 5, 7, 7, 7]))
    assert starts.tolist() == [0, 2, 3] and stops.tolist() == [2, 3, 6]
    starts, stops = runs(np.array([4]))
    assert starts.tolist() == [0] and stops.tolist() == [1]
    starts, stops = runs(np.array([], dtype=np.int64))
    assert len(starts) == len(stops) == 0 and starts.dtype == stops.dtype == np.int64
