"""The synthetic corpus generator: format, determinism, calibration and planted ground truth."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import math
import random
import re
import tracemalloc
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import synth
from synth import (
    CLT_FEATURE_TYPE,
    CREATOR_NAME,
    GENERATOR_NAME,
    LOGIT_LAYER,
    REAL_STATS,
    SLUG_PREFIX,
    CorpusInfo,
    calibrate,
    cantor_pair,
    cantor_unpair,
    expected_iou,
    generate_corpus,
    generate_graph,
    tokenize,
    write_large_graph,
)
from synth.files import write_graph
from synth.graph import build_graph
from synth.large import allocate
from synth.model import default_model
from synth.vocabulary import universe_for
from tests.conftest import DATA, GRAPHS

ID_PATTERNS = {
    CLT_FEATURE_TYPE: re.compile(r"^(\d+)_(\d+)_(\d+)$"),
    "mlp reconstruction error": re.compile(r"^0_(\d+)_(\d+)$"),
    "embedding": re.compile(r"^E_(\d+)_(\d+)$"),
    "logit": re.compile(rf"^{LOGIT_LAYER}_(\d+)_(\d+)$"),
}
NODE_FIELDS = ["node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit",
               "run_idx", "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusInfo:
    return generate_corpus(tmp_path_factory.mktemp("corpus"), 120, seed=7, family_size=6)


@pytest.fixture(scope="module")
def graphs(corpus: CorpusInfo) -> dict[str, dict[str, Any]]:
    out = {}
    for path in corpus.paths:
        with open(path, encoding="utf-8") as fh:
            graph = json.load(fh)
        out[graph["metadata"]["slug"]] = graph
    return out


def _features_by_layer(graph: dict[str, Any]) -> dict[int, set[int]]:
    found: dict[int, set[int]] = defaultdict(set)
    for node in graph["nodes"]:
        if node["feature_type"] == CLT_FEATURE_TYPE:
            layer, index = cantor_unpair(node["feature"])
            found[layer].add(index)
    return found


def _all_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- determinism -----------------------------------------------------------------------------

@pytest.mark.slow
def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate_corpus(tmp_path / "a", 25, seed=3)
    generate_corpus(tmp_path / "b", 25, seed=3)
    generate_corpus(tmp_path / "c", 25, seed=4)
    a, b, c = (_all_files(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) == 26  # 25 graphs and the manifest
    assert a != c


def test_gzip_is_deterministic_and_holds_the_same_json(tmp_path: Path) -> None:
    plain = generate_corpus(tmp_path / "plain", 6, seed=5)
    gz1 = generate_corpus(tmp_path / "gz1", 6, seed=5, gzip=True)
    generate_corpus(tmp_path / "gz2", 6, seed=5, gzip=True)
    assert _all_files(tmp_path / "gz1") == _all_files(tmp_path / "gz2")
    for p, g in zip(plain.paths, gz1.paths):
        assert g.name == p.name + ".gz"
        assert gzip.decompress(g.read_bytes()) == p.read_bytes()


@pytest.mark.slow
def test_worker_processes_do_not_change_the_bytes(tmp_path: Path) -> None:
    generate_corpus(tmp_path / "one", 30, seed=11, workers=1)
    generate_corpus(tmp_path / "two", 30, seed=11, workers=2)
    assert _all_files(tmp_path / "one") == _all_files(tmp_path / "two")


def test_generate_graph_is_seeded_and_matches_the_writer() -> None:
    a = generate_graph(random.Random(5), seed=1)
    b = generate_graph(random.Random(5), seed=1)
    assert a == b
    assert a["metadata"]["slug"].startswith(SLUG_PREFIX)
    assert json.loads(json.dumps(a)) == a
    spec = synth.sample_prompt(random.Random(9), "fr")
    graph = build_graph(random.Random(2), spec, universe_for(0), default_model(), {},
                        frozenset(), "synth-x", True, True, 0)
    text = io.StringIO()
    write_graph(graph, text)
    assert text.getvalue() == json.dumps(graph.as_dict(), ensure_ascii=False, separators=(",", ":"))


# -- format ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_files_have_the_real_structure(graphs: dict[str, dict[str, Any]]) -> None:
    for slug, g in graphs.items():
        assert list(g) == ["metadata", "qParams", "nodes", "links"]
        meta = g["metadata"]
        assert slug.startswith(SLUG_PREFIX)
        assert meta["scan"] == "gemma-2-2b" and meta["schema_version"] == 1
        assert meta["prompt"].startswith("<bos>") and meta["prompt"] == "".join(meta["prompt_tokens"])
        assert meta["info"]["creator_name"] == CREATOR_NAME
        assert meta["info"]["generator"]["name"] == GENERATOR_NAME
        assert meta["info"]["transcoder_set"] == "mntss/clt-gemma-2-2b-2.5M"
        assert meta["pruning_settings"] == {"node_threshold": 0.8, "edge_threshold": 0.85}
        assert set(g["qParams"]) == {"pinnedIds", "supernodes", "linkType", "clickedId", "sg_pos"}
        _check_nodes(g)
        _check_links(g)


def _check_nodes(g: dict[str, Any]) -> None:
    n_tokens = len(g["metadata"]["prompt_tokens"])
    last = n_tokens - 1
    ids = [n["node_id"] for n in g["nodes"]]
    assert len(ids) == len(set(ids)), "node ids must be unique within a file"
    kinds = [n["feature_type"] for n in g["nodes"]]
    blocks = [k for k, _ in itertools.groupby(kinds)]
    assert blocks == [CLT_FEATURE_TYPE, "mlp reconstruction error", "embedding", "logit"]
    for n in g["nodes"]:
        assert list(n) == NODE_FIELDS
        m = ID_PATTERNS[n["feature_type"]].match(n["node_id"])
        assert m, n["node_id"]
        assert n["run_idx"] == 0 and n["reverse_ctx_idx"] == 0
        kind = n["feature_type"]
        if kind == CLT_FEATURE_TYPE:
            layer, index, pos = map(int, m.groups())
            assert (layer, index) == cantor_unpair(n["feature"]) and index >= synth.MIN_FEATURE_INDEX
            assert n["layer"] == str(layer) and n["ctx_idx"] == pos and 1 <= pos <= last
            assert n["jsNodeId"] == f"{layer}_{index}-0"
            assert n["activation"] > 0 and 0 < n["influence"] <= 0.81
        elif kind == "mlp reconstruction error":
            layer, pos = map(int, m.groups())
            assert n["feature"] == -1 and n["layer"] == str(layer) and n["jsNodeId"] == f"{layer}_{pos}-0"
            assert n["activation"] is None
        elif kind == "embedding":
            vocab, pos = map(int, m.groups())
            assert n["layer"] == "E" and n["feature"] == pos and n["jsNodeId"] == f"E_{vocab}-{pos}"
        else:
            vocab, pos = map(int, m.groups())
            assert n["layer"] == LOGIT_LAYER and pos == last and n["feature"] == vocab
            assert n["influence"] is None and n["clerp"].startswith('Output "')
            assert n["jsNodeId"] == f"L_{vocab}-{pos}"
    logits = [n for n in g["nodes"] if n["feature_type"] == "logit"]
    assert 9 <= len(logits) <= 10
    assert [n["is_target_logit"] for n in logits] == [True] + [False] * (len(logits) - 1)
    probs = [n["token_prob"] for n in logits]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0
    assert sum(1 for n in g["nodes"] if n["feature_type"] == "embedding") == n_tokens


def _check_links(g: dict[str, Any]) -> None:
    index = {n["node_id"]: i for i, n in enumerate(g["nodes"])}
    nodes = g["nodes"]
    order = []
    for link in g["links"]:
        s, t = index[link["source"]], index[link["target"]]
        assert isinstance(link["weight"], float) and link["weight"] != 0.0
        src, tgt = nodes[s], nodes[t]
        assert tgt["feature_type"] in (CLT_FEATURE_TYPE, "logit")
        assert src["feature_type"] != "logit"
        assert src["ctx_idx"] <= tgt["ctx_idx"]
        if src["feature_type"] != "embedding" and tgt["feature_type"] != "logit":
            assert int(src["layer"]) < int(tgt["layer"])
        order.append((t, s))
    assert order == sorted(order) and len(set(order)) == len(order)


@pytest.mark.slow
def test_files_validate_against_the_neuronpedia_schema(graphs: dict[str, dict[str, Any]]) -> None:
    schema = json.loads((DATA / "neuronpedia-graph-schema.json").read_text())
    for g in list(graphs.values())[:10]:
        jsonschema.validate(g, schema)


def test_tokens_and_ids_imitate_gemma() -> None:
    assert tokenize('The opposite of "small" is "') == ["The", " opposite", " of", ' "', "small", '"', " is", ' "']
    assert tokenize("calc: 36+59=") == ["calc", ":", " 3", "6", "+", "5", "9", "="]
    assert cantor_unpair(275619980) == (0, 23477)  # a real node of graph 02: 0_23477_1
    assert cantor_pair(*cantor_unpair(12_345_678_901)) == 12_345_678_901
    assert synth.token_id("<bos>") == 2


def test_languages_are_honoured(tmp_path: Path) -> None:
    info = generate_corpus(tmp_path, 20, seed=2, languages=("en", "fr"), family_size=2)
    langs = {row["language"] for row in csv.DictReader(open(info.manifest, encoding="utf-8"))}
    assert langs <= {"en", "fr"} and "fr" in langs
    with pytest.raises(ValueError):
        generate_corpus(tmp_path / "x", 2, languages=("xx",))


@pytest.mark.slow
def test_manifest_lists_every_file(corpus: CorpusInfo) -> None:
    with open(corpus.manifest, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "family", "language", "tags"]
    assert [corpus.out_dir / r["path"] for r in rows] == corpus.paths
    families = {f.name: f for f in corpus.families}
    for row in rows:
        family = families[row["family"]]
        tags = row["tags"].split(";")
        assert family.kind in tags and "synthetic" in tags
        assert row["language"] in synth.SUPPORTED_LANGUAGES
    assert sum(len(f.slugs) for f in corpus.families) == len(rows) == 120


# -- calibration -----------------------------------------------------------------------------

def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * abs(b)


@pytest.mark.slow
def test_statistics_match_the_real_graphs(corpus: CorpusInfo) -> None:
    got, real = calibrate(corpus.paths), REAL_STATS
    for kind in "FREL":
        assert _close(got["nodes"][kind], real["nodes"][kind], 0.2), kind
    assert _close(got["links"], real["links"], 0.25)
    assert _close(got["links_per_node"], real["links_per_node"], 0.2)
    for pair in synth.LINK_KINDS:
        assert abs(got["link_kinds"][pair] - real["link_kinds"][pair]) < 0.06, pair
        assert abs(got["positive_fraction"][pair] - real["positive_fraction"][pair]) < 0.05, pair
        assert abs(got["same_position_fraction"][pair] - real["same_position_fraction"][pair]) < 0.1, pair
        for q in (4, 5, 6, 7):  # quantiles 0.25 .. 0.9 of |weight|
            ratio = got["abs_weight_quantiles"][pair][q] / real["abs_weight_quantiles"][pair][q]
            assert abs(math.log(ratio)) < math.log(1.3), (pair, q)
    for q in (4, 5, 6, 7):
        assert _close(got["activation_quantiles"][q], real["activation_quantiles"][q], 0.2)
    for kind in ("feature", "error", "embedding"):
        assert abs(got["influence_quantiles"][kind][5] - real["influence_quantiles"][kind][5]) < 0.06, kind
    layer_l1 = sum(abs(a - b) for a, b in zip(got["feature_layer_fraction"], real["feature_layer_fraction"]))
    assert layer_l1 < 0.1
    last_diff = [abs(a - b) for a, b in zip(got["feature_last_position_fraction"],
                                             real["feature_last_position_fraction"])]
    assert sum(last_diff) / len(last_diff) < 0.1
    err_diff = [abs(a - b) for a, b in zip(got["error_rate_other"], real["error_rate_other"])]
    assert sum(err_diff) / len(err_diff) < 0.05
    assert abs(got["feature_multi_position_fraction"] - real["feature_multi_position_fraction"]) < 0.05
    assert abs(got["logit_prob_mass"] - real["logit_prob_mass"]) < 0.08


def test_calibration_constants_were_measured_on_the_real_graphs() -> None:
    measured = calibrate(sorted(GRAPHS.glob("*_schema1.json")))
    assert measured == REAL_STATS


# -- planted structure -----------------------------------------------------------------------

def _aggregate_iou(feats: dict[str, dict[int, set[int]]], pairs: list[tuple[str, str]]) -> list[float]:
    inter, union = [0] * synth.N_LAYERS, [0] * synth.N_LAYERS
    for a, b in pairs:
        for layer in range(synth.N_LAYERS):
            inter[layer] += len(feats[a][layer] & feats[b][layer])
            union[layer] += len(feats[a][layer] | feats[b][layer])
    return [i / u if u else 0.0 for i, u in zip(inter, union)]


def _band(values: list[float], layers: range) -> float:
    return sum(values[layer] for layer in layers) / len(layers)


EARLY, MIDDLE, LATE = range(0, 4), range(9, 17), range(22, 26)


@pytest.mark.slow
def test_multilingual_families_share_the_middle_layers(corpus: CorpusInfo,
                                                       graphs: dict[str, dict[str, Any]]) -> None:
    feats = {slug: _features_by_layer(g) for slug, g in graphs.items()}
    families = [f for f in corpus.families if f.kind == "multilingual" and len(f.slugs) > 1]
    assert len(families) >= 5
    for family in families:
        assert len(set(family.languages)) == len(family.languages)
        assert family.profile == synth.MULTILINGUAL_PROFILE
        for layer, core in family.planted.items():
            for slug in family.slugs:
                assert core <= feats[slug][layer]
    pairs = [p for f in families for p in itertools.combinations(f.slugs, 2)]
    measured = _aggregate_iou(feats, pairs)
    expected = expected_iou(synth.MULTILINGUAL_PROFILE)
    assert _band(measured, MIDDLE) > _band(measured, EARLY) + 0.15
    assert _band(measured, MIDDLE) > _band(measured, LATE) + 0.15
    for band in (EARLY, MIDDLE, LATE):
        assert abs(_band(measured, band) - _band(expected, band)) < 0.15, band


@pytest.mark.slow
def test_variant_families_share_their_common_core(corpus: CorpusInfo, graphs: dict[str, dict[str, Any]]) -> None:
    feats = {slug: _features_by_layer(g) for slug, g in graphs.items()}
    families = [f for f in corpus.families if f.kind == "variant" and len(f.slugs) > 1]
    assert families
    for family in families:
        assert all(lang == "en" for lang in family.languages)
        assert len(set(family.meanings)) == len(family.meanings)  # one word changed: new meaning
        for layer, core in family.planted.items():
            assert all(core <= feats[slug][layer] for slug in family.slugs)
    pairs = [p for f in families for p in itertools.combinations(f.slugs, 2)]
    measured = _aggregate_iou(feats, pairs)
    expected = expected_iou(synth.VARIANT_PROFILE)
    assert sum(measured) / len(measured) > 0.8 * sum(expected) / len(expected)


@pytest.mark.slow
def test_features_are_reused_across_unrelated_prompts(corpus: CorpusInfo,
                                                      graphs: dict[str, dict[str, Any]]) -> None:
    feats = {slug: {(l, i) for l, idx in _features_by_layer(g).items() for i in idx}
             for slug, g in graphs.items()}
    meaning = {slug: m for f in corpus.families for slug, m in zip(f.slugs, f.meanings)}
    family = {slug: f.name for f in corpus.families for slug in f.slugs}
    # A concept feature recurs in prompts of different kinds (capitals, sports, origins...).
    known = set(corpus.concepts["flag:known entity"])
    with_known = [s for s, fs in feats.items() if known & fs]
    assert len({meaning[s].split(":")[0] for s in with_known}) >= 2
    assert len({family[s] for s in with_known}) >= 5
    # The head of the background recurs almost everywhere, as in the real graphs.
    counts = Counter(f for fs in feats.values() for f in fs)
    assert counts.most_common(1)[0][1] >= 0.5 * len(feats)
    # Unrelated prompts overlap a little (real graphs: mean Jaccard 0.062).
    rng = random.Random(0)
    slugs = sorted(feats)
    jaccards = []
    while len(jaccards) < 200:
        a, b = rng.sample(slugs, 2)
        if family[a] != family[b] and meaning[a].split(":")[0] != meaning[b].split(":")[0]:
            jaccards.append(len(feats[a] & feats[b]) / len(feats[a] | feats[b]))
    mean = sum(jaccards) / len(jaccards)
    assert abs(mean - synth.UNRELATED_JACCARD_REAL) < 0.04


@pytest.mark.slow
def test_two_hop_paths_and_shortcuts_are_planted(corpus: CorpusInfo, graphs: dict[str, dict[str, Any]]) -> None:
    assert corpus.two_hops
    for hop in corpus.two_hops:
        g = graphs[hop.slug]
        nodes = {n["node_id"]: n for n in g["nodes"]}
        links = {(l["source"], l["target"]): l["weight"] for l in g["links"]}
        entity, middle, answer = nodes[hop.entity], nodes[hop.intermediate], nodes[hop.answer]
        assert answer["is_target_logit"]
        assert int(entity["layer"]) < int(middle["layer"])
        assert entity["ctx_idx"] < middle["ctx_idx"] == answer["ctx_idx"]
        for edge in ((hop.entity, hop.intermediate), (hop.intermediate, hop.answer), (hop.entity, hop.answer)):
            assert links[edge] > 0
        entity_layer, entity_index = cantor_unpair(entity["feature"])
        assert (entity_layer, entity_index) in corpus.concepts[hop.entity_concept]
        assert (int(middle["layer"]), cantor_unpair(middle["feature"])[1]) in corpus.concepts[hop.intermediate_concept]
        region = hop.intermediate_concept.split(":", 1)[1]
        assert region not in g["metadata"]["prompt"]  # the intermediate is not in the prompt


# -- the large-graph writer ------------------------------------------------------------------

@pytest.mark.slow
def test_large_graph_is_streamed_with_exact_counts(tmp_path: Path) -> None:
    default_model().weight_texts()  # built once per process, not part of the streaming
    tracemalloc.start()
    try:
        path = write_large_graph(tmp_path / "large.json", n_links=200_000, n_nodes=3000, seed=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert peak < 16 * 2**20 and peak < size / 1.5
    with open(path, encoding="utf-8") as fh:
        g = json.load(fh)
    assert len(g["nodes"]) == 3000 and len(g["links"]) == 200_000
    ids = {n["node_id"] for n in g["nodes"]}
    assert len(ids) == 3000
    assert all(link["source"] in ids and link["target"] in ids for link in g["links"])
    assert len({(link["source"], link["target"]) for link in g["links"]}) == 200_000
    small = [write_large_graph(tmp_path / f"small{i}.json", 20_000, 1000, seed=2).read_bytes() for i in range(2)]
    assert small[0] == small[1]


def test_large_graph_refuses_impossible_counts(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_large_graph(tmp_path / "x.json", n_links=10**9, n_nodes=500)


def test_allocation_fills_caps_and_sums_exactly() -> None:
    rng = random.Random(3)
    caps = [rng.randrange(0, 50) for _ in range(300)]
    wants = [rng.random() + 0.01 for _ in caps]
    for total in (0, 17, sum(caps) // 2, sum(caps)):
        quota = allocate(total, wants, caps)
        assert sum(quota) == total and all(0 <= q <= c for q, c in zip(quota, caps))
