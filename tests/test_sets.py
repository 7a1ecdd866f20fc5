"""Saved sets of graphs: listed, shown, deleted (a labeller's act once there are accounts), the
graphs removed since marked, and the commands `circuitkb graphs` and `circuitkb sets`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kb.api import KB
from kb.cli import main
from kb.errors import CircuitKBError, NotFoundError, PermissionDenied
from kb.overview import kb_version
from kb.selection import Selection
from kb.sets import saved_set_names, saved_sets
from schema.sql import audit_log
from tests.builders import small_graph, write
from tests.test_labels import make_team

SQLS = ["sqlite", "postgres"]


def three_graphs(kb: KB, folder: Path) -> None:
    paths = [write(folder / f"{slug}.json", small_graph(slug, prompt)) for slug, prompt in (("a", "<bos>one"), ("b", "<bos>two"), ("c", "<bos>three"))]
    assert not kb.ingest(paths).failed


@pytest.mark.parametrize("sql", SQLS)
def test_sets_are_listed_with_the_graphs_removed_since_and_deleted_by_a_labeller(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    three_graphs(kb, tmp_path)
    assert saved_sets(kb) == []
    for bad in ("", "   ", "two\nlines", "x" * 201):
        with pytest.raises(CircuitKBError, match="a saved set's name is 1 to 200 characters without control characters"):
            kb.save_set(bad, Selection())
    before = kb_version(kb)
    kb.save_set("pair", Selection(slugs=("a", "b")))
    kb.save_set("all", Selection())
    after_save = kb_version(kb)
    assert after_save != before  # the app's caches see a new set at once
    listed = saved_sets(kb)
    assert saved_set_names(kb) == ["all", "pair"]
    assert [(s.name, s.slugs, s.missing) for s in listed] == [("all", ("a", "b", "c"), ()), ("pair", ("a", "b"), ())]
    assert listed[0].created_at.tzinfo is not None
    kb.save_set("pair", Selection(slugs=("c",)))  # the same name again replaces the set
    assert kb_version(kb) != after_save
    assert saved_sets(kb, "pair")[0].slugs == ("c",)

    kb.remove(["b"])
    (everything,) = saved_sets(kb, "all")
    assert everything.slugs == ("a", "b", "c") and everything.stored == ("a", "c") and everything.missing == ("b",)
    assert everything.as_dict()["missing"] == ["b"]
    assert [g.slug for g in kb.select(Selection(saved_set="all"))] == ["a", "c"]

    team = make_team(kb)
    vic, lin = team["vic"], team["lin"]
    for who, message in ((vic, "needs the labeller role"), (None, "not signed in")):
        with pytest.raises(PermissionDenied, match=message):
            kb.delete_set("pair", who)
    with pytest.raises(PermissionDenied):
        kb.delete_set("no such set", vic)  # a viewer learns nothing about which sets exist by deleting
    assert [s.name for s in saved_sets(kb)] == ["all", "pair"]
    kb.delete_set("pair", lin)
    assert [s.name for s in saved_sets(kb)] == ["all"]
    with pytest.raises(NotFoundError, match="no saved set of graphs called 'pair'"):
        kb.delete_set("pair", lin)
    with pytest.raises(NotFoundError, match="'pair'"):
        saved_sets(kb, "pair")
    assert [g.slug for g in kb.select()] == ["a", "c"]  # deleting a set keeps its graphs
    with kb.engine.connect() as conn:
        deleted = conn.execute(select(audit_log.c.actor, audit_log.c.target).where(audit_log.c.action == "set.delete")).all()
    assert [tuple(r) for r in deleted] == [("lin", "pair")]


def test_the_cli_lists_graphs_and_saves_shows_and_deletes_sets(tmp_path: Path, kb_env: Callable[[str, str], dict[str, str]]) -> None:
    env = kb_env("sqlite", "embedded")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    assert "no graph yet" in run("graphs")
    assert "no saved set yet" in run("sets", "list")
    files = [write(tmp_path / f"{slug}.json", small_graph(slug, f"<bos>prompt {slug}")) for slug in ("g1", "g2", "g3")]
    run("ingest", *map(str, files))

    listed = json.loads(run("graphs", "--json"))
    assert [g["slug"] for g in listed] == ["g1", "g2", "g3"] and listed[0]["prompt"] == "<bos>prompt g1"
    table = run("graphs", "--limit", "2")
    assert "g1" in table and "g2" in table and "g3" not in table and "1 more" in table
    assert [g["slug"] for g in json.loads(run("graphs", "--prompt", "G2", "--json"))] == ["g2"]
    assert "no graph matches" in run("graphs", "--family", "nothing")

    run("sets", "save", "two", "--graph", "g1", "--graph", "g3")
    assert "two" in run("sets", "list") and json.loads(run("sets", "list", "--json"))[0]["slugs"] == ["g1", "g3"]
    run("remove", "g3")
    shown = run("sets", "show", "two")
    assert "two: 1 graph," in shown and "g3  (removed since)" in shown and "g1\n" in shown
    assert json.loads(run("sets", "show", "two", "--json"))["missing"] == ["g3"]
    assert [g["slug"] for g in json.loads(run("graphs", "--set", "two", "--json"))] == ["g1"]
    assert "deleted the saved set 'two'" in run("sets", "delete", "two")
    assert "no saved set of graphs called 'two'" in run("sets", "show", "two", code=2)
    assert "no saved set of graphs called 'two'" in run("sets", "delete", "two", code=2)
