"""The ingest benchmarks' own arithmetic: the floor's parts, its budget, the CPU it reads."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from bench.ingest import client_cpu_seconds, cpu_seconds
from bench.ingest_floor import budget, floor
from kb.errors import CircuitKBError
from synth import generate_corpus


def test_the_floor_writes_only_the_parts_asked_for(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown parts"):
        floor(2, 10, 5, False, parts=("nodes",))
    for parts, expected in ((("links",), (150, 0)), (("edges",), (0, 60)), (("links", "edges"), (150, 60))):
        folder = tmp_path / "-".join(parts)
        folder.mkdir()
        assert floor(3, 50, 20, False, per_transaction=2, parts=parts, keep_in=folder) > 0.0
        with sqlite3.connect(folder / "floor.sqlite") as db:
            written = tuple(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("links", "edges"))
            totals = db.execute("SELECT count(*), coalesce(sum(n), 0) FROM totals").fetchone()
        assert written == expected
        # each edge of each graph is counted once in its totals (random edges may repeat across graphs)
        assert totals[1] == expected[1] and (totals[0] > 0) == (expected[1] > 0)


def test_the_budget_sums_each_part_and_divides_the_cores_by_it(tmp_path: Path) -> None:
    generate_corpus(tmp_path / "corpus", 2, seed=3)
    lines = budget(tmp_path / "corpus", graphs=2, links=200, edges=50, per_transaction=1, cores=2)
    costs = [_number(r": ([\d.]+) seconds of one core", line) for line in lines[:3]]
    assert [line.split(":")[0] for line in lines[:3]] == ["parse (read_graph)", "link rows", "feature edge rows and their totals"]
    assert all(cost > 0.0 for cost in costs)
    summed = _number(r"together ([\d.]+)", lines[3])
    assert summed == pytest.approx(sum(costs), abs=0.02)
    ceiling = _number(r"at most ([\d,]+) links/s", lines[3])
    assert ceiling == pytest.approx(2 / summed * 1e6, rel=0.01)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CircuitKBError, match="holds no .json or .json.gz file"):
        budget(tmp_path / "empty", graphs=2, links=10, edges=5, per_transaction=1, cores=2)


def test_cpu_seconds_count_the_work_a_process_does() -> None:
    before, client_before = cpu_seconds(os.getpid()), client_cpu_seconds()
    started = time.process_time()
    while time.process_time() - started < 0.3:
        sum(range(10_000))
    # the kernel counts in clock ticks (1/100 s)
    assert cpu_seconds(os.getpid()) - before >= 0.25
    assert client_cpu_seconds() - client_before >= 0.25


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in {text!r}"
    return float(found.group(1).replace(",", ""))
