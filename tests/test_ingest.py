"""Ingest on every SQL database and graph store: counts, round trips, bad files, re-runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kb.aggregates.check import check
from kb.api import KB
from kb.errors import CircuitKBError, NotFoundError
from kb.ingestion import IngestProgress
from schema.sql import descriptions, graph_tags, graphs
from tests.builders import small_graph, variant, write
from tests.conftest import GRAPHS, real_graph
from tests.test_graphfile import raw_feature_keys


@pytest.mark.slow
def test_every_real_graph_stores_with_its_counts_and_exports_equal(kb: KB) -> None:
    report = kb.ingest([GRAPHS])
    assert report.failed == [] and len(report.ingested) == 9
    union: set[tuple[int, int]] = set()
    for path in sorted(GRAPHS.glob("*.json")):
        doc = json.loads(path.read_text())
        row = kb.graph_row(doc["metadata"]["slug"])
        counts = kb.store.counts([row.id])
        assert counts["nodes"] == len(doc["nodes"]) == row.n_nodes
        assert counts["links"] == len(doc["links"]) == row.n_links
        assert counts["features"] == len(raw_feature_keys(path)) == row.n_features
        exported = kb.export(doc["metadata"]["slug"])
        assert exported == doc  # clerps, supernodes, pinned ids and every other field kept
        union |= {(row.transcoder_set, *k) for k in raw_feature_keys(path)}
    stats = kb.stats()
    assert stats["graphs"] == 9
    assert stats["links"] == sum(len(json.loads(p.read_text())["links"]) for p in GRAPHS.glob("*.json"))
    assert stats["features"] == len(union)
    # read from SQL (the registry's counts and the aggregates), they are what the graph store holds
    assert {k: stats[k] for k in ("nodes", "links")} == {k: v for k, v in kb.store.counts(None).items() if k != "features"}
    assert stats["features_in_graphs"] == kb.store.counts(None)["features"]


def test_supernodes_and_pinned_ids_of_the_labelled_graph(kb: KB) -> None:
    kb.ingest([real_graph("01")])
    doc = kb.export("gemma-small-big-en")
    assert len(doc["qParams"]["pinnedIds"]) == 17
    assert len(doc["qParams"]["supernodes"]) == 5
    with kb.engine.connect() as conn:
        n_clerps = conn.execute(select(func.count()).select_from(descriptions).where(descriptions.c.source == "clerp")).scalar_one()
    assert n_clerps > 0


def test_reingest_is_a_noop_and_a_changed_file_replaces(kb: KB, tmp_path: Path) -> None:
    path = write(tmp_path / "g.json", small_graph("g1"))
    first = kb.ingest([path])
    assert len(first.ingested) == 1
    again = kb.ingest([path])
    assert again.ingested == [] and again.skipped[0]["outcome"] == "unchanged"

    changed = small_graph("g1")
    changed["links"][0]["weight"] = 9.0
    write(path, changed)
    kept = kb.ingest([path], on_change="skip")
    assert kept.ingested == [] and kb.export("g1")["links"][0]["weight"] == 1.25
    refused = kb.ingest([path], on_change="fail")
    assert refused.failed[0]["error"].startswith(f"{path}: ") and "already stored with other content" in refused.failed[0]["error"]
    replaced = kb.ingest([path])
    assert replaced.ingested[0]["replaced"] is True
    assert kb.export("g1") == changed
    assert kb.stats()["graphs"] == 1
    assert kb.stats()["links"] == len(changed["links"])


@pytest.mark.parametrize(
    "breakage",
    ["truncated", "wrong_type", "dangling", "duplicate_node", "huge_feature", "no_nodes", "not_a_graph"],
)
def test_bad_file_is_reported_and_writes_nothing(kb: KB, tmp_path: Path, breakage: str) -> None:
    good = write(tmp_path / "good.json", small_graph("good"))
    doc = small_graph("bad")
    text = None
    if breakage == "truncated":
        text = json.dumps(doc)[:300]
    elif breakage == "wrong_type":
        doc["nodes"][2]["layer"] = ["E"]
    elif breakage == "dangling":
        doc["links"][-1]["target"] = "12_77_3"
    elif breakage == "duplicate_node":
        doc["nodes"].append(dict(doc["nodes"][0]))
    elif breakage == "huge_feature":
        doc["nodes"][3]["feature"] = 2**70
    elif breakage == "no_nodes":
        doc["nodes"], doc["links"] = [], []
    elif breakage == "not_a_graph":
        doc = {"results": [1, 2, 3]}
    bad = tmp_path / "bad.json"
    if text is not None:
        bad.write_text(text)
    else:
        write(bad, doc)
    before = kb.stats()
    report = kb.ingest([bad, good])
    assert [f["path"] for f in report.failed] == [str(bad)]
    assert str(bad) in report.failed[0]["error"]
    assert len(report.ingested) == 1
    after = kb.stats()
    assert after["graphs"] == before["graphs"] + 1
    assert after["links"] == len(small_graph()["links"])
    with pytest.raises(NotFoundError):
        kb.graph_row("bad")


def test_unusual_valid_input_is_stored(kb: KB, tmp_path: Path) -> None:
    doc = small_graph("unusual-ü-中文", prompt="<bos>" + "Le très long « prompt » 🙂 " * 500)
    doc["metadata"]["prompt_tokens"] = ["<bos>", "日本語", "🙂", ""]
    doc["nodes"][3]["clerp"] = ""
    kb.ingest([write(tmp_path / "u.json", doc)])
    assert kb.export("unusual-ü-中文") == doc


def test_gzip_folders_globs_and_manifest(kb: KB, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    write(folder / "a.json.gz", small_graph("a"), compress=True)
    write(folder / "sub" / "b.json", variant(small_graph("b"), prompt="<bos>Le contraire de \"petit\" est \""))
    (folder / "manifest.csv").write_text("path,family,language,tags\na.json.gz,opposites,,demo;en-fr\n")
    report = kb.ingest([str(folder / "**" / "*.json*")], manifest=folder / "manifest.csv")
    assert sorted(i["slug"] for i in report.ingested) == ["a", "b"]
    with kb.engine.connect() as conn:
        rows = {r.slug: r for r in conn.execute(select(graphs).where(graphs.c.status == "ready"))}
        tags = sorted(conn.execute(select(graph_tags.c.tag).where(graph_tags.c.graph_id == rows["a"].id)).scalars())
    assert rows["a"].family == "opposites" and tags == ["demo", "en-fr"]
    assert rows["a"].language == "en"  # detected: the manifest left it empty
    assert rows["b"].language == "fr"


def test_a_failure_in_the_middle_of_writing_leaves_nothing(kb: KB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kb.stores.embedded as embedded
    import kb.stores.neo4j_store as neo4j_store

    # small slices, so that the graph is written in several transactions as a huge one would be
    monkeypatch.setattr(embedded, "TRANSACTION_LINKS", 3)
    monkeypatch.setattr(embedded, "LINK_BATCH", 2)
    monkeypatch.setattr(neo4j_store, "LINK_BATCH", 2)
    path = write(tmp_path / "g.json", small_graph("sliced"))
    assert kb.ingest([path]).failed == []
    assert kb.export("sliced") == small_graph("sliced")

    calls = {"n": 0}
    if kb.store.name == "embedded":
        original = embedded.insert_links

        def flaky(*args):  # noqa: ANN002, ANN202
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("disk on fire")
            return original(*args)

        monkeypatch.setattr(embedded, "insert_links", flaky)
    else:
        original = kb.store.run_write

        def flaky(query, params):  # noqa: ANN001, ANN202
            if "LINK {w" in query:
                calls["n"] += 1
                if calls["n"] == 3:
                    raise RuntimeError("server on fire")
            return original(query, params)

        monkeypatch.setattr(kb.store, "run_write", flaky)
    other = write(tmp_path / "h.json", small_graph("half"))
    with pytest.raises(RuntimeError):
        kb.ingest([other])
    assert calls["n"] == 3
    assert [g.slug for g in kb.select()] == ["sliced"]
    assert kb.store.counts(None) == {"nodes": 9, "links": 8, "features": 4}
    monkeypatch.undo()
    assert kb.ingest([other]).failed == []
    assert kb.export("half") == small_graph("half")


def test_a_graph_left_loading_with_half_its_links_is_taken_over_and_written_whole(
    kb: KB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write whose undoing failed too leaves its id loading, owned by this process: the
    next ingest takes the id over, drops what the store holds of it and publishes it once."""
    import kb.ingestion as ingestion
    import kb.stores.embedded as embedded

    path = write(tmp_path / "g.json", small_graph("taken"))
    (tmp_path / "manifest.csv").write_text("path,family,language,tags\ng.json,opposites,,demo;en-fr\n")
    monkeypatch.setattr(embedded, "TRANSACTION_LINKS", 3)  # nodes and links committed before the publishing transaction

    def on_fire(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingestion, "write_qk", on_fire)  # the publishing transaction fails
    monkeypatch.setattr(ingestion, "_abandon", lambda core, gid: None)  # and so does the cleanup
    with pytest.raises(RuntimeError):
        kb.ingest([path], manifest=tmp_path / "manifest.csv")
    with kb.engine.connect() as conn:
        (left,) = conn.execute(select(graphs.c.id).where(graphs.c.status == "loading")).scalars()
    assert kb.store.counts([left])["nodes"] == 9  # half a graph: nodes and links, never published
    monkeypatch.undo()
    report = kb.ingest([path], manifest=tmp_path / "manifest.csv")
    assert report.failed == [] and [i["graph_id"] for i in report.ingested] == [left]
    assert kb.export("taken") == small_graph("taken")
    assert kb.store.counts(None) == {"nodes": 9, "links": 8, "features": 4}
    with kb.engine.connect() as conn:
        tags = sorted(conn.execute(select(graph_tags.c.tag).where(graph_tags.c.graph_id == left)).scalars())
        clerps = conn.execute(select(func.count()).select_from(descriptions).where(descriptions.c.graph_id == left)).scalar_one()
    assert tags == ["demo", "en-fr"]
    assert clerps == 2  # the features' clerps "opposite" and "say large", once each


def test_many_files_report_in_order_as_one_at_a_time(kb: KB, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Three files or more are parsed ahead in a child process, and Neo4j and PostgreSQL write
    several at once: outcomes, errors, warnings and replacements are still those of one file at a time."""
    paths = [write(tmp_path / f"g{i}.json", small_graph(f"g{i}")) for i in range(6)]
    paths[3].write_text(json.dumps(small_graph("g3"))[:300])
    dangling = small_graph("g4")
    dangling["links"][2]["target"] = "12_77_3"
    write(paths[4], dangling)
    novel = small_graph("g5")
    novel["nodes"][3]["feature_type"] = "fancy new type"
    write(paths[5], novel)
    with caplog.at_level(logging.WARNING):
        first = kb.ingest(paths)
    assert [f["path"] for f in first.failed] == [str(paths[3]), str(paths[4])]
    assert "invalid JSON" in first.failed[0]["error"] and "links[2].target: no node '12_77_3'" in first.failed[1]["error"]
    assert [i["slug"] for i in first.ingested] == ["g0", "g1", "g2", "g5"]
    # claimed one after another in file order, whichever write ends first: ids do not depend on timing
    ids = [i["graph_id"] for i in first.ingested]
    assert ids == sorted(ids)
    # the parsing process's warnings reach the report and this process's log
    assert any("'fancy new type' (1)" in w for w in first.warnings)
    assert "'fancy new type' (1)" in caplog.text

    changed = small_graph("g1")
    changed["links"][0]["weight"] = 9.0
    write(paths[1], changed)
    again = kb.ingest(paths)
    assert [(s["slug"], s["outcome"]) for s in again.skipped] == [("g0", "unchanged"), ("g2", "unchanged"), ("g5", "unchanged")]
    assert [(i["slug"], i["replaced"]) for i in again.ingested] == [("g1", True)]
    assert len(again.failed) == 2
    assert kb.export("g1") == changed
    assert kb.stats()["graphs"] == 4 and kb.stats()["links"] == 4 * len(changed["links"])


def test_a_graph_that_fails_while_written_is_undone_alone(kb: KB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the graphs of an ingest are committed several at a time, each in a savepoint:
    the one that fails leaves nothing, the others before and after it are published."""
    from kb import registry

    docs = [small_graph(f"g{i}") for i in range(5)]
    for doc in docs[2:4]:
        # features no graph had: the failing g2 gives them ids, which its undoing takes back
        doc["metadata"]["info"]["transcoder_set"] = "tests/another-set"
    paths = [write(tmp_path / f"g{i}.json", doc) for i, doc in enumerate(docs)]
    original = registry.finish

    def g2_fails(conn, gid, slug, *rest):  # noqa: ANN001, ANN002, ANN202
        if slug == "g2":
            raise CircuitKBError("g2 cannot be published")
        return original(conn, gid, slug, *rest)

    monkeypatch.setattr(registry, "finish", g2_fails)
    report = kb.ingest(paths)
    assert [f["path"] for f in report.failed] == [str(paths[2])] and "cannot be published" in report.failed[0]["error"]
    assert [i["slug"] for i in report.ingested] == ["g0", "g1", "g3", "g4"]
    assert [g.slug for g in kb.select()] == ["g0", "g1", "g3", "g4"]
    with kb.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(graphs).where(graphs.c.status == "loading")).scalar_one() == 0
    assert kb.store.counts(None) == {"nodes": 4 * 9, "links": 4 * 8, "features": 8}
    assert kb.export("g3") == docs[3] and check(kb).ok
    monkeypatch.undo()
    again = kb.ingest(paths)
    assert [i["slug"] for i in again.ingested] == ["g2"] and len(again.skipped) == 4
    assert kb.export("g2") == docs[2] and check(kb).ok


def _batches_of(monkeypatch: pytest.MonkeyPatch, graphs: int, seconds: float = 3600.0) -> None:
    """SQLite ingest batches of ``graphs`` graphs, or ``seconds`` of writing."""
    import kb.ingestion as ingestion

    monkeypatch.setattr(ingestion, "BATCH_GRAPHS", graphs)
    monkeypatch.setattr(ingestion, "BATCH_SECONDS", seconds)


def test_on_sqlite_graphs_are_committed_in_batches_and_reported_once_committed(
    sqlite_kb: KB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _batches_of(monkeypatch, 2)
    paths = [write(tmp_path / f"g{i}.json", small_graph(f"g{i}")) for i in range(5)]
    # a new version of g1 in the same run replaces the one published just before it
    changed = small_graph("g1")
    changed["links"][0]["weight"] = 9.0
    paths.append(write(tmp_path / "g1-again.json", changed))
    seen: list[tuple[str, list[str]]] = []

    def on_graph(path: str, outcome: str) -> None:
        # another connection, as another process would look: what is committed
        with sqlite_kb.engine.connect() as conn:
            visible = sorted(conn.execute(select(graphs.c.slug).where(graphs.c.status == "ready")).scalars())
        seen.append((Path(path).name, visible))

    report = sqlite_kb.ingest(paths, progress=IngestProgress(on_graph=on_graph))
    assert report.failed == [] and [i["slug"] for i in report.ingested] == ["g0", "g1", "g2", "g3", "g4", "g1"]
    # ... and says so: two files of one slug in a run is seldom what was meant
    assert report.warnings == [f"{paths[-1]}: slug 'g1' was also in {paths[1]}, ingested earlier in this run; this file's graph replaced it"]
    # each file is reported once the transaction that published it and the next has committed
    assert seen[0] == ("g0.json", ["g0", "g1"]) and seen[1] == ("g1.json", ["g0", "g1"])
    assert seen[2] == ("g2.json", ["g0", "g1", "g2", "g3"])
    assert seen[-1] == ("g1-again.json", ["g0", "g1", "g2", "g3", "g4"])
    assert report.ingested[-1]["replaced"] and sqlite_kb.export("g1") == changed
    # each batch's commit is counted in its graphs' write times
    assert all(i["write_seconds"] > 0 for i in report.ingested)
    # a batch that has taken its time is committed however few graphs it holds
    _batches_of(monkeypatch, 64, seconds=0.0)
    seen.clear()
    more = [write(tmp_path / f"h{i}.json", small_graph(f"h{i}")) for i in range(2)]
    assert not sqlite_kb.ingest(more, progress=IngestProgress(on_graph=on_graph)).failed
    assert [(name, [v for v in visible if v.startswith("h")]) for name, visible in seen] == [("h0.json", ["h0"]), ("h1.json", ["h0", "h1"])]
    assert sqlite_kb.store.counts(None) == {"nodes": 7 * 9, "links": 7 * 8, "features": 4}
    assert check(sqlite_kb).ok


def test_an_error_that_is_not_circuitkbs_undoes_the_batch_and_the_rerun_completes(
    sqlite_kb: KB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kb.ingestion as ingestion

    _batches_of(monkeypatch, 3)
    paths = [write(tmp_path / f"g{i}.json", small_graph(f"g{i}")) for i in range(5)]
    published = {"n": 0}
    original = ingestion.write_qk

    def fifth_breaks(conn, gid, rows):  # noqa: ANN001, ANN202
        published["n"] += 1
        if published["n"] == 5:
            raise RuntimeError("disk on fire")
        return original(conn, gid, rows)

    monkeypatch.setattr(ingestion, "write_qk", fifth_breaks)
    with pytest.raises(RuntimeError):
        sqlite_kb.ingest(paths)
    # the first batch (g0-g2) was committed; the second (g3, g4) left nothing, not even a claim
    assert [g.slug for g in sqlite_kb.select()] == ["g0", "g1", "g2"]
    with sqlite_kb.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(graphs)).scalar_one() == 3
    assert sqlite_kb.store.counts(None)["nodes"] == 3 * 9 and check(sqlite_kb).ok
    monkeypatch.undo()
    again = sqlite_kb.ingest(paths)
    assert [i["slug"] for i in again.ingested] == ["g3", "g4"] and check(sqlite_kb).ok


def test_the_parsing_process_ends_with_its_parent() -> None:
    code = "import time; from ingest.readahead import ReadAhead; print(ReadAhead().pid, flush=True); time.sleep(600)"
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _running(child)
    os.kill(parent.pid, signal.SIGKILL)  # no chance to close anything: the child must notice alone
    parent.wait()
    deadline = time.monotonic() + 30
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(child)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (an ended one may wait as a zombie to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
