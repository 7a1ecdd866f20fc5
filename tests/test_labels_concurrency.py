"""Labelling under parallel writers, in real processes, on SQLite and PostgreSQL: two editors on
one version give one conflict; twenty voters give exactly twenty votes."""

from __future__ import annotations

import multiprocessing
from typing import Any, Callable

import pytest
from sqlalchemy import func, select

from ingest.records import FeatureKey
from kb import labels as api
from kb.api import KB
from kb.labels.accounts import local_actor
from schema.sql import label_versions, label_votes

# real parallel processes on both SQL databases
pytestmark = pytest.mark.slow

SQLS = ["sqlite", "postgres"]
TEXAS = FeatureKey("gemma-2-2b/clt-hp", 20, 1234)
# fork: the children start with the modules loaded (spawning twenty interpreters that each
# import SQLAlchemy and pandas takes minutes on a busy machine); each child opens its own engine
_ctx = multiprocessing.get_context("fork")


def _in_process(env: dict[str, str], barrier: Any, results: Any, action: str, label_id: int, who: str, payload: str) -> None:
    """One writer: open the knowledge base, wait for the others, write once, report."""
    from kb.config import Config
    from kb.core import Core
    from kb.errors import EditConflict

    core = Core.open(Config.load(env=env))
    try:
        barrier.wait(timeout=300)
        if action == "edit":
            api.edit(core, local_actor(who), label_id, payload, base_version=1)
        else:
            api.vote(core, local_actor(who), label_id, reason=payload)
        results.put((who, "ok", ""))
    except EditConflict as exc:
        results.put((who, "conflict", exc.current_text))
    except Exception as exc:  # reported to the test, which fails on it
        results.put((who, "error", repr(exc)))
    finally:
        core.close()


def _run_all(kb: KB, env: dict[str, str], jobs: list[tuple[str, int, str, str]]) -> list[tuple[str, str, str]]:
    kb.engine.dispose()  # no pooled connection of the parent may be inherited (and closed) by a child
    barrier = _ctx.Barrier(len(jobs))
    results = _ctx.Queue()
    procs = [_ctx.Process(target=_in_process, args=(env, barrier, results, *job)) for job in jobs]
    for p in procs:
        p.start()
    out = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


@pytest.mark.parametrize("sql", SQLS)
def test_two_parallel_editors_on_one_version_give_one_conflict(sql: str, kb_env: Callable[..., dict[str, str]], make_kb: Callable[..., KB]) -> None:
    env = kb_env(sql, "embedded")
    kb = make_kb(sql, env=env)
    label_id = api.add(kb, local_actor("ann"), TEXAS, "Texas").id
    out = _run_all(kb, env, [("edit", label_id, "ed", "Texas, by ed"), ("edit", label_id, "flo", "Texas, by flo")])
    outcomes = sorted(kind for _, kind, _ in out)
    assert outcomes == ["conflict", "ok"], out
    winner = next(who for who, kind, _ in out if kind == "ok")
    conflict_text = next(text for _, kind, text in out if kind == "conflict")
    assert conflict_text == f"Texas, by {winner}"  # the loser sees the winner's text
    current = api.label(kb, label_id)
    assert (current["text"], current["version"], current["edited_by"]) == (f"Texas, by {winner}", 2, winner)
    with kb.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(label_versions).where(label_versions.c.label_id == label_id)).scalar_one() == 2


@pytest.mark.parametrize("sql", SQLS)
def test_twenty_parallel_voters_give_exactly_twenty_votes(sql: str, kb_env: Callable[..., dict[str, str]], make_kb: Callable[..., KB]) -> None:
    env = kb_env(sql, "embedded")
    kb = make_kb(sql, env=env)
    label_id = api.add(kb, local_actor("ann"), TEXAS, "Texas").id
    jobs = [("vote", label_id, f"voter{i:02d}", "first") for i in range(20)]
    jobs.append(("vote", label_id, "voter00", "again"))  # a repeat vote, at the same time
    out = _run_all(kb, env, jobs)
    assert all(kind == "ok" for _, kind, _ in out), out
    with kb.engine.connect() as conn:
        rows = conn.execute(select(label_votes.c.voter, label_votes.c.value).where(label_votes.c.label_id == label_id)).all()
    assert sorted(voter for voter, _ in rows) == [f"voter{i:02d}" for i in range(20)]
    current = api.label(kb, label_id)
    assert (current["up_votes"], current["down_votes"], current["status"]) == (20, 0, "accepted")
