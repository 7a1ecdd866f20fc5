"""Circuits, comparison, scores and pieces of graphs.

Every expected figure is computed independently from the raw JSON (tests/circuit_reference.py),
on the real graphs and on random corpora, on every store; the Neo4j store must give the
embedded store's answer on the same corpus.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np
import pytest
from click.testing import CliRunner

from ingest.records import FeatureKey
from kb.analysis import features as analysis_features
from kb.analysis.compare import compare_graphs, graph_similarity, jaccard_matrix, spearman
from kb.analysis.edges import backfill_feature_edges, recurring_edges
from kb.analysis.paths import strongest_paths
from kb.analysis.pieces import neighbourhood_piece, top_piece
from kb.analysis.scores import graph_scores, pinned_node_ids
from kb.analysis.tokens import token_positions
from kb.analysis.twohop import match_pattern, two_hop_paths
from kb.api import KB
from kb.cli import main
from kb.errors import CircuitKBError, NotFoundError
from kb.selection import Selection
from kb.stores.cypher import circuits as cq
from kb.stores.circuit_queries import ChainMatch, FeatureEdges, Step, fold_feature_edges
from tests import circuit_reference as ref
from tests.builders import embedding_node, error_node, feature_node, logit_node, small_graph, write
from tests.conftest import GRAPHS, real_graph

CLT = "gemma-2-2b/clt-hp"
TOL = 1e-9


def close(a: float | None, b: float | None, tol: float = TOL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def _edge_rows(result: Any) -> dict[tuple[tuple[int, int], tuple[int, int]], tuple[int, float, float, float]]:
    return {
        ((r.src_layer, r.src_index), (r.tgt_layer, r.tgt_index)): (r.n_graphs, r.mean_weight, r.min_weight, r.max_weight)
        for r in result.edges.itertuples()
    }


def _check_edges(got: Any, expected: dict[Any, tuple[int, float, float, float]]) -> None:
    rows = _edge_rows(got)
    assert got.n_found == len(expected) == len(rows)
    assert rows.keys() == expected.keys()
    for edge, (n, mean, low, high) in expected.items():
        g = rows[edge]
        assert g[0] == n and close(g[1], mean) and close(g[2], low) and close(g[3], high), edge
    counts = list(got.edges["n_graphs"])
    assert counts == sorted(counts, reverse=True)


def _chain_set(frame: Any, n_steps: int) -> dict[tuple[str, ...], float]:
    names = [f"n{i}_node_id" for i in range(n_steps)] + ["t_node_id"]
    return {(r["slug"], *(r[c] for c in names)): r["score"] for r in frame.to_dict("records")}


def _names(docs: list[ref.Doc]) -> dict[ref.Key, set[str]]:
    names: dict[ref.Key, set[str]] = {}
    for doc in docs:
        for node, key in zip(doc.nodes, doc.keys):
            if key is not None and node.get("clerp"):
                names.setdefault(key, set()).add(node["clerp"])
    return names


# --- the real graphs ---------------------------------------------------------------------------


def test_recurring_edges_of_real_graphs_match_the_raw_links(kb: KB) -> None:
    paths = [real_graph(p) for p in ("02", "03", "05", "06", "07")]
    assert not kb.ingest(paths).failed
    docs = [ref.load(p) for p in paths]
    for k in (1, 2, 3, 5):
        _check_edges(recurring_edges(kb, min_graphs=k), ref.recurring(docs, k))
    shown = recurring_edges(kb, min_graphs=2, limit=7)
    assert len(shown.edges) == 7 and shown.n_found == len(ref.recurring(docs, 2))
    pair = recurring_edges(kb, Selection(slugs=(docs[0].slug, docs[1].slug)), min_graphs=2)
    _check_edges(pair, ref.recurring(docs[:2], 2))


@pytest.mark.slow
def test_the_english_and_french_opposite_graphs_share_76_of_346_features(kb: KB) -> None:
    en, fr = real_graph("02"), real_graph("03")
    assert not kb.ingest([en, fr]).failed
    a, b = ref.load(en), ref.load(fr)
    expected = ref.compare_summary(a, b)
    assert (expected["features_shared"], expected["features_union"]) == (76, 346)
    got = compare_graphs(kb, a.slug, b.slug)
    s = got.summary
    assert s["features_shared"] == 76 and s["features_a"] + s["features_b"] - s["features_shared"] == 346
    for name in ("features_jaccard", "feature_edges_jaccard", "weighted_overlap", "influence_spearman"):
        assert close(s[name], expected[name]), name
    features = got.nodes[got.nodes["kind"] == "feature"]
    assert len(got.only_in("a").query("kind == 'feature'")) == 177 - 76 and len(features) == 346
    # same prompt length: embeddings align by position and token; the shared '"' tokens match
    embeddings = got.nodes[(got.nodes["kind"] == "embedding") & got.nodes["in_a"] & got.nodes["in_b"]]
    assert sorted(embeddings["token"]) == sorted(t for i, t in enumerate(a.tokens) if b.tokens[i] == t)
    edges_a, edges_b = ref.feature_edges(a), ref.feature_edges(b)
    both = got.edges[got.edges["in_a"] & got.edges["in_b"] & (got.edges["source_kind"] == "feature") & (got.edges["target_kind"] == "feature")]
    assert len(both) == len(set(edges_a) & set(edges_b))
    row = both.iloc[0]
    key = tuple(tuple(int(x) for x in part.rsplit("/", 2)[-2:]) for part in (row.source.replace("L", ""), row.target.replace("L", "")))
    assert close(row.weight_a, edges_a[key]) and close(row.weight_b, edges_b[key]) and close(row.weight_diff, edges_b[key] - edges_a[key])
    json.dumps(got.as_dict())


@pytest.mark.slow
def test_dallas_texas_austin_two_hop_paths_and_strongest_paths(kb: KB) -> None:
    paths = [real_graph(p) for p in ("05", "06", "07")]
    assert not kb.ingest(paths).failed
    docs = [ref.load(p) for p in paths]
    names = _names(docs)
    got = two_hop_paths(kb, token="Dallas", via="Texas", top=None)
    expected = {
        (d.slug, *p["nodes"]): p for d in docs for p in ref.two_hops(d, ref.positions_of(d, "Dallas"), names, via="Texas")
    }
    found = _chain_set(got.paths, 2)
    assert found.keys() == expected.keys()
    for key, score in found.items():
        assert close(score, expected[key]["score"])
    by_slug = {slug for slug, *_ in found}
    # graph 05 labels its Texas features; graph 06 has no labels and is named through 05's
    assert {docs[0].slug, docs[1].slug} <= by_slug
    dallas = got.paths[got.paths["slug"] == docs[0].slug].iloc[0]
    assert "texas" in dallas["mid_name"].lower() and "Texas" not in " ".join(dallas["mid_tokens"])
    assert dallas["t_node_id"] == "27_22605_10" and dallas["shortcut_weight"] is not None
    for d, row in ((d, r) for d in docs for r in got.paths[got.paths["slug"] == d.slug].to_dict("records")):
        assert close(row["shortcut_weight"], expected[(d.slug, row["n0_node_id"], row["n1_node_id"], row["t_node_id"])]["shortcut"])

    strongest = strongest_paths(kb, docs[0].slug, token=" Dallas", top=6, max_hops=4)
    want = ref.strongest(docs[0], ref.positions_of(docs[0], "Dallas"), 6, 4)
    assert [tuple(n.node_id for n in p.nodes) for p in strongest.paths] == [p for _, p in want]
    assert all(close(p.score, s) for p, (s, _) in zip(strongest.paths, want))
    assert strongest.target.node_id == "27_22605_10"


@pytest.mark.slow
def test_scores_of_real_graphs_and_of_a_pinned_subgraph(kb: KB) -> None:
    paths = [real_graph("01"), real_graph("02")]
    assert not kb.ingest(paths).failed
    for path in paths:
        doc = ref.load(path)
        got = graph_scores(kb, doc.slug)
        replacement, completeness = ref.scores(doc)
        assert close(got.replacement, replacement, 1e-7) and close(got.completeness, completeness, 1e-7)
    doc = ref.load(paths[0])
    pinned = pinned_node_ids(kb, doc.slug)
    assert len(pinned) == 17
    sub = graph_scores(kb, doc.slug, node_ids=pinned)
    replacement, completeness = ref.scores(doc, keep=set(pinned))
    assert close(sub.replacement, replacement, 1e-7) and close(sub.completeness, completeness, 1e-7)
    assert sub.replacement < graph_scores(kb, doc.slug).replacement
    # a subgraph named by features keeps every node of each feature
    first = next(n for n, k in zip(doc.nodes, doc.keys) if k is not None)
    key = next(k for n, k in zip(doc.nodes, doc.keys) if n is first)
    tset = kb.select()[0].transcoder_set if kb.select()[0].slug == doc.slug else kb.select()[1].transcoder_set
    by_feature = graph_scores(kb, doc.slug, features=[FeatureKey(tset, *key)])
    keep = {n["node_id"] for n, k in zip(doc.nodes, doc.keys) if k == key}
    assert close(by_feature.replacement, ref.scores(doc, keep=keep)[0], 1e-7)


def test_pieces_of_a_real_graph_match_the_file(kb: KB) -> None:
    import jsonschema

    path = real_graph("01")
    assert not kb.ingest([path]).failed
    doc = ref.load(path)
    schema = json.loads((GRAPHS.parent / "neuronpedia-graph-schema.json").read_text())
    piece = top_piece(kb, doc.slug, 30)
    nodes, links = ref.top_nodes(doc, 30)
    assert {n["node_id"] for n in piece.doc["nodes"]} == nodes
    assert {(l["source"], l["target"], l["weight"]) for l in piece.doc["links"]} == links
    jsonschema.validate(piece.doc, schema)
    target = doc.nodes[doc.targets()[0]]["node_id"]
    for direction, hops, threshold in (("up", 2, 1.0), ("both", 1, 0.5), ("down", 3, 0.0)):
        start = target if direction == "up" else "E_651_1"
        got = neighbourhood_piece(kb, doc.slug, start, hops=hops, min_abs_weight=threshold, direction=direction, max_nodes=40)
        nodes, links = ref.neighbourhood(doc, start, hops, threshold, direction, 40)
        assert {n["node_id"] for n in got.doc["nodes"]} == nodes, direction
        assert {(l["source"], l["target"], l["weight"]) for l in got.doc["links"]} == links
        jsonschema.validate(got.doc, schema)
    kept_pins = set(piece.doc["qParams"]["pinnedIds"])
    assert kept_pins <= {n["node_id"] for n in piece.doc["nodes"]}


@pytest.mark.slow
def test_pieces_never_read_the_whole_graph(sqlite_kb: KB, monkeypatch: pytest.MonkeyPatch) -> None:
    from synth import write_large_graph

    path = write_large_graph(Path(sqlite_kb.config.home) / "large.json", n_links=60_000, n_nodes=2_500, seed=1)
    assert not sqlite_kb.ingest([path]).failed
    doc = ref.load(path)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a piece must not load the whole graph")

    monkeypatch.setattr(type(sqlite_kb.store), "load_graph", refuse)
    monkeypatch.setattr(type(sqlite_kb.store), "graph_skeleton", refuse)
    piece = top_piece(sqlite_kb, doc.slug, 50)
    assert ({n["node_id"] for n in piece.doc["nodes"]}, {(l["source"], l["target"], l["weight"]) for l in piece.doc["links"]}) == ref.top_nodes(doc, 50)
    start = piece.doc["nodes"][0]["node_id"]
    got = neighbourhood_piece(sqlite_kb, doc.slug, start, hops=2, min_abs_weight=2.0, max_nodes=60)
    nodes, links = ref.neighbourhood(doc, start, 2, 2.0, "both", 60)
    assert {n["node_id"] for n in got.doc["nodes"]} == nodes and len(got.doc["links"]) == len(links)


# --- random corpora against brute force -----------------------------------------------------------


_WORDS = ["The", " cat", " Dallas", " is", " of", " capital", " state", " big"]
_NAMES = ["Texas", "Dallas", "capital", "state", "is", "cities", ""]


def _random_graph(rng: random.Random, slug: str, pool: list[tuple[int, int]], with_target: bool = True) -> dict[str, Any]:
    tokens = ["<bos>", *rng.choices(_WORDS, k=rng.randint(3, 6))]
    last = len(tokens) - 1
    nodes = [embedding_node(100 + _WORDS.index(t) if t in _WORDS else 2, p) for p, t in enumerate(tokens)]
    layer_of = {n["node_id"]: -1 for n in nodes}
    pos_of = {n["node_id"]: n["ctx_idx"] for n in nodes}
    for layer, index in rng.sample(pool, rng.randint(6, 11)):
        for pos in sorted(rng.sample(range(1, last + 1), rng.choice([1, 1, 2]))):
            node = feature_node(layer, index, pos, round(rng.uniform(0.1, 5), 3), round(rng.uniform(0.1, 0.8), 4), rng.choice(_NAMES))
            nodes.append(node)
            layer_of[node["node_id"]], pos_of[node["node_id"]] = layer, pos
    for layer, pos in {(rng.randrange(0, 20), rng.randrange(1, last + 1)) for _ in range(3)}:
        node = error_node(layer, pos)
        nodes.append(node)
        layer_of[node["node_id"]], pos_of[node["node_id"]] = layer, pos
    probs = sorted((rng.uniform(0.05, 0.5) for _ in range(3)), reverse=True)
    for k, p in enumerate(probs):
        node = logit_node(500 + k, last, round(p, 3), with_target and k == 0)
        nodes.append(node)
        layer_of[node["node_id"]], pos_of[node["node_id"]] = 27, last
    links = []
    for target in nodes:
        tid = target["node_id"]
        if target["feature_type"] in ("embedding", "mlp reconstruction error"):
            continue
        sources = [n["node_id"] for n in nodes if layer_of[n["node_id"]] < layer_of[tid] and pos_of[n["node_id"]] <= pos_of[tid]]
        for sid in rng.sample(sources, min(len(sources), rng.randint(1, 6))):
            links.append({"source": sid, "target": tid, "weight": round(rng.choice([-1, 1]) * rng.uniform(0.05, 3.0), 4)})
    return {
        "metadata": {
            "slug": slug,
            "scan": "gemma-2-2b",
            "prompt_tokens": tokens,
            "prompt": "".join(tokens),
            "schema_version": 1,
            "info": {"transcoder_set": "mntss/clt-gemma-2-2b-2.5M"},
        },
        "qParams": {"pinnedIds": [], "supernodes": []},
        "nodes": nodes,
        "links": links,
    }


def _random_corpus(folder: Path, seed: int, n: int = 8) -> list[ref.Doc]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    pool = [(layer, 100 + rng.randrange(40)) for layer in range(0, 24, 2)]
    pool = sorted(set(pool + [(rng.randrange(0, 24), 100 + rng.randrange(40)) for _ in range(14)]))
    docs = []
    for i in range(n):
        doc = _random_graph(rng, f"rand-{seed}-{i}", pool, with_target=i != n - 1)
        write(folder / f"{doc['metadata']['slug']}.json", doc)
        docs.append(ref.from_doc(doc))
    return docs


@pytest.mark.slow
def test_random_corpora_match_brute_force(kb: KB, tmp_path: Path) -> None:
    docs = _random_corpus(tmp_path / "corpus", seed=11)
    assert not kb.ingest([tmp_path / "corpus"]).failed
    for k in (1, 2, 3, 4):
        _check_edges(recurring_edges(kb, min_graphs=k), ref.recurring(docs, k))

    for doc in docs[:4]:
        for pos in range(1, len(doc.tokens)):
            got = strongest_paths(kb, doc.slug, position=pos, top=4, max_hops=5)
            want = ref.strongest(doc, [pos], 4, 5)
            assert [round(p.score, 12) for p in got.paths] == [round(s, 12) for s, _ in want]
            strictly_better = [p for s, p in want if s > want[-1][0] + 1e-12] if want else []
            assert set(strictly_better) <= {tuple(n.node_id for n in p.nodes) for p in got.paths}

    names = _names(docs)
    for token, via in (("Dallas", None), ("capital", None), ("Dallas", "Texas")):
        got = two_hop_paths(kb, token=token, via=via, top=None)
        expected = {(d.slug, *p["nodes"]): p for d in docs for p in ref.two_hops(d, ref.positions_of(d, token), names, via)}
        found = _chain_set(got.paths, 2)
        assert found.keys() == expected.keys(), (token, via)
        assert all(close(s, expected[k]["score"]) for k, s in found.items())
        assert all(
            close(r["shortcut_weight"], expected[(r["slug"], r["n0_node_id"], r["n1_node_id"], r["t_node_id"])]["shortcut"])
            for r in got.paths.to_dict("records")
        )

    pool = sorted({k for d in docs for k in d.keys if k is not None})
    rng = random.Random(5)
    for steps in ([set(rng.sample(pool, 8)), set(rng.sample(pool, 8))], [None, set(rng.sample(pool, 6))], [set(rng.sample(pool, 10))]):
        refs = [None if s is None else [f"{CLT}/{layer}/{index}" for layer, index in sorted(s)] for s in steps]
        got = match_pattern(kb, refs)
        expected = {(d.slug, *p["nodes"]): p["score"] for d in docs for p in ref.pattern(d, steps)}
        found = _chain_set(got.matches, len(steps))
        assert found.keys() == expected.keys()
        assert all(close(s, expected[k]) for k, s in found.items())
        if len(got.matches):
            assert got.summary["n_graphs"].max() <= len(docs)

    a, b = docs[0], docs[1]
    summary = compare_graphs(kb, a.slug, b.slug).summary
    want = ref.compare_summary(a, b)
    assert summary["features_shared"] == want["features_shared"]
    for name in ("features_jaccard", "feature_edges_jaccard", "weighted_overlap", "influence_spearman"):
        assert close(summary[name], want[name]), name

    matrix = graph_similarity(kb, measure="features").matrix
    sets = {d.slug: {k for k in d.keys if k is not None} for d in docs}
    assert all(close(matrix.loc[x, y], ref.jaccard(sets[x], sets[y]) if x != y else 1.0) for x in sets for y in sets)
    edge_matrix = graph_similarity(kb, measure="edges", n_clusters=3)
    edge_sets = {d.slug: set(ref.feature_edges(d)) for d in docs}
    assert all(close(edge_matrix.matrix.loc[x, y], ref.jaccard(edge_sets[x], edge_sets[y]) if x != y else 1.0) for x in sets for y in sets)
    assert edge_matrix.clusters["cluster"].nunique() <= 3

    for doc in docs:
        got = graph_scores(kb, doc.slug)
        r, c = ref.scores(doc)
        assert close(got.replacement, r, 1e-7) and close(got.completeness, c, 1e-7)
        kept = {n["node_id"] for n, k in zip(doc.nodes, doc.keys) if k is not None and rng.random() < 0.5}
        got = graph_scores(kb, doc.slug, node_ids=sorted(kept))
        r, c = ref.scores(doc, keep=kept)
        assert close(got.replacement, r, 1e-7) and close(got.completeness, c, 1e-7)

    for doc in docs[:3]:
        piece = top_piece(kb, doc.slug, 7)
        assert ({n["node_id"] for n in piece.doc["nodes"]}, {(l["source"], l["target"], l["weight"]) for l in piece.doc["links"]}) == ref.top_nodes(doc, 7)
        start = doc.nodes[rng.randrange(len(doc.nodes))]["node_id"]
        for direction in ("up", "down", "both"):
            got = neighbourhood_piece(kb, doc.slug, start, hops=2, min_abs_weight=0.5, direction=direction, max_nodes=9)
            nodes, links = ref.neighbourhood(doc, start, 2, 0.5, direction, 9)
            assert {n["node_id"] for n in got.doc["nodes"]} == nodes
            assert {(l["source"], l["target"], l["weight"]) for l in got.doc["links"]} == links


@pytest.mark.slow
@pytest.mark.neo4j
def test_neo4j_answers_as_the_embedded_store(make_kb: Callable[..., KB], kb_env: Callable[[str, str], dict[str, str]], tmp_path: Path) -> None:
    from synth import generate_corpus

    info = generate_corpus(tmp_path / "synth", 16, seed=4, languages=("en", "fr"), family_size=2)
    answers = []
    for store in ("embedded", "neo4j"):
        env = {**kb_env("sqlite", store), "CIRCUITKB_HOME": str(tmp_path / f"home-{store}")}
        kb = make_kb("sqlite", store, env=env)
        assert not kb.ingest([tmp_path / "synth"], manifest=info.manifest).failed
        graphs = kb.select()
        edges = recurring_edges(kb, min_graphs=3, limit=12)
        steps = [[f"{r.src_transcoder_set}/{r.src_layer}/{r.src_index}" for r in edges.edges.itertuples()], None]
        first, second = graphs[0].slug, graphs[1].slug
        answers.append(
            _rounded(
                {
                    "edges": recurring_edges(kb, min_graphs=2).as_dict(),
                    "paths": [strongest_paths(kb, g.slug, position=-2, top=3).as_dict() for g in graphs[:4]],
                    "two_hop": two_hop_paths(kb, position=-2, top=5).as_dict(),
                    "pattern": match_pattern(kb, steps).as_dict(),
                    "compare": compare_graphs(kb, first, second).as_dict(),
                    "similarity": graph_similarity(kb, measure="edges").as_dict(),
                    "scores": [graph_scores(kb, g.slug).as_dict() for g in graphs[:4]],
                    "piece": top_piece(kb, first, 25).as_dict(),
                    "around": neighbourhood_piece(kb, first, top_piece(kb, first, 1).doc["nodes"][0]["node_id"], hops=2, min_abs_weight=0.5).as_dict(),
                }
            )
        )
    assert answers[0]["edges"]["edges"] and answers[0]["pattern"]["matches"] and answers[0]["two_hop"]["paths"]
    assert answers[0] == answers[1]


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


# --- pieces of the store API --------------------------------------------------------------------


def test_feature_edges_fold_positions_and_survive_storage() -> None:
    fids = np.array([-1, 7, 7, 9, -1])
    edges = fold_feature_edges(3, fids, np.array([1, 2, 1, 0, 3]), np.array([3, 3, 4, 3, 2]), np.array([0.5, 0.25, 1.0, 2.0, -1.0]))
    assert (edges.src.tolist(), edges.tgt.tolist(), edges.weight.tolist(), edges.n_links.tolist()) == ([7, 9], [9, 7], [0.75, -1.0], [2, 1])
    back = FeatureEdges.from_parts(3, list(edges.parts()))
    assert back.src.tolist() == [7, 9] and back.weight.tolist() == [0.75, -1.0]
    empty = fold_feature_edges(4, np.array([-1]), np.array([], dtype=int), np.array([], dtype=int), np.array([]))
    assert len(FeatureEdges.from_parts(4, list(empty.parts()))) == 0


def test_graphs_stored_before_feature_edges_get_theirs_from_their_links(kb: KB, caplog: pytest.LogCaptureFixture) -> None:
    from schema.sql import graph_feature_edges

    assert not kb.ingest([real_graph("02")]).failed
    gid = kb.select()[0].gid
    assert kb.store.graphs_without_feature_edges([gid]) == []  # written at ingest
    stored = kb.store.feature_edges([gid])[0]
    if kb.store.name == "embedded":
        with kb.engine.begin() as conn:
            conn.execute(graph_feature_edges.delete())
    else:
        kb.store.purge_feature_edges(gid)
    assert kb.store.graphs_without_feature_edges([gid]) == [gid]
    with caplog.at_level(logging.WARNING):
        computed = kb.store.feature_edges([gid])[0]
    assert "1 graphs have no stored feature edges" in caplog.text and "circuits backfill" in caplog.text
    assert computed.src.tolist() == stored.src.tolist() and computed.weight.tolist() == stored.weight.tolist()
    assert backfill_feature_edges(kb) == 1 and backfill_feature_edges(kb) == 0
    assert kb.store.graphs_without_feature_edges([gid]) == []
    assert kb.store.feature_edges([gid])[0].weight.tolist() == stored.weight.tolist()
    kb.store.purge(gid)
    assert not kb.store.save_feature_edges(stored) and kb.store.graphs_without_feature_edges([gid]) == [gid]


@pytest.mark.neo4j
def test_feature_edges_stored_as_byte_arrays_by_older_versions_still_read(make_kb: Callable[..., KB]) -> None:
    kb = make_kb("sqlite", "neo4j")  # only Neo4j ever stored them another way
    assert not kb.ingest([real_graph("02")]).failed
    gid = kb.select()[0].gid
    stored = kb.store.feature_edges([gid])[0]
    assert len(list(stored.parts())) == 1
    raw = {prop: bytes(part[key]) for part in stored.parts() for prop, key in (("src", "src"), ("tgt", "tgt"), ("w", "weight"), ("nl", "n_links"))}
    kb.store.run_write("MATCH (e:FeatureEdges {gid: $gid}) SET e.src = $src, e.tgt = $tgt, e.w = $w, e.nl = $nl", {"gid": gid, **raw})
    again = kb.store.feature_edges([gid])[0]
    assert again.src.tolist() == stored.src.tolist() and again.weight.tolist() == stored.weight.tolist()


def test_a_replaced_or_purged_graph_leaves_no_feature_edges(kb: KB, tmp_path: Path) -> None:
    docs = _random_corpus(tmp_path / "c", seed=2, n=2)
    assert not kb.ingest([tmp_path / "c"]).failed
    before = recurring_edges(kb, min_graphs=1).n_found
    changed = json.loads((tmp_path / "c" / f"{docs[0].slug}.json").read_text())
    changed["links"] = changed["links"][: len(changed["links"]) // 2]
    write(tmp_path / "c" / f"{docs[0].slug}.json", changed)
    assert not kb.ingest([tmp_path / "c"]).failed
    expected = ref.recurring([ref.from_doc(changed), docs[1]], 1)
    _check_edges(recurring_edges(kb, min_graphs=1), expected)
    assert before >= len(expected)
    gid = next(g.gid for g in kb.select() if g.slug == docs[0].slug)
    kb.store.purge(gid)
    assert kb.store.feature_edges([gid])[0].src.tolist() == []


def test_the_chain_query_sees_only_the_graphs_it_is_given(kb: KB, tmp_path: Path) -> None:
    docs = _random_corpus(tmp_path / "c", seed=3, n=3)
    assert not kb.ingest([tmp_path / "c"]).failed
    gids = {g.slug: g.gid for g in kb.select()}
    one = gids[docs[0].slug]
    matches = kb.store.chains([one], [Step(), Step()])
    assert matches and {m.gid for m in matches} == {one}
    assert kb.store.chains([], [Step()]) == []


def _totals_from_links(slug: str, kb: KB) -> tuple[int, np.ndarray]:
    """A stored graph's input totals recomputed from its stored links, in file order."""
    gid = next(g.gid for g in kb.select() if g.slug == slug)
    stored = kb.store.load_graph(gid)
    totals = np.zeros(len(stored.nodes))
    np.add.at(totals, stored.link_tgt, np.abs(stored.link_weight))
    return gid, totals


def test_each_node_keeps_its_input_total_and_a_replaced_graph_gets_new_ones(kb: KB, tmp_path: Path) -> None:
    docs = _random_corpus(tmp_path / "c", seed=6, n=2)
    assert not kb.ingest([tmp_path / "c", real_graph("02")]).failed

    def check(docs: list[ref.Doc]) -> None:
        for g in kb.select():
            gid, want = _totals_from_links(g.slug, kb)
            keys = [(gid, i) for i in range(len(want))]
            got = kb.store.input_totals(keys)
            # summed once at ingest in file order, as here: equal to the last bit
            assert [got[k] for k in keys] == want.tolist()
            assert [r["input_total"] for r in kb.store.node_rows(gid, range(len(want)))] == want.tolist()
            assert 0.0 in want.tolist() and want.max() > 0
        for doc in docs:
            gid = next(g.gid for g in kb.select() if g.slug == doc.slug)
            totals = doc.input_total()
            got = kb.store.input_totals([(gid, i) for i in range(len(doc.nodes))])
            assert all(got[(gid, i)] == totals.get(i, 0.0) for i in range(len(doc.nodes)))

    check(docs)
    changed = json.loads((tmp_path / "c" / f"{docs[0].slug}.json").read_text())
    changed["links"] = changed["links"][::2]
    write(tmp_path / "c" / f"{docs[0].slug}.json", changed)
    assert not kb.ingest([tmp_path / "c"]).failed
    check([ref.from_doc(changed), docs[1]])
    assert kb.export(docs[1].slug)["nodes"] == json.loads((tmp_path / "c" / f"{docs[1].slug}.json").read_text())["nodes"]


def test_the_store_scores_chains_and_keeps_the_best_of_each_graph(kb: KB, tmp_path: Path) -> None:
    _random_corpus(tmp_path / "c", seed=8, n=4)
    assert not kb.ingest([tmp_path / "c"]).failed
    gids = [g.gid for g in kb.select()]
    start = Step(positions={gid: frozenset({1, 2}) for gid in gids}, embeddings=True)
    for steps in ([Step(), Step()], [Step()], [start, Step()]):
        every = kb.store.chains(gids, steps)
        assert len({m.gid for m in every}) >= 2
        totals = kb.store.input_totals(sorted({(m.gid, i) for m in every for i in m.nodes[1:]}))
        assert all(m.totals == tuple(totals[(m.gid, i)] for i in m.nodes[1:]) for m in every)
        for top in (1, 3):
            want = sorted(m for gid in gids for m in sorted((m for m in every if m.gid == gid), key=lambda m: (-m.score, m.nodes))[:top])
            got = kb.store.chains(gids, steps, top)
            assert got == want and [(m.weights, m.fids, m.totals) for m in got] == [(m.weights, m.fids, m.totals) for m in want]
        counted: dict[tuple[int, tuple[int | None, ...]], list[float]] = {}
        for m in every:
            counted.setdefault((m.gid, m.fids[:-1]), []).append(m.score)
        groups = kb.store.chain_groups(gids, steps, at=range(len(steps)))
        # the store's scores are the same floating-point operations as ChainMatch.score
        assert {(g.gid, g.fids): (g.n_chains, g.best_score) for g in groups} == {k: (len(v), max(v)) for k, v in counted.items()}
        for top in (None, 1, 3):
            chains, both_groups = kb.store.chains_and_groups(gids, steps, range(len(steps)), top)
            alone = kb.store.chains(gids, steps, top)
            assert both_groups == groups and chains == alone and [(m.weights, m.fids, m.totals) for m in chains] == [(m.weights, m.fids, m.totals) for m in alone]
        middles = {(m.gid, m.fids[-2]) for m in every if m.fids[-2] is not None}
        some = {gid: frozenset(f for g, f in middles if g == gid) for gid in gids[:2]}
        through = [*steps[:-1], Step(graph_fids=some)]
        assert kb.store.chains(gids, through) == [m for m in every if m.gid in some and m.fids[-2] in some[m.gid]]
        firsts = {(m.gid, m.fids[0]) for m in every if m.fids[0] is not None}
        some = {gid: frozenset(f for g, f in firsts if g == gid) for gid in gids[1:3]}
        from_any = kb.store.chains(gids, [Step(), *steps[1:]])
        assert kb.store.chains(gids, [Step(graph_fids=some), *steps[1:]]) == [m for m in from_any if m.gid in some and m.fids[0] in some[m.gid]]
    assert kb.store.chain_groups([], [Step()], at=[0]) == [] and kb.store.chains(gids, [Step()], 1)


def test_chains_through_listed_features_are_the_chains_through_any_feature_kept_to_them(kb: KB, tmp_path: Path) -> None:
    # the embedded store starts such chains from the feature edges between two listed steps:
    # the same chains, counts and best scores as any-feature chains filtered afterwards
    _random_corpus(tmp_path / "c", seed=9, n=5)
    assert not kb.ingest([tmp_path / "c"]).failed
    gids = [g.gid for g in kb.select()]
    rng = random.Random(9)
    for n_steps in (2, 3):
        every = kb.store.chains(gids, [Step(embeddings=True)] + [Step()] * (n_steps - 1))
        # the features of some chains: each step lists some features and misses others
        some = rng.sample([m for m in every if m.fids[0] is not None], 3)
        listed = [frozenset(m.fids[i] for m in some) for i in range(n_steps)]
        assert all(any(m.fids[i] not in listed[i] for m in every) for i in range(n_steps))
        shapes = [listed, [None, *listed[1:]], [*listed[:-1], None]] + ([[listed[0], None, listed[2]]] if n_steps == 3 else [])
        for shape in shapes:
            for embeddings in (False, True):
                steps = [Step(fids=f, embeddings=embeddings and i == 0) if f is not None else Step(embeddings=embeddings and i == 0) for i, f in enumerate(shape)]

                def fits(m: ChainMatch) -> bool:
                    if m.fids[0] is None:  # an embedding
                        return embeddings and all(f is None or m.fids[i] in f for i, f in enumerate(shape) if i)
                    return all(f is None or m.fids[i] in f for i, f in enumerate(shape))

                want = [m for m in every if fits(m)]
                assert want, shape
                got = kb.store.chains(gids, steps)
                assert got == want and [(m.weights, m.totals, m.score) for m in got] == [(m.weights, m.totals, m.score) for m in want]
                for top in (1, 2):
                    best = sorted(m for gid in gids for m in sorted((m for m in want if m.gid == gid), key=lambda m: (-m.score, m.nodes))[:top])
                    assert kb.store.chains(gids, steps, top) == best
                groups = kb.store.chain_groups(gids, steps, at=range(n_steps))
                counted: dict[tuple[int, tuple[int | None, ...]], list[float]] = {}
                for m in want:
                    counted.setdefault((m.gid, m.fids[:-1]), []).append(m.score)
                assert {(g.gid, g.fids): (g.n_chains, g.best_score) for g in groups} == {k: (len(v), max(v)) for k, v in counted.items()}


def test_patterns_keep_the_best_paths_of_each_graph_and_summarise_every_path(kb: KB, tmp_path: Path) -> None:
    docs = _random_corpus(tmp_path / "c", seed=12, n=4)
    assert not kb.ingest([tmp_path / "c"]).failed
    every = match_pattern(kb, [None, None])
    best = match_pattern(kb, [None, None], top=2)
    expected = {(d.slug, *p["nodes"]): p["score"] for d in docs for p in ref.pattern(d, [None, None])}
    assert best.n_matches == every.n_matches == len(every.matches) == len(expected) > 0
    assert set(_chain_set(best.matches, 2)) <= set(_chain_set(every.matches, 2)) == set(expected)
    for slug, rows in every.matches.groupby("slug"):
        ranked = rows.assign(order=-rows["score"]).sort_values(["order", "n0_idx", "n1_idx", "t_idx"]).head(2)
        assert best.matches[best.matches["slug"] == slug][["n0_node_id", "n1_node_id", "t_node_id"]].values.tolist() == ranked[["n0_node_id", "n1_node_id", "t_node_id"]].values.tolist()
    # the summary counts every path, whatever the cut: per sequence, each graph's best path
    by_sequence: dict[tuple[Any, ...], dict[str, float]] = {}
    for d in docs:
        key_of = {n["node_id"]: k for n, k in zip(d.nodes, d.keys)}
        for p in ref.pattern(d, [None, None]):
            seen = by_sequence.setdefault((key_of[p["nodes"][0]], key_of[p["nodes"][1]]), {})
            seen[d.slug] = max(seen.get(d.slug, 0.0), p["score"])
    for summary in (every.summary, best.summary):
        got = {((r["n0_layer"], r["n0_index"]), (r["n1_layer"], r["n1_index"])): r for r in summary.to_dict("records")}
        assert got.keys() == by_sequence.keys()
        for sequence, per_graph in by_sequence.items():
            row = got[sequence]
            assert row["n_graphs"] == len(per_graph) and row["slugs"] == tuple(sorted(per_graph))
            assert close(row["best_score"], max(per_graph.values())) and close(row["mean_score"], sum(per_graph.values()) / len(per_graph))
    assert best.as_dict()["n_matches"] == len(expected) and best.as_dict()["top"] == 2
    with pytest.raises(CircuitKBError, match="top"):
        match_pattern(kb, [None], top=0)


def test_a_pattern_over_all_graphs_answers_as_over_the_graphs_named(kb: KB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CircuitKBError, match="matches 0 graph"):
        match_pattern(kb, [None, None])
    docs = _random_corpus(tmp_path / "c", seed=13, n=4)
    assert not kb.ingest([tmp_path / "c"]).failed
    every = match_pattern(kb, [None, None], top=3)
    named = match_pattern(kb, [None, None], Selection(slugs=tuple(d.slug for d in docs)), top=3)
    assert every.matches.to_dict("records") == named.matches.to_dict("records") and len(every.matches)
    assert every.summary.to_dict("records") == named.summary.to_dict("records") and every.n_matches == named.n_matches
    # the store matches the paths while the graphs are described: a graph removed in between
    # (here: left out of the descriptions) is left out of the answer, paths and summary
    gone = docs[0].slug
    describe = analysis_features.chosen_graphs
    monkeypatch.setattr(analysis_features, "chosen_graphs", lambda *a, **k: [g for g in describe(*a, **k) if g.slug != gone])
    without = match_pattern(kb, [None, None], top=3)
    assert gone in set(every.matches["slug"]) and gone not in set(without.matches["slug"])
    assert without.matches.to_dict("records") == every.matches[every.matches["slug"] != gone].reset_index(drop=True).to_dict("records")
    assert all(gone not in row["slugs"] for row in without.summary.to_dict("records"))


def _two_hop_graph(rng: random.Random, slug: str, twice: bool = False) -> dict[str, Any]:
    """Many paths " Dallas" -> intermediate -> answer: features and the embedding at position 1
    feed features at positions 1-3 (some named only by "", some by a token where they sit), which
    feed the logits. ``twice``: " Dallas" is at positions 1 and 3, paths start at both and pass
    through features at positions 3 and 4."""
    tokens = ["<bos>", " Dallas", " is", " Dallas" if twice else " in", " the"]
    nodes = [embedding_node(100 + p, p) for p in range(len(tokens))]
    embeddings = [nodes[1], nodes[3]] if twice else [nodes[1]]
    features = [feature_node(2, 100 + i, rng.choice([1, 3]) if twice else 1, 1.0, 0.5, rng.choice(["Dallas", ""])) for i in rng.sample(range(6), 4)]
    starts = embeddings + features
    names = {10: "Texas", 11: "state", 12: "", 13: "", 14: "is", 15: "capital", 16: "Texas state"}
    middles = [feature_node(8, 100 + i, pos, 1.0, 0.5, names[i] if rng.random() < 0.8 else "") for i, pos in zip(rng.sample(sorted(names), 5), (3, 3, 4, 4, 4) if twice else (1, 2, 2, 3, 4))]
    logits = [logit_node(500 + k, 4, 0.5 - 0.1 * k, k == 0) for k in range(3)]
    nodes += features + middles + logits
    links = []
    for middle in middles:
        for start in rng.sample(starts, 3):
            links.append({"source": start["node_id"], "target": middle["node_id"], "weight": round(rng.uniform(-2, 2), 3)})
        for logit in rng.sample(logits, 2):
            links.append({"source": middle["node_id"], "target": logit["node_id"], "weight": round(rng.uniform(-2, 2), 3)})
    for start in features:
        links.append({"source": nodes[1]["node_id"], "target": start["node_id"], "weight": 1.0})
        links.append({"source": start["node_id"], "target": logits[0]["node_id"], "weight": round(rng.uniform(-1, 1), 3)})
    doc = small_graph(slug)
    doc["metadata"].update(prompt_tokens=tokens, prompt="".join(tokens))
    doc["qParams"] = {"pinnedIds": [], "supernodes": []}
    return {**doc, "nodes": nodes, "links": links}


def _ingest_two_hop_graphs(kb: KB, folder: Path, rng: random.Random, n: int) -> list[dict[str, Any]]:
    """``n`` graphs of :func:`_two_hop_graph` (slugs hop-0, hop-1, ...) written to ``folder`` and ingested."""
    folder.mkdir()
    raw = [_two_hop_graph(rng, f"hop-{i}") for i in range(n)]
    for doc in raw:
        write(folder / f"{doc['metadata']['slug']}.json", doc)
    assert not kb.ingest([folder]).failed
    return raw


def test_two_hop_paths_keep_the_best_of_each_graph_and_count_every_unnamed_path(kb: KB, tmp_path: Path) -> None:
    rng = random.Random(4)
    raw = _ingest_two_hop_graphs(kb, tmp_path / "c", rng, 4)
    docs = [ref.from_doc(doc) for doc in raw]
    names = _names(docs)
    for via in (None, "Texas"):
        expected = {(d.slug, *p["nodes"]): p for d in docs for p in ref.two_hops(d, ref.positions_of(d, "Dallas"), names, via)}
        every = two_hop_paths(kb, token="Dallas", via=via, top=None)
        found = _chain_set(every.paths, 2)
        assert found.keys() == expected.keys() and all(close(score, expected[key]["score"]) for key, score in found.items())
        for top in (1, 2):
            cut = two_hop_paths(kb, token="Dallas", via=via, top=top)
            assert cut.unnamed == every.unnamed
            assert cut.paths.to_dict("records") == every.paths.groupby("slug").head(top).to_dict("records")
    # paths through a feature that nothing names are counted, not shown
    unnamed_paths = 0
    for d in docs:
        starts = {i for i, n in enumerate(d.nodes) if n["ctx_idx"] == 1 and d.kind(i) in ("feature", "embedding")}
        for s, m, _ in d.links:
            if s in starts and d.kind(m) == "feature" and d.keys[m] not in names:
                unnamed_paths += sum(1 for a, t, _ in d.links if a == m and t in d.targets())
    assert every.unnamed == unnamed_paths > 0 and len(every.paths) > 8


@pytest.mark.neo4j
def test_neo4j_nodes_written_without_input_totals_get_them_from_their_links(make_kb: Callable[..., KB], tmp_path: Path) -> None:
    from kb.analysis.graphview import node_details

    kb = make_kb("sqlite", "neo4j")
    docs = _random_corpus(tmp_path / "c", seed=9, n=3)
    assert not kb.ingest([tmp_path / "c"]).failed
    gid, totals = _totals_from_links(docs[0].slug, kb)
    # a feature with links in and out, so that its inputs' shares divide by its own total
    busiest = max((i for i in range(len(docs[0].nodes)) if docs[0].kind(i) == "feature"), key=lambda i: sum(1 for s, t, _ in docs[0].links if i in (s, t)))

    def answers() -> Any:
        details = node_details(kb, docs[0].slug, docs[0].nodes[busiest]["node_id"], top=100)
        return _rounded(
            {
                "totals": [kb.store.input_totals([(gid, i)])[(gid, i)] for i in range(len(totals))],
                "two_hop": two_hop_paths(kb, token="Dallas", top=2).as_dict(),
                "pattern": match_pattern(kb, [None, None], top=3).as_dict(),
                "details": [details.input_total, *(f.astype(object).where(f.notna(), None).to_dict("records") for f in (details.inputs, details.outputs))],
            }
        )

    before = answers()
    assert before["totals"] == _rounded(totals.tolist()) and before["pattern"]["matches"] and before["details"][1]
    kb.store.run_write("MATCH (n:Node) REMOVE n.input_total", {})  # as graphs written by older versions
    assert kb.store.node_rows(gid, [0])[0]["input_total"] is None
    assert answers() == before


def test_a_feature_has_a_name_when_a_label_or_description_is_not_blank(sqlite_kb: KB) -> None:
    from datetime import datetime, timezone

    from sqlalchemy import insert

    from kb.analysis.tokens import feature_names
    from schema.sql import descriptions, features

    texts = {1: [" \u00a0\t\n"], 2: ["", " x "], 3: ["\u3000"], 4: []}
    with sqlite_kb.engine.begin() as conn:
        conn.execute(insert(features), [{"id": fid, "transcoder_set": "t", "layer": 0, "index": fid} for fid in texts])
        rows = [(fid, text) for fid, some in texts.items() for text in some]
        conn.execute(
            insert(descriptions),
            [{"feature_id": fid, "source": "clerp", "text": text, "text_hash": str(i), "created_at": datetime.now(timezone.utc)} for i, (fid, text) in enumerate(rows)],
        )
    assert feature_names(sqlite_kb, texts) == {1: [], 2: ["x"], 3: [], 4: []}


def test_token_positions_count_from_the_end_and_match_text() -> None:
    from kb.selection import GraphInfo

    graph = GraphInfo(1, "g", "", ("<bos>", "The", " Dallas", " is", " Dallas"), None, "t", None, None)
    assert token_positions(graph, token="dallas") == (2, 4)
    assert token_positions(graph, position=-1) == (4,)
    with pytest.raises(CircuitKBError, match="outside"):
        token_positions(graph, position=9)
    with pytest.raises(CircuitKBError, match="either"):
        token_positions(graph)


def test_jaccard_matrix_of_sets() -> None:
    m = jaccard_matrix([np.array([1, 2, 3]), np.array([2, 3, 4]), np.array([], dtype=np.int64)])
    assert m.tolist() == [[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_cypher_builders_carry_values_only_as_parameters() -> None:
    hostile = "x' }) DETACH DELETE n //"
    query, params = cq.find_nodes_query(3, hostile)
    assert hostile not in query and params["node_id"] == hostile
    steps = [Step(fids=frozenset({98765}), positions={1: frozenset({2})}, embeddings=True), Step(graph_fids={1: frozenset({43210})})]
    for query, params in (cq.chain_query([1, 2], steps, top=77777), cq.chain_groups_query([1, 2], steps, at=[0, 1])):
        assert "$f0" in query and "$p0" in query and "$g1" in query and params["f0"] == [98765] and params["p0"] == {"1": [2]}
        assert params["g1"] == {"1": [43210]} and not any(v in query for v in ("98765", "43210", "77777"))
    assert "$top" in cq.chain_query([1], steps, top=77777)[0]
    edges = fold_feature_edges(4, np.array([7, 9, -1]), np.array([0, 1]), np.array([1, 0]), np.array([0.5, -2.0]))
    part = next(edges.parts())
    query, params = cq.create_feature_edges(4, part)
    assert "$src" in query and params["gid"] == 4 and base64.b64decode(params["w"]) == part["weight"]
    stored_as_text = {"gid": 4, "part": 0, **{prop: params[prop] for prop in ("src", "tgt", "w", "nl")}}
    stored_as_bytes = {**stored_as_text, **{prop: base64.b64decode(params[prop]) for prop in ("src", "tgt", "w", "nl")}}
    for record in (stored_as_text, stored_as_bytes):
        back = FeatureEdges.from_parts(4, [cq.part_of_record(record)])
        assert back.src.tolist() == [7, 9] and back.weight.tolist() == [0.5, -2.0]
    for query, params in (cq.read_feature_edges([3, 4]), cq.graphs_with_feature_edges([4, 3, 4]), cq.delete_feature_edges(4)):
        assert "$gid" in query and "4" not in query.replace("$gid", "")


# --- the CLI -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_commands_print_json_with_feature_objects(kb_env: Callable[[str, str], dict[str, str]], tmp_path: Path) -> None:
    env = kb_env("sqlite", "embedded")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return json.loads(result.output) if "--json" in args else result.output

    run("ingest", str(real_graph("05")), str(real_graph("06")), "--json")
    slugs = [ref.load(real_graph(p)).slug for p in ("05", "06")]
    edges = run("circuits", "edges", "--json")
    assert set(edges["edges"][0]["source"]) >= {"transcoder_set", "layer", "index"}
    paths = run("circuits", "paths", slugs[0], "--token", "Dallas", "--json")
    assert paths["paths"] and paths["paths"][0]["nodes"][0]["feature"]["layer"] >= 0
    hops = run("circuits", "two-hop", "--token", "Dallas", "--via", "texas", "--json")
    assert hops["paths"] and hops["paths"][0]["nodes"][1]["feature"]["transcoder_set"] == CLT
    first = edges["edges"][0]["source"]
    pattern = run("circuits", "pattern", "--step", f"{first['transcoder_set']}/{first['layer']}/{first['index']}", "--step", "any", "--json")
    assert pattern["summary"] and pattern["summary"][0]["features"][0] == first
    compared = run("compare", *slugs, "--json")
    assert compared["summary"]["features_shared"] > 0 and compared["nodes"][0]["key"]
    assert run("compare", "--graph", slugs[0], "--graph", slugs[1], "--json")["matrix"][0][0] == 1.0
    scores = run("scores", slugs[0], "--json")
    assert 0 < scores["replacement"] < 1 and scores["subgraph"] is False
    piece = run("subgraph", slugs[0], "--top", "20", "--json")
    assert piece["metadata"]["circuitkb_piece"]["source_slug"] == slugs[0] and piece["links"]
    out = tmp_path / "piece.json"
    run("subgraph", slugs[0], "--around", "27_22605_10", "--hops", "1", "-o", str(out))
    assert json.loads(out.read_text())["nodes"]
    first_text = f"L{first['layer']}/{first['index']}"
    assert first_text in run("circuits", "edges")
    assert first_text in run("circuits", "pattern", "--step", f"{first['transcoder_set']}/{first['layer']}/{first['index']}", "--step", "any")
    assert "texas" in run("circuits", "two-hop", "--token", "Dallas", "--via", "texas").lower()
    for args in (("circuits", "paths", slugs[0], "--position", "-1"), ("compare", *slugs), ("scores", slugs[0]), ("subgraph", slugs[0], "--top", "5")):
        assert run(*args)
    assert "error:" in run("compare", "only-one", code=2)
    assert "error:" in run("subgraph", slugs[0], code=2)
    assert "error:" in run("circuits", "paths", "no-such-graph", "--position", "1", code=2)


def test_errors_a_user_can_act_on(sqlite_kb: KB) -> None:
    assert not sqlite_kb.ingest([real_graph("02")]).failed
    slug = sqlite_kb.select()[0].slug
    with pytest.raises(NotFoundError):
        strongest_paths(sqlite_kb, "nope", position=1)
    with pytest.raises(CircuitKBError, match="min_graphs"):
        recurring_edges(sqlite_kb, min_graphs=0)
    with pytest.raises(CircuitKBError, match="two different"):
        compare_graphs(sqlite_kb, slug, slug)
    with pytest.raises(NotFoundError, match="no node"):
        neighbourhood_piece(sqlite_kb, slug, "nope")
    with pytest.raises(CircuitKBError, match="at least 2"):
        graph_similarity(sqlite_kb)
    assert match_pattern(sqlite_kb, [[f"{CLT}/3/99999"], None]).matches.empty


def test_huge_graphs_fold_their_feature_edges_a_range_of_features_at_a_time_with_the_same_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import kb.stores.circuit_queries as circuit_queries

    rng = np.random.default_rng(0)
    fids = rng.integers(-1, 50, size=300)
    src = rng.integers(0, 300, size=50_000).astype(np.int32)
    tgt = rng.integers(0, 300, size=50_000).astype(np.int32)
    weight = rng.normal(size=50_000)
    whole = circuit_queries.fold_feature_edges(1, fids, src, tgt, weight)
    monkeypatch.setattr(circuit_queries, "FOLD_CHUNK", 7_000)
    pieces = list(circuit_queries.feature_edge_pieces(1, fids, src, tgt, weight))
    assert len(pieces) > 3 and all(a.src.max() < b.src.min() for a, b in zip(pieces, pieces[1:]))
    sliced = circuit_queries.fold_feature_edges(1, fids, src, tgt, weight)
    assert (whole.src == sliced.src).all() and (whole.tgt == sliced.tgt).all()
    assert (whole.n_links == sliced.n_links).all()
    # each pair's weights are summed in file order either way: the same sums to the last bit
    assert (whole.weight == sliced.weight).all()
    # stored a part at a time, the parts read back as the whole
    monkeypatch.setattr(circuit_queries, "FEATURE_EDGE_PART", 300)
    graph = SimpleNamespace(nodes=[SimpleNamespace(idx=i, feature_key=None if f < 0 else int(f)) for i, f in enumerate(fids)], link_src=src, link_tgt=tgt, link_weight=weight)
    parts = list(circuit_queries.fold_parsed_graph(1, graph, {int(f): int(f) for f in fids if f >= 0}).parts())
    assert [p["part"] for p in parts] == list(range(len(parts))) and all(p["n"] <= 300 for p in parts)
    back = FeatureEdges.from_parts(1, parts)
    assert (back.src == whole.src).all() and (back.tgt == whole.tgt).all() and (back.weight == whole.weight).all()


def test_a_huge_graph_without_feature_edges_folds_to_one_empty_part(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import kb.stores.circuit_queries as circuit_queries

    monkeypatch.setattr(circuit_queries, "FOLD_CHUNK", 10)
    # features 0-4 at nodes 0-4 send links only to nodes that are not features
    fids = np.array([0, 1, 2, 3, 4, -1, -1])
    src = np.arange(100, dtype=np.int32) % 5
    tgt = np.full(100, 5, dtype=np.int32)
    weight = np.ones(100)
    pieces = list(circuit_queries.feature_edge_pieces(1, fids, src, tgt, weight))
    assert len(pieces) == 1 and len(pieces[0]) == 0
    assert len(circuit_queries.fold_feature_edges(1, fids, src, tgt, weight)) == 0
    graph = SimpleNamespace(nodes=[SimpleNamespace(idx=i, feature_key=None if f < 0 else int(f)) for i, f in enumerate(fids)], link_src=src, link_tgt=tgt, link_weight=weight)
    parts = list(circuit_queries.fold_parsed_graph(1, graph, {int(f): int(f) for f in fids if f >= 0}).parts())
    assert [(p["part"], p["n"]) for p in parts] == [(0, 0)]


@pytest.mark.parametrize("kept_paths", [1, 3])
def test_two_hop_paths_read_from_the_kept_path_groups_are_those_the_store_matches(kb: KB, tmp_path: Path, kept_paths: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.aggregates import paths
    from kb.aggregates.reads import PATHS_STALE_KEY, graph_path_groups
    from schema.sql import kb_meta

    # groups keeping their best path alone leave many graphs to the store; keeping three, few
    monkeypatch.setattr(paths, "KEPT_PATHS", kept_paths)
    rng = random.Random(7)
    _ingest_two_hop_graphs(kb, tmp_path / "c", rng, 12)
    # graphs where paths start at two positions of one token
    twice = [write(tmp_path / f"twice-{i}.json", _two_hop_graph(rng, f"twice-{i}", twice=True)) for i in range(6)]
    assert not kb.ingest(twice).failed
    # a graph replaced and one removed: their old groups must be gone
    write(tmp_path / "c" / "hop-0.json", _two_hop_graph(rng, "hop-0"))
    assert not kb.ingest([tmp_path / "c" / "hop-0.json"]).failed
    kb.remove(["hop-1"])

    def answers() -> list[dict[str, Any]]:
        return [
            two_hop_paths(kb, token=token, via=via, top=top).as_dict()
            for token in ("Dallas", "is")
            for via in (None, "Texas")
            for top in (None, 1, 2, 3, 5)
        ] + [two_hop_paths(kb, position=-2, top=2).as_dict()]

    # the store is asked only for the graphs whose best paths are not all their groups' best paths
    asked: list[int] = []
    chains = kb.store.chains

    def counted(gids: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        asked.extend(gids)
        return chains(gids, *args, **kwargs)

    kb.store.chains = counted  # type: ignore[method-assign]
    kept = answers()
    from_groups = len(asked)
    with kb.engine.begin() as conn:
        conn.execute(kb_meta.insert().values(key=PATHS_STALE_KEY, value="a test"))
    asked.clear()
    assert answers() == kept
    assert any(a["paths"] for a in kept) and any(a["unnamed_skipped"] for a in kept)
    assert from_groups < len(asked), (from_groups, len(asked))
    with kb.engine.connect() as conn:
        more = [len(graph_path_groups(conn, gid).more) for gid in kb.graph_ids()]
    if kept_paths == 1:
        assert 0 < from_groups and not any(more)  # both ways taken
    else:
        assert any(more)


def test_spearman_matches_scipy_with_ties_constants_and_gaps() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    for n in (3, 4, 10, 200):
        for ties in (False, True):
            x = rng.normal(size=n)
            y = x * rng.normal() + rng.normal(size=n)
            if ties:
                x, y = np.round(x), np.round(y * 2) / 2
            want = spearmanr(x, y).statistic
            got = spearman(list(x), list(y))
            assert (got is None) if np.isnan(want) else got == pytest.approx(want, abs=1e-12)
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None  # a constant side
    assert spearman([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0]) is None
    assert spearman([1.0, 2.0, 3.0], [30.0, 20.0, 10.0]) == pytest.approx(-1.0)
