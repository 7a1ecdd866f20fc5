"""Runs of equal values, as the questions fold rows."""

from __future__ import annotations

import numpy as np

from kb.runs import first_of_runs, runs


def test_runs_give_where_each_run_of_equal_values_begins_and_ends() -> None:
    starts, stops = runs(np.array([3, 3, 5, 7, 7, 7]))
    assert starts.tolist() == [0, 2, 3] and stops.tolist() == [2, 3, 6]
    starts, stops = runs(np.array([4]))
    assert starts.tolist() == [0] and stops.tolist() == [1]
    starts, stops = runs(np.array([], dtype=np.int64))
    assert len(starts) == len(stops) == 0 and starts.dtype == stops.dtype == np.int64


def test_first_of_runs_marks_the_first_n_of_each_run() -> None:
    values = np.array([3, 3, 3, 5, 7, 7])
    assert first_of_runs(values, 2).tolist() == [True, True, False, True, True, True]
    assert first_of_runs(values, 1).tolist() == [True, False, False, True, True, False]
    assert first_of_runs(np.array([], dtype=np.int64), 3).tolist() == []
