"""The aggregates over all graphs (kb.aggregates): exact after any sequence of ingest, replace and
remove, on every store; the questions that read them answer as brute force does; removing
graphs; the check and rebuild commands; a knowledge base made before the aggregates existed."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from click.testing import CliRunner
from sqlalchemy import func, select, update

from kb import featuremeta
from kb.aggregates import keep, reads
from kb.aggregates.check import check, rebuild
from kb.aggregates.paths import KEPT_PATHS, PACKED_GROUP
from kb.analysis import shared_features, used_by
from kb.analysis.compare import graph_similarity
from kb.analysis.edges import recurring_edges
from kb.analysis.features import feature_keys
from kb.api import KB
from kb.cli import main
from kb.config import Config
from kb.errors import CircuitKBError, NotFoundError, PermissionDenied
from kb.labels import accounts
from kb.selection import Selection
from schema.sql import audit_log, descriptions, feature_edge_totals, feature_totals, graphs, kb_meta, path_group_packs
from tests import circuit_reference as cref
from tests import feature_reference as fref
from tests.builders import embedding_node, error_node, feature_node, graph_of, logit_node, small_graph, write

CLT = "gemma-2-2b/clt-hp"
SCHEMA = Path(__file__).resolve().parents[1] / "schema"
# few values, so that graphs tie on minima and maxima and taking one away must look at the others
WEIGHTS = (-1.5, -0.5, 0.25, 0.5, 1.0, 2.0)
ACTIVATIONS = (0.5, 1.0, 2.0, 4.0, None)
INFLUENCES = (0.1, 0.3, 0.3, 0.6, None)


def random_doc(rng: random.Random, slug: str, pool: list[tuple[int, int]]) -> dict[str, Any]:
    """A small graph over a shared pool of features, with ties and missing values on purpose."""
    n_pos = rng.randint(3, 5)
    nodes = [embedding_node(500 + p, p) for p in range(n_pos)]
    for layer, index in rng.sample(pool, rng.randint(3, min(8, len(pool)))):
        for pos in rng.sample(range(n_pos), rng.randint(1, 2)):
            node = feature_node(layer, index, pos, activation=1.0, influence=0.5)
            node["activation"], node["influence"] = rng.choice(ACTIVATIONS), rng.choice(INFLUENCES)
            nodes.append(node)
    if rng.random() < 0.5:
        nodes.append(error_node(rng.randint(0, 3), rng.randrange(n_pos)))
    nodes.append(logit_node(900, n_pos - 1, 0.4, True))

    def rank(node: dict[str, Any]) -> int:
        return -1 if node["layer"] == "E" else 99 if node["layer"] == "27" else int(node["layer"])

    links, seen = [], set()
    for _ in range(rng.randint(8, 30)):
        a, b = rng.sample(range(len(nodes)), 2)
        if rank(nodes[a]) == rank(nodes[b]):
            continue
        src, tgt = (a, b) if rank(nodes[a]) < rank(nodes[b]) else (b, a)
        if nodes[src]["ctx_idx"] <= nodes[tgt]["ctx_idx"] and (src, tgt) not in seen:  # in causal order
            seen.add((src, tgt))
            links.append({"source": nodes[src]["node_id"], "target": nodes[tgt]["node_id"], "weight": rng.choice(WEIGHTS)})
    return graph_of(slug, n_pos, nodes, links)


# --- what the aggregates should hold, from the raw documents --------------------------------------


def expected_totals(docs: list[dict[str, Any]]) -> tuple[dict[Any, tuple[Any, ...]], dict[Any, tuple[Any, ...]]]:
    """Per feature (layer, index): (n_graphs, activation n/sum/min/max, influence n/sum/min/max);
    per edge: (n_graphs, sum, abs sum, min, max)."""
    features = {}
    for key, per_graph in fref.presence([fref.from_doc(d) for d in docs]).items():
        acts = [v[0] for v in per_graph.values() if v[0] is not None]
        infls = [v[1] for v in per_graph.values() if v[1] is not None]
        features[key] = (len(per_graph), *_stats(acts), *_stats(infls))
    weights: dict[Any, list[float]] = {}
    for doc in docs:
        for edge, w in cref.feature_edges(cref.from_doc(doc)).items():
            weights.setdefault(edge, []).append(w)
    edges = {e: (len(ws), sum(ws), sum(abs(w) for w in ws), min(ws), max(ws)) for e, ws in weights.items()}
    return features, edges


def expected_path_groups(docs: list[dict[str, Any]]) -> dict[tuple[str, int, Any], tuple[Any, ...]]:
    """Per (slug, start position, middle feature (layer, index)): the two-step paths into the
    target logit, feature or embedding -> feature -> target: how many, the best score, the next
    best (None for one path), the best path's nodes and weights (of equal scores, the first by
    its links' places in the file), the next paths kept (score, nodes, weights) and the best
    score not kept (None when all are kept)."""
    scored: dict[tuple[str, int, Any], list[tuple[float, int, int, tuple[int, int, int], float, float]]] = {}
    for raw in docs:
        doc = cref.from_doc(raw)
        totals, targets = doc.input_total(), set(doc.targets())
        for i, first in enumerate(doc.links):
            start, middle, w0 = first
            if doc.kind(start) not in ("feature", "embedding") or doc.kind(middle) != "feature":
                continue
            for j, last in enumerate(doc.links):
                if last[0] == middle and last[1] in targets:
                    key = (doc.slug, doc.nodes[start]["ctx_idx"], doc.keys[middle])
                    score = doc.share(first, totals) * doc.share(last, totals)
                    scored.setdefault(key, []).append((-score, i, j, (start, middle, last[1]), w0, last[2]))
    groups = {}
    for key, paths in scored.items():
        paths.sort(key=lambda p: p[:3])
        best = paths[0]
        more = tuple((-p[0], p[3], p[4], p[5]) for p in paths[1:KEPT_PATHS])
        rest = -paths[KEPT_PATHS][0] if len(paths) > KEPT_PATHS else None
        groups[key] = (len(paths), -best[0], -paths[1][0] if len(paths) > 1 else None, best[3], best[4], best[5], more, rest)
    return groups


def kept_path_group_rows(kb: KB) -> list[tuple[Any, ...]]:
    """Every kept path group as a row (gid, ctx, then kb.aggregates.paths.PACKED_GROUP's fields), by graph."""
    with kb.engine.connect() as conn:
        gids = conn.execute(select(path_group_packs.c.graph_id).distinct().order_by(path_group_packs.c.graph_id)).scalars().all()
        return [row for gid in gids for row in reads.graph_path_groups(conn, gid).rows()]


def kept_path_groups(kb: KB) -> dict[tuple[str, int, Any], tuple[Any, ...]]:
    """As :func:`expected_path_groups` gives them, from the packs."""
    rows = kept_path_group_rows(kb)
    with kb.engine.connect() as conn:
        slugs = dict(conn.execute(select(graphs.c.id, graphs.c.slug)).all())
        more_rows = [row for gid in slugs for row in reads.graph_path_groups(conn, gid).more_rows()]
    more: dict[tuple[int, int, int], list[tuple[Any, ...]]] = {}
    rests: dict[tuple[int, int, int], Any] = {}
    for gid, ctx, fid, score, rest, s, m, t, w0, w1, _mt, _tt in more_rows:
        more.setdefault((gid, ctx, fid), []).append((score, (s, m, t), w0, w1))
        rests[(gid, ctx, fid)] = rest
    keys = feature_keys(kb, [row[2] for row in rows])
    return {
        (slugs[gid], ctx, (keys[fid].layer, keys[fid].index)): (n, best, second, (s, m, t), w0, w1, tuple(more.get((gid, ctx, fid), ())), rests.get((gid, ctx, fid)))
        for gid, ctx, fid, n, best, second, s, m, t, w0, w1, _mt, _tt in rows
    }


def expected_middle_positions(docs: list[dict[str, Any]], groups: dict[tuple[str, int, Any], tuple[Any, ...]]) -> dict[str, set[tuple[Any, int]]]:
    """Per slug, (feature (layer, index), position) of every node whose feature is the middle of one of its path groups."""
    middles = {(slug, key) for slug, _ctx, key in groups}
    out: dict[str, set[tuple[Any, int]]] = {}
    for raw in docs:
        doc = cref.from_doc(raw)
        for i, key in enumerate(doc.keys):
            if key is not None and (doc.slug, key) in middles:
                out.setdefault(doc.slug, set()).add((key, doc.nodes[i]["ctx_idx"]))
    return out


def kept_middle_positions(kb: KB) -> dict[str, set[tuple[Any, int]]]:
    with kb.engine.connect() as conn:
        slugs = dict(conn.execute(select(graphs.c.id, graphs.c.slug)).all())
        gids = conn.execute(select(path_group_packs.c.graph_id).distinct()).scalars().all()
        kept = {slugs[gid]: reads.graph_path_groups(conn, gid).positions() for gid in gids}
    keys = feature_keys(kb, [fid for pairs in kept.values() for fid, _ in pairs])
    return {slug: {((keys[fid].layer, keys[fid].index), ctx) for fid, ctx in pairs} for slug, pairs in kept.items() if pairs}


def _stats(values: list[float]) -> tuple[Any, ...]:
    return (len(values), sum(values) if values else None, min(values, default=None), max(values, default=None))


def kept_totals(kb: KB) -> tuple[dict[Any, tuple[Any, ...]], dict[Any, tuple[Any, ...]]]:
    with kb.engine.connect() as conn:
        features = reads.features_in(conn, 1)
        edges = reads.top_edges(conn, 1, None)
    keys = feature_keys(kb, [t.fid for t in features] + [fid for e in edges for fid in (e.src, e.tgt)])
    lk = {fid: (k.layer, k.index) for fid, k in keys.items()}
    return (
        {lk[t.fid]: (t.n_graphs, t.activation_n, t.activation_sum, t.activation_min, t.activation_max, t.influence_n, t.influence_sum, t.influence_min, t.influence_max) for t in features},
        {(lk[e.src], lk[e.tgt]): (e.n_graphs, e.weight_sum, e.abs_sum, e.weight_min, e.weight_max) for e in edges},
    )


def assert_exact(kb: KB, docs: dict[str, dict[str, Any]]) -> None:
    """The kept aggregates against brute force (counts, minima, maxima exactly; sums to rounding),
    and circuitkb's own check against the graph store."""
    want_f, want_e = expected_totals(list(docs.values()))
    got_f, got_e = kept_totals(kb)
    assert got_f.keys() == want_f.keys() and got_e.keys() == want_e.keys()
    for key, want in want_f.items():
        got = got_f[key]
        assert [got[i] for i in (0, 1, 3, 4, 5, 7, 8)] == [want[i] for i in (0, 1, 3, 4, 5, 7, 8)], key
        assert got[2] == pytest.approx(want[2]) and got[6] == pytest.approx(want[6]), key
    for edge, want in want_e.items():
        got = got_e[edge]
        assert (got[0], got[3], got[4]) == (want[0], want[3], want[4]), edge
        assert got[1] == pytest.approx(want[1], abs=1e-9) and got[2] == pytest.approx(want[2]), edge
    with kb.engine.connect() as conn:
        histogram = dict(conn.execute(select(feature_edge_totals.c.n_graphs, func.count()).group_by(feature_edge_totals.c.n_graphs)).all())
        assert all(reads.edge_count(conn, k) == sum(v for n, v in histogram.items() if n >= k) for k in range(1, 8))
    want_paths = expected_path_groups(list(docs.values()))
    got_paths = kept_path_groups(kb)
    assert got_paths.keys() == want_paths.keys()
    for key, (n, best, second, nodes, w0, w1, more, rest) in want_paths.items():
        got = got_paths[key]
        assert got[0] == n and got[1] == pytest.approx(best, rel=1e-12) and got[3:6] == (nodes, w0, w1), key
        assert got[2] == (None if second is None else pytest.approx(second, rel=1e-12)), key
        assert [(p[1], p[2], p[3]) for p in got[6]] == [(p[1], p[2], p[3]) for p in more], key
        assert [p[0] for p in got[6]] == pytest.approx([p[0] for p in more], rel=1e-12), key
        assert got[7] == (None if rest is None else pytest.approx(rest, rel=1e-12)), key
    assert kept_middle_positions(kb) == expected_middle_positions(list(docs.values()), want_paths)
    report = check(kb)
    assert report.ok, report.differences


@pytest.mark.parametrize("chunk", [1_000_000, 7, 1])
def test_path_groups_keep_each_groups_best_paths_and_the_next_score_also_from_pieces(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense random graph's groups against every path scored by hand, whole and read a few
    links at a time (as a huge graph is, its pieces' groups merged)."""
    from kb.aggregates import paths

    monkeypatch.setattr(paths, "CHUNK", chunk)
    rng = np.random.default_rng(3)
    kind = np.array(["embedding"] * 3 + ["feature"] * 24 + ["logit"] * 3, dtype=object)
    ctx = np.concatenate([np.arange(3), rng.integers(0, 3, 24), np.full(3, 2)])
    fid = np.concatenate([np.full(3, -1), rng.integers(0, 6, 24), np.full(3, -1)])
    target = np.arange(30) == 28
    src = np.concatenate([rng.integers(0, 27, 300), rng.integers(3, 27, 60)])
    tgt = np.concatenate([rng.integers(3, 27, 300), rng.choice([27, 28, 29], 60)])
    weight = rng.normal(size=len(src))
    totals = np.zeros(30)
    np.add.at(totals, tgt, np.abs(weight))
    got = paths.path_groups(0, kind, ctx, fid, target, totals, src.astype(np.int32), tgt.astype(np.int32), weight)

    share = [abs(w) / totals[t] for t, w in zip(tgt.tolist(), weight.tolist())]
    scored: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
    for i, (a, b) in enumerate(zip(src.tolist(), tgt.tolist())):
        if kind[a] in ("feature", "embedding") and kind[b] == "feature":
            for j, (c, d) in enumerate(zip(src.tolist(), tgt.tolist())):
                if c == b and target[d]:
                    scored.setdefault((int(ctx[a]), int(fid[b])), []).append((-(share[i] * share[j]), i, j))
    want_groups, want_more = [], []
    for (c, f), found in sorted(scored.items()):
        found.sort()
        score = [-s for s, _, _ in found]
        path = [(int(src[i]), int(tgt[i]), int(tgt[j]), float(weight[i]), float(weight[j])) for _, i, j in found]
        second = score[1] if len(found) > 1 else None
        want_groups.append((0, c, f, len(found), score[0], second, *path[0][:3], *path[0][3:]))
        rest = score[paths.KEPT_PATHS] if len(found) > paths.KEPT_PATHS else None
        want_more += [(0, c, f, score[k], rest, *path[k]) for k in range(1, min(len(found), paths.KEPT_PATHS))]
    assert [row[:-2] for row in got.rows()] == want_groups
    assert [row[:-2] for row in got.more_rows()] == want_more
    assert any(row[4] is not None for row in want_more) and len(want_more) > 10


# --- exact under ingest, replace and remove, on every store -----------------------------------------


@pytest.mark.slow
def test_aggregates_stay_exact_through_ingest_replace_and_remove(kb: KB, tmp_path: Path) -> None:
    rng = random.Random(11)
    pool = [(layer, 30 + rng.randrange(6)) for layer in range(5)] + [(rng.randrange(5), 40 + i) for i in range(4)]
    pool = sorted(set(pool))
    docs: dict[str, dict[str, Any]] = {}
    folder = tmp_path / "files"
    folder.mkdir()
    made = 0
    for step in range(9):
        action = "ingest" if step < 3 else rng.choice(["ingest", "replace", "remove", "replace"])
        if action == "ingest" or not docs:
            paths = []
            for _ in range(rng.randint(1, 3)):
                slug = f"g{made}"
                made += 1
                docs[slug] = random_doc(rng, slug, pool)
                paths.append(write(folder / f"{slug}-{step}.json", docs[slug]))
            assert not kb.ingest(paths).failed
        elif action == "replace":
            slug = rng.choice(sorted(docs))
            docs[slug] = random_doc(rng, slug, pool)
            report = kb.ingest([write(folder / f"{slug}-{step}.json", docs[slug])])
            assert [item["replaced"] for item in report.ingested] == [True]
        else:
            gone = rng.sample(sorted(docs), rng.randint(1, min(2, len(docs))))
            assert kb.remove(gone).removed == gone
            for slug in gone:
                del docs[slug]
        assert sorted(g.slug for g in kb.select()) == sorted(docs)
        assert_exact(kb, docs)
    answers_match_brute_force(kb, list(docs.values()))


def answers_match_brute_force(kb: KB, docs: list[dict[str, Any]]) -> None:
    """Every question that reads the aggregates, over all graphs, against the references."""
    raws = [fref.from_doc(d) for d in docs]
    crefs = [cref.from_doc(d) for d in docs]
    for k in range(1, len(docs) + 1):
        expected = fref.shared(raws, k)
        got = shared_features(kb, min_graphs=k)
        assert {(int(r.layer), int(r.index)): int(r.n_graphs) for r in got.features.itertuples()} == {key: len(v) for key, v in expected.items()}
        for row in got.presence.itertuples():
            act, infl, positions = expected[(row.layer, row.index)][row.slug]
            assert (_value(row.activation), _value(row.influence), row.positions) == (act, infl, positions)
        counts = list(got.features["n_graphs"])
        assert counts == sorted(counts, reverse=True)
        edges = recurring_edges(kb, min_graphs=k)
        want = cref.recurring(crefs, k)
        assert edges.n_found == len(want) == len(edges.edges)
        for r in edges.edges.itertuples():
            n, mean, low, high = want[((r.src_layer, r.src_index), (r.tgt_layer, r.tgt_index))]
            assert (r.n_graphs, r.min_weight, r.max_weight) == (n, low, high) and r.mean_weight == pytest.approx(mean, abs=1e-9)
    everywhere = fref.presence(raws)
    for key in sorted(everywhere)[:4]:
        for rank_by in ("activation", "influence"):
            usage = used_by(kb, [f"{CLT}/{key[0]}/{key[1]}"], rank_by=rank_by, limit=2, neighbours=None)
            assert usage.n_graphs == len(everywhere[key])
            index, sign, missing = (0, -1, float("-inf")) if rank_by == "activation" else (1, 1, float("inf"))
            score = {s: (v[index] if v[index] is not None else missing) for s, v in everywhere[key].items()}
            order = sorted(score, key=lambda s: (sign * score[s], s))
            assert list(usage.graphs["slug"]) == order[:2]
            for direction, upstream in (("upstream", True), ("downstream", False)):
                want = fref.summary(raws, key, upstream)
                rows = usage.summary[usage.summary["direction"] == direction]
                assert {(int(r.neighbour_layer), int(r.neighbour_index)): int(r.n_graphs) for r in rows.itertuples()} == {o: n for o, (n, _) in want.items()}
                for r in rows.itertuples():
                    assert r.mean_weight == pytest.approx(want[(int(r.neighbour_layer), int(r.neighbour_index))][1], abs=1e-9)
    if len(docs) >= 2:
        matrix = graph_similarity(kb, measure="features").matrix
        by_slug = {r.slug: r for r in crefs}
        for a in matrix.index:
            for b in matrix.columns:
                if a != b:
                    sa = {k for k in by_slug[a].keys if k is not None}
                    sb = {k for k in by_slug[b].keys if k is not None}
                    assert matrix.loc[a, b] == pytest.approx(len(sa & sb) / len(sa | sb))


def _value(number: float) -> float | None:
    return None if number != number else number  # NaN in a frame is None in the file


@pytest.mark.parametrize("sql", ["sqlite", "postgres"])
def test_a_graph_s_edges_are_added_and_taken_away_a_batch_at_a_time(sql: str, make_kb: Callable[..., KB], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of a few edges (a huge graph's millions are never all Python rows at once) keep
    the aggregates as exact as one batch does, through ingest, replace and remove."""
    monkeypatch.setattr(keep, "EDGE_BATCH", 3)
    kb = make_kb(sql)
    rng = random.Random(21)
    pool = [(layer, 30 + i) for layer in range(4) for i in range(2)]
    docs = {f"b{i}": random_doc(rng, f"b{i}", pool) for i in range(4)}
    assert not kb.ingest([write(tmp_path / f"{slug}.json", doc) for slug, doc in docs.items()]).failed
    assert_exact(kb, docs)
    docs["b1"] = random_doc(rng, "b1", pool)
    assert [item["replaced"] for item in kb.ingest([write(tmp_path / "b1-new.json", docs["b1"])]).ingested] == [True]
    assert_exact(kb, docs)
    kb.remove(["b0", "b2"])
    del docs["b0"], docs["b2"]
    assert_exact(kb, docs)


# --- removing graphs ----------------------------------------------------------------------------------


def _two_graphs(kb: KB, tmp_path: Path) -> list[str]:
    rng = random.Random(3)
    pool = [(layer, 31) for layer in range(5)]
    paths = [write(tmp_path / f"r{i}.json", random_doc(rng, f"r{i}", pool)) for i in range(2)]
    first = small_graph("clerped")
    paths.append(write(tmp_path / "clerped.json", first))
    assert not kb.ingest(paths).failed
    return ["r0", "r1", "clerped"]


def test_remove_is_all_or_none_and_an_unknown_slug_changes_nothing(kb: KB, tmp_path: Path) -> None:
    slugs = _two_graphs(kb, tmp_path)
    before = kept_totals(kb)
    with pytest.raises(NotFoundError, match="'nope'.*nothing was removed"):
        kb.remove(["r0", "nope"])
    assert sorted(g.slug for g in kb.select()) == sorted(slugs) and kept_totals(kb) == before
    with pytest.raises(CircuitKBError, match="at least one"):
        kb.remove([" "])
    gid = next(g.gid for g in kb.select() if g.slug == "clerped")
    assert kb.remove(["clerped", "clerped"]).removed == ["clerped"]
    assert sorted(g.slug for g in kb.select()) == ["r0", "r1"]
    with kb.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(graphs).where(graphs.c.id == gid)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(descriptions).where(descriptions.c.graph_id == gid)).scalar_one() == 0
    assert kb.store.counts([gid]) == {"nodes": 0, "links": 0, "features": 0}
    assert check(kb).ok
    # removing again is an error that changes nothing; ingesting the file again brings it back
    with pytest.raises(NotFoundError, match="clerped"):
        kb.remove(["clerped"])
    assert len(kb.select()) == 2
    assert not kb.ingest([tmp_path / "clerped.json"]).failed
    assert check(kb).ok and len(kb.select()) == 3


def test_a_remove_interrupted_before_the_purge_is_finished_by_the_next_one(sqlite_kb: KB, tmp_path: Path) -> None:
    _two_graphs(sqlite_kb, tmp_path)
    gid = next(g.gid for g in sqlite_kb.select() if g.slug == "r0")
    purge = sqlite_kb.store.purge

    def killed(gid: int) -> None:
        raise RuntimeError("killed before the purge")

    sqlite_kb.store.purge = killed  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        sqlite_kb.remove(["r0"])
    sqlite_kb.store.purge = purge  # type: ignore[method-assign]
    assert "r0" not in {g.slug for g in sqlite_kb.select()} and check(sqlite_kb).ok
    assert sqlite_kb.store.counts([gid])["nodes"] > 0  # the data is still there ...
    sqlite_kb.remove(["r1"])
    assert sqlite_kb.store.counts([gid])["nodes"] == 0  # ... until the next remove (or ingest) purges it


@pytest.mark.parametrize("sql", ["sqlite", "postgres"])
def test_only_an_admin_removes_graphs_once_there_are_accounts(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    _two_graphs(kb, tmp_path)
    accounts.add_user(kb, accounts.local_actor(), "ada", "ada-secret-pw", "admin")
    ada = accounts.authenticate(kb, "ada", "ada-secret-pw")
    accounts.add_user(kb, ada, "lin", "lin-secret-pw", "labeller")
    lin = accounts.authenticate(kb, "lin", "lin-secret-pw")
    for who, message in ((lin, "needs the admin role"), (None, "not signed in")):
        with pytest.raises(PermissionDenied, match=message):
            kb.remove(["r0"], who)
    assert len(kb.select()) == 3
    kb.remove(["r0"], ada)
    assert len(kb.select()) == 2 and check(kb).ok
    with kb.engine.connect() as conn:
        entry = conn.execute(select(audit_log.c.actor, audit_log.c.action, audit_log.c.target).where(audit_log.c.action == "graph.remove")).one()
    assert tuple(entry) == ("ada", "graph.remove", "r0")


@pytest.mark.parametrize("sql", ["sqlite", "postgres"])
def test_only_an_admin_adds_graphs_or_feature_metadata_once_there_are_accounts(sql: str, make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb(sql)
    accounts.add_user(kb, accounts.local_actor(), "ada", "ada-secret-pw", "admin")
    ada = accounts.authenticate(kb, "ada", "ada-secret-pw")
    accounts.add_user(kb, ada, "lin", "lin-secret-pw", "labeller")
    lin = accounts.authenticate(kb, "lin", "lin-secret-pw")
    graph = write(tmp_path / "g.json", small_graph("guarded"))
    # a label CSV names its author: a labeller must not post labels as someone else by importing
    (tmp_path / "labels.csv").write_text("feature,label,author\ngemma-2-2b/20-clt-hp/1,forged,ada\n")
    for who, message in ((lin, "needs the admin role"), (None, "not signed in")):
        with pytest.raises(PermissionDenied, match=message):
            kb.ingest([graph], actor=who)
        with pytest.raises(PermissionDenied, match=message):
            featuremeta.import_feature_metadata(kb, [tmp_path / "labels.csv"], actor=who)
    with kb.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(graphs)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(descriptions)).scalar_one() == 0
    assert [i["slug"] for i in kb.ingest([graph], actor=ada).ingested] == ["guarded"]
    imported = featuremeta.import_feature_metadata(kb, [tmp_path / "labels.csv"], actor=ada)
    assert not imported.failed and imported.files


def test_a_saved_set_of_graphs_is_a_labellers_act_once_there_are_accounts(kb: KB, tmp_path: Path) -> None:
    _two_graphs(kb, tmp_path)
    assert kb.save_set("pair", Selection(slugs=("r0", "r1"))) == ["r0", "r1"]  # single-user: the local user
    accounts.add_user(kb, accounts.local_actor(), "ada", "ada-secret-pw", "admin")
    ada = accounts.authenticate(kb, "ada", "ada-secret-pw")
    accounts.add_user(kb, ada, "vic", "vic-secret-pw", "viewer")
    accounts.add_user(kb, ada, "lin", "lin-secret-pw", "labeller")
    vic, lin = accounts.authenticate(kb, "vic", "vic-secret-pw"), accounts.authenticate(kb, "lin", "lin-secret-pw")
    for who, message in ((vic, "needs the labeller role"), (None, "not signed in")):
        with pytest.raises(PermissionDenied, match=message):
            kb.save_set("pair", Selection(slugs=("clerped",)), who)
    assert [g.slug for g in kb.select(Selection(saved_set="pair"))] == ["r0", "r1"]  # unchanged
    kb.save_set("pair", Selection(slugs=("clerped",)), lin)
    assert [g.slug for g in kb.select(Selection(saved_set="pair"))] == ["clerped"]
    with kb.engine.connect() as conn:
        entries = conn.execute(select(audit_log.c.actor, audit_log.c.target, audit_log.c.detail).where(audit_log.c.action == "set.save").order_by(audit_log.c.id)).all()
    assert len(entries) == 2 and tuple(entries[-1]) == ("lin", "pair", {"graphs": 1})  # the first: the local user's


def test_the_cli_adds_graphs_and_metadata_as_the_admin_named_by_as(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    with KB.open(Config.load(home=home, env={})) as kb:
        accounts.add_user(kb, accounts.local_actor(), "ada", "ada-secret-pw", "admin")
    graph = write(tmp_path / "g.json", small_graph("by-cli"))
    (tmp_path / "labels.csv").write_text("feature,label,author\ngemma-2-2b/20-clt-hp/1,from the cli,ada\n")
    monkeypatch.setenv("CIRCUITKB_PASSWORD", "ada-secret-pw")
    for args in (["ingest", str(graph)], ["features", "import", str(tmp_path / "labels.csv")]):
        refused = CliRunner().invoke(main, ["--home", str(home), *args])
        assert refused.exit_code != 0 and "--as NAME" in refused.output, refused.output
        done = CliRunner().invoke(main, ["--home", str(home), *args, "--as", "ada"])
        assert done.exit_code == 0, done.output
    with KB.open(Config.load(home=home, env={})) as kb:
        assert [g.slug for g in kb.select()] == ["by-cli"]


# --- concurrent publishers ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_two_ingests_publishing_at_once_lose_no_update(make_kb: Callable[..., KB], kb_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    env = kb_env("postgres", "embedded")
    first = make_kb(env=env)
    rng = random.Random(5)
    pool = [(layer, 30 + i) for layer in range(3) for i in range(2)]
    docs = {f"c{i}": random_doc(rng, f"c{i}", pool) for i in range(16)}
    halves = [[write(tmp_path / f"{s}.json", d) for s, d in list(docs.items())[i::2]] for i in range(2)]
    kbs = [first, make_kb(env=env)]
    errors: list[BaseException] = []

    def run(kb: KB, paths: list[Path]) -> None:
        try:
            for path in paths:  # one file at a time: many publishes interleave
                assert not kb.ingest([path]).failed
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(kb, paths)) for kb, paths in zip(kbs, halves)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(first.select()) == 16
    assert_exact(first, docs)


@pytest.mark.postgres
def test_publishing_does_not_wait_for_an_import_of_feature_metadata(make_kb: Callable[..., KB], tmp_path: Path) -> None:
    """The aggregates' lock is theirs alone: an import of explanations or labels holding its own
    lock does not hold up the ingests meanwhile."""
    kb = make_kb("postgres")
    path = write(tmp_path / "g.json", small_graph("while-importing"))
    outcome: list[Any] = []
    with kb.engine.connect() as importer, importer.begin():
        importer.exec_driver_sql(f"SELECT pg_advisory_xact_lock({featuremeta._PG_LOCK_KEY})")
        ingest = threading.Thread(target=lambda: outcome.append(kb.ingest([path])))
        ingest.start()
        ingest.join(timeout=30)
        waited = ingest.is_alive()
    ingest.join()
    assert not waited and [i["slug"] for i in outcome[0].ingested] == ["while-importing"]


# --- check, rebuild, a knowledge base from before the aggregates ----------------------------------------


def test_the_check_finds_a_wrong_total_and_rebuild_mends_it(kb: KB, tmp_path: Path) -> None:
    _two_graphs(kb, tmp_path)
    with kb.engine.begin() as conn:
        fid = conn.execute(select(feature_totals.c.feature_id).limit(1)).scalar_one()
        conn.execute(update(feature_totals).where(feature_totals.c.feature_id == fid).values(n_graphs=feature_totals.c.n_graphs + 5))
        conn.execute(update(feature_edge_totals).values(weight_max=feature_edge_totals.c.weight_max + 1))
        gid, ctx, packed = conn.execute(select(path_group_packs.c.graph_id, path_group_packs.c.ctx_idx, path_group_packs.c.groups).limit(1)).one()
        groups = np.frombuffer(bytes(packed), dtype=PACKED_GROUP).copy()
        groups["n_paths"] += 1
        pack = path_group_packs.c
        conn.execute(update(path_group_packs).where(pack.graph_id == gid, pack.ctx_idx == ctx).values(groups=groups.tobytes()))
    report = check(kb)
    assert not report.ok and any(f"feature_totals ({fid},)" in line for line in report.differences)
    assert any(line.startswith("feature_edge_totals") for line in report.differences)
    assert any("path groups" in line for line in report.differences)
    assert rebuild(kb) == 3
    assert check(kb).ok


def _migrate_back_and_forth(kb: KB, to: str = "0007") -> None:
    """Take the schema down to revision ``to`` (by default, before the aggregates) and up again,
    as an upgrade would find it."""
    cfg = AlembicConfig(str(SCHEMA / "alembic.ini"))
    cfg.set_main_option("script_location", str(SCHEMA / "migrations"))
    for step in (lambda: command.downgrade(cfg, to), lambda: command.upgrade(cfg, "head")):
        with kb.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step()


@pytest.mark.slow
def test_an_older_knowledge_base_gets_its_aggregates_from_the_migration_or_a_rebuild(kb: KB, tmp_path: Path) -> None:
    _two_graphs(kb, tmp_path)
    before = kept_totals(kb)
    _migrate_back_and_forth(kb)
    with kb.engine.connect() as conn:
        stale = reads.stale_reason(conn)
    if kb.store.name == "embedded":
        assert stale is None  # the migration read the graphs from SQL
    else:
        # graphs in Neo4j: the questions read the graphs until a rebuild
        assert stale is not None and "not in the SQL database" in stale
        assert kept_totals(kb) == ({}, {})
        shared = shared_features(kb, min_graphs=1).features
        assert {(int(r.layer), int(r.index)): int(r.n_graphs) for r in shared.itertuples()} == {key: v[0] for key, v in before[0].items()}
        assert recurring_edges(kb, min_graphs=1).n_found == len(before[1])
        assert not check(kb).ok
        rebuild(kb)
    assert_same_totals(kept_totals(kb), before)
    assert check(kb).ok


def test_migrations_0015_to_0018_keep_each_path_group_s_best_path_and_packs_as_ingest_keeps_them(kb: KB, tmp_path: Path) -> None:
    rng = random.Random(11)
    pool = [(layer, 31) for layer in range(5)]
    paths = [write(tmp_path / f"r{i}.json", random_doc(rng, f"r{i}", pool)) for i in range(8)]
    # two paths of one group score the same: the best is the one whose links come first in the file
    nodes = [embedding_node(500, 0), feature_node(1, 7, 0), feature_node(3, 9, 1), logit_node(900, 1, 0.4, True)]
    ids = [n["node_id"] for n in nodes]
    links = [{"source": ids[1], "target": ids[2], "weight": 0.5}, {"source": ids[0], "target": ids[2], "weight": -0.5}, {"source": ids[2], "target": ids[3], "weight": 1.0}]
    paths.append(write(tmp_path / "tie.json", graph_of("tie", 2, nodes, links)))
    assert not kb.ingest(paths).failed

    def kept() -> list[tuple[Any, ...]]:
        return kept_path_group_rows(kb)

    def kept_more() -> list[tuple[Any, ...]]:
        with kb.engine.connect() as conn:
            return [row for gid in kb.graph_ids() for row in reads.graph_path_groups(conn, gid).more_rows()]

    before, more = kept(), kept_more()
    assert more
    assert any(row[5] is None for row in before) and any(row[3] > 1 for row in before)
    assert [row[3:7] for row in before if row[5] == row[4]] == [(2, 0.5, 0.5, 1)]  # the tie: its first link's start, node 1
    positions = kept_middle_positions(kb)
    assert positions
    _migrate_back_and_forth(kb, "0014")
    with kb.engine.connect() as conn:
        stale = reads.paths_stale_reason(conn)
    if kb.store.name == "embedded":
        assert stale is None  # filled from the graphs in SQL, ranked as at ingest
    else:
        assert stale is not None and "aggregates rebuild" in stale
        rebuild(kb)
    assert kept() == before
    assert kept_middle_positions(kb) == positions  # packed by 0017 from the graph's nodes
    report = check(kb)
    assert report.ok
    if kb.store.name == "embedded":
        # 0018 leaves the groups keeping their best path alone until a rebuild
        assert not kept_more() and len(report.notes) == 1 and "migration 0018" in report.notes[0]
        rebuild(kb)
        assert not check(kb).notes
    assert kept_more() == more


def assert_same_totals(got: Any, want: Any) -> None:
    """Equal, sums to rounding (a rebuild sums in another order than the ingests did)."""
    for mine, theirs in zip(got, want):
        assert mine.keys() == theirs.keys()
        for key, values in theirs.items():
            assert mine[key] == pytest.approx(values), key


# --- the commands ---------------------------------------------------------------------------------------


def test_remove_and_aggregates_commands(kb_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    env = kb_env("sqlite", "embedded")
    runner = CliRunner()
    rng = random.Random(9)
    pool = [(layer, 33) for layer in range(5)]
    for i in range(3):
        write(tmp_path / f"k{i}.json", random_doc(rng, f"k{i}", pool))
    assert runner.invoke(main, ["ingest", str(tmp_path)], env=env).exit_code == 0
    done = runner.invoke(main, ["aggregates", "check"], env=env)
    assert done.exit_code == 0 and "exact over the 3 visible graphs" in done.output
    gone = runner.invoke(main, ["remove", "k0", "k2", "--json"], env=env)
    assert gone.exit_code == 0 and json.loads(gone.output) == {"removed": ["k0", "k2"]}
    unknown = runner.invoke(main, ["remove", "k0"], env=env)
    assert unknown.exit_code == 2 and "no stored graph with slug 'k0'" in unknown.output
    kb = KB.open(Config.load(env=env))
    try:
        with kb.engine.begin() as conn:
            conn.execute(update(feature_totals).values(activation_n=feature_totals.c.activation_n + 1))
    finally:
        kb.close()
    wrong = runner.invoke(main, ["aggregates", "check", "--json"], env=env)
    assert wrong.exit_code == 1 and json.loads(wrong.output)["n_differences"] > 0
    rebuilt = runner.invoke(main, ["aggregates", "rebuild"], env=env)
    assert rebuilt.exit_code == 0 and "rebuilt the aggregates of 1 graphs" in rebuilt.output
    assert runner.invoke(main, ["aggregates", "check"], env=env).exit_code == 0
    # packs as migration 0018 leaves them: exact, with a note saying what a rebuild adds
    nodes = [embedding_node(500, 0), feature_node(1, 7, 0), feature_node(3, 9, 1), logit_node(900, 1, 0.4, True)]
    ids = [n["node_id"] for n in nodes]
    links = [{"source": ids[0], "target": ids[1], "weight": 0.5}, {"source": ids[1], "target": ids[2], "weight": 0.5}, {"source": ids[2], "target": ids[3], "weight": 1.0}]
    assert runner.invoke(main, ["ingest", str(write(tmp_path / "hop.json", graph_of("hop", 2, nodes, links)))], env=env).exit_code == 0
    kb = KB.open(Config.load(env=env))
    try:
        with kb.engine.begin() as conn:
            conn.execute(update(path_group_packs).values(more=None))
    finally:
        kb.close()
    older = runner.invoke(main, ["aggregates", "check"], env=env)
    assert older.exit_code == 0 and "exact over the 2 visible graphs" in older.output
    assert "note: the path groups of 1 graphs were packed before" in older.output and "aggregates rebuild" in older.output
    assert len(json.loads(runner.invoke(main, ["aggregates", "check", "--json"], env=env).output)["notes"]) == 1
    assert runner.invoke(main, ["aggregates", "rebuild"], env=env).exit_code == 0
    assert "note:" not in runner.invoke(main, ["aggregates", "check"], env=env).output


def test_stale_aggregates_are_not_read(sqlite_kb: KB, tmp_path: Path) -> None:
    _two_graphs(sqlite_kb, tmp_path)
    edges, shared = recurring_edges(sqlite_kb, min_graphs=1), shared_features(sqlite_kb, min_graphs=1)
    with sqlite_kb.engine.begin() as conn:
        conn.execute(update(feature_edge_totals).values(n_graphs=99))  # wrong, but marked stale below
        conn.execute(update(feature_totals).values(n_graphs=99))
        conn.execute(kb_meta.insert().values(key=reads.STALE_KEY, value="test"))
    again = recurring_edges(sqlite_kb, min_graphs=1)
    assert again.n_found == edges.n_found and again.edges[["src_fid", "tgt_fid", "n_graphs"]].equals(edges.edges[["src_fid", "tgt_fid", "n_graphs"]])
    assert shared_features(sqlite_kb, min_graphs=1).features[["fid", "n_graphs"]].equals(shared.features[["fid", "n_graphs"]])
