"""Collaborative labelling under load: 200 labellers writing labels, edits and votes at once
against PostgreSQL, from a pool of processes.

    python -m bench.labels [--pg-url URL] [--labellers 200] [--workers 8] [--rounds 5]

Without --pg-url a throwaway PostgreSQL is started with scripts/pg.sh (and stopped after). The
bench makes one account per labeller (plus an admin), signs each labeller in once, then runs
every labeller's session as one task of a process pool: per round, add a label to one of a
shared set of features, edit a label someone added (based on the version read just before:
a conflict is counted and retried once on the new version), and vote on three labels (a
labeller may vote on a label again, which replaces the vote). Each task returns what it did;
the final tables are then checked against that: no label, version or vote lost or duplicated,
and every label's stored vote counts equal to the votes cast. Prints, and writes to
bench/results/labels.md, writes/s, latency percentiles per kind of write, conflicts, and the
check.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password"
N_FEATURES = 50
_core: Any = None  # each worker process's knowledge base


def _init_worker(env: dict[str, str]) -> None:
    global _core
    from kb.config import Config
    from kb.core import Core

    _core = Core.open(Config.load(env=env))


def labeller_session(name: str, rounds: int, seed: int) -> dict[str, Any]:
    """One labeller's writes; returns what was written and each write's latency."""
    from ingest.records import FeatureKey
    from kb import labels as api
    from kb.errors import EditConflict
    from kb.labels.accounts import authenticate
    from schema.sql import labels
    from sqlalchemy import select

    rng = random.Random(seed)
    actor = authenticate(_core, name, PASSWORD)
    added: list[int] = []
    edits: Counter[int] = Counter()
    votes: dict[int, int] = {}
    timings: dict[str, list[float]] = {"add": [], "edit": [], "vote": []}
    conflicts = 0
    for round_no in range(rounds):
        feature = FeatureKey("bench/clt", rng.randrange(26), rng.randrange(N_FEATURES))
        started = time.perf_counter()
        ref = api.add(_core, actor, feature, f"{name} round {round_no}", confidence=rng.random())
        timings["add"].append(time.perf_counter() - started)
        added.append(ref.id)
        with _core.engine.connect() as conn:  # ids may have gaps (PostgreSQL sequences): choose among the stored ones
            ids = list(conn.execute(select(labels.c.id)).scalars())
        target = rng.choice(ids)
        for _attempt in range(2):
            base = api.label(_core, target)["version"]
            started = time.perf_counter()
            try:
                api.edit(_core, actor, target, f"edited by {name} in round {round_no}", base)
            except EditConflict:
                conflicts += 1
                timings["edit"].append(time.perf_counter() - started)
                continue
            timings["edit"].append(time.perf_counter() - started)
            edits[target] += 1
            break
        for _ in range(3):
            voted = rng.choice(ids)
            up = rng.random() < 0.7
            started = time.perf_counter()
            api.vote(_core, actor, voted, up=up)
            timings["vote"].append(time.perf_counter() - started)
            votes[voted] = 1 if up else -1
    return {"name": name, "added": added, "edits": dict(edits), "votes": votes, "timings": timings, "conflicts": conflicts}


def check(core: Any, results: list[dict[str, Any]]) -> dict[str, int]:
    """Compare the tables with what the labellers did: lost and duplicated writes (all zero when right)."""
    from schema.sql import label_versions, label_votes, labels
    from sqlalchemy import func, select

    added = [i for r in results for i in r["added"]]
    edits: Counter[int] = Counter()
    cast: dict[tuple[int, str], int] = {}
    for r in results:
        edits.update(r["edits"])
        cast.update({(label_id, r["name"]): value for label_id, value in r["votes"].items()})
    with core.engine.connect() as conn:
        stored_labels = Counter(conn.execute(select(labels.c.id)).scalars())
        versions = dict(conn.execute(select(labels.c.id, labels.c.version)).all())
        version_rows = dict(conn.execute(select(label_versions.c.label_id, func.count()).group_by(label_versions.c.label_id)).all())
        stored_votes = {(row.label_id, row.voter): row.value for row in conn.execute(select(label_votes))}
        counts = {row.id: (row.up_votes, row.down_votes) for row in conn.execute(select(labels.c.id, labels.c.up_votes, labels.c.down_votes))}
    expected_versions = {label_id: 1 + edits[label_id] for label_id in added}
    expected_counts: dict[int, list[int]] = {label_id: [0, 0] for label_id in added}
    for (label_id, _), value in cast.items():
        expected_counts[label_id][0 if value > 0 else 1] += 1
    return {
        "labels_lost": len(set(added) - set(stored_labels)),
        "labels_duplicated": len(stored_labels) - len(set(added)),
        "versions_lost": sum(max(0, v - versions.get(k, 0)) for k, v in expected_versions.items())
        + sum(max(0, v - version_rows.get(k, 0)) for k, v in expected_versions.items()),
        "versions_duplicated": sum(max(0, version_rows.get(k, 0) - v) for k, v in expected_versions.items()),
        "votes_lost": len(set(cast) - set(stored_votes)) + sum(1 for k, v in cast.items() if stored_votes.get(k) not in (None, v)),
        "votes_duplicated": len(set(stored_votes) - set(cast)),
        "vote_counts_wrong": sum(1 for k, v in expected_counts.items() if list(counts.get(k, (None, None))) != v),
    }


def run(pg_admin_url: str, labellers: int, workers: int, rounds: int) -> tuple[dict[str, Any], list[str]]:
    import psycopg

    from kb.config import Config
    from kb.core import Core
    from kb.labels import accounts

    name = f"ck_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {"CIRCUITKB_HOME": tempfile.mkdtemp(prefix="ck-bench-labels-"), "CIRCUITKB_SQL_URL": pg_admin_url.rpartition("/")[0] + "/" + name}
    try:
        core = Core.open(Config.load(env=env))
        accounts.add_user(core, accounts.local_actor(), "admin", PASSWORD, "admin")
        admin = accounts.authenticate(core, "admin", PASSWORD)
        names = [f"labeller{i:03d}" for i in range(labellers)]
        for user in names:
            accounts.add_user(core, admin, user, PASSWORD, "labeller")
        started = time.perf_counter()
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(env,)) as pool:
            results = list(pool.map(labeller_session, names, [rounds] * labellers, range(labellers)))
        wall = time.perf_counter() - started
        verdict = check(core, results)
        core.close()
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    timings = {kind: np.array([t for r in results for t in r["timings"][kind]]) for kind in ("add", "edit", "vote")}
    every = np.concatenate(list(timings.values()))
    summary = {
        "labellers": labellers, "workers": workers, "rounds": rounds, "writes": int(every.size), "seconds": wall,
        "writes_per_s": every.size / wall, "p50_ms": float(np.percentile(every, 50) * 1000), "p95_ms": float(np.percentile(every, 95) * 1000),
        "conflicts": sum(r["conflicts"] for r in results), **verdict,
    }
    lines = [
        "# Collaborative labelling under parallel writers (PostgreSQL)",
        "",
        f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"{labellers} labellers (one account each, signed in once), {workers} worker processes, {rounds} rounds each: "
        "per round one new label, one edit of a random label (compare-and-set on the version read just before; a conflict "
        "is retried once), three votes. Times include the role check in SQL; sign-in (argon2) is not counted.",
        "",
        f"**{summary['writes']:,} writes in {wall:.1f} s: {summary['writes_per_s']:,.0f} writes/s; p50 {summary['p50_ms']:.1f} ms, "
        f"p95 {summary['p95_ms']:.1f} ms** (target p95 < 100 ms).",
        "",
        "| write | count | p50 | p95 | p99 |",
        "|---|---|---|---|---|",
    ]
    for kind, values in timings.items():
        p50, p95, p99 = (np.percentile(values, q) * 1000 for q in (50, 95, 99))
        lines.append(f"| {kind} | {values.size:,} | {p50:.1f} ms | {p95:.1f} ms | {p99:.1f} ms |")
    lines += [
        "",
        f"Edit conflicts (someone saved between the read and the write; refused, then retried): {summary['conflicts']:,}.",
        "",
        "Final tables against what the labellers did (every figure must be 0):",
        "",
        "| check | count |",
        "|---|---|",
        *[f"| {k.replace('_', ' ')} | {v} |" for k, v in verdict.items()],
    ]
    return summary, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", help="PostgreSQL URL of a user who may create databases (default: start one with scripts/pg.sh)")
    parser.add_argument("--labellers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "bench" / "results" / "labels.md")
    args = parser.parse_args()
    server: Path | None = None
    url = args.pg_url
    if url is None:
        server = Path(tempfile.mkdtemp(prefix="ck-bench-pg-"))
        server.chmod(0o755)
        port = str(54000 + os.getpid() % 1000)
        url = subprocess.run([str(ROOT / "scripts" / "pg.sh"), "start", str(server), port], check=True, capture_output=True, text=True).stdout.strip()
    try:
        summary, lines = run(url, args.labellers, args.workers, args.rounds)
    finally:
        if server is not None:
            subprocess.run([str(ROOT / "scripts" / "pg.sh"), "stop", str(server)], check=False, capture_output=True)
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    bad = {k: v for k, v in summary.items() if k.endswith(("_lost", "_duplicated", "_wrong")) and v}
    if bad:
        raise SystemExit(f"lost or duplicated writes: {bad}")


if __name__ == "__main__":
    main()
