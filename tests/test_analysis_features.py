"""Features across graphs: shared features, where a feature is used, the cross-language measure.

Every expected figure is computed independently from the raw JSON (tests/feature_reference.py),
on the real graphs and on random corpora; the Neo4j store must give the embedded store's answer.
"""

from __future__ import annotations

import ast
import json
import math
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from click.testing import CliRunner

from ingest.records import FeatureKey
from kb.analysis import family_core, language_overlap, shared_features, used_by
from kb.api import KB
from kb.cli import main
from kb.errors import CircuitKBError, NotFoundError
from kb.featureref import BadFeatureRef, format_feature_ref, parse_feature_ref
from kb.selection import Selection
from kb.stores.cypher import features as cq
from tests import feature_reference as ref
from tests.builders import embedding_node, error_node, feature_node, graph_of, logit_node, write
from tests.conftest import real_graph

CLT = "gemma-2-2b/clt-hp"


# --- feature references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, options",
    [
        ("gemma-2-2b/clt-hp/20/1234", {}),
        ("gemma-2-2b/clt-hp/L20/1234", {}),
        ("gemma-2-2b/20-clt-hp/1234", {}),
        ("mntss/clt-gemma-2-2b-2.5M/20/1234", {}),
        ("20-clt-hp/1234", {"model": "gemma-2-2b"}),
        ("L20/1234", {"transcoder_set": "gemma-2-2b/clt-hp"}),
        ("20/1234", {"transcoder_set": "mntss/clt-gemma-2-2b-2.5M"}),
        ("L20/1234", {"transcoder_set": "clt-hp", "model": "gemma-2-2b"}),
        (" gemma-2-2b/clt-hp/L20/1234 ", {}),
    ],
)
def test_every_written_form_names_the_same_feature(text: str, options: dict[str, str]) -> None:
    assert parse_feature_ref(text, **options) == FeatureKey(CLT, 20, 1234)


def test_a_printed_feature_reads_back() -> None:
    key = FeatureKey("gemma-2-2b/gemmascope-transcoder-16k", 3, 77)
    assert parse_feature_ref(str(key)) == key
    assert parse_feature_ref(format_feature_ref(key)) == key


@pytest.mark.parametrize(
    "text, message",
    [
        ("1234", "should end with /INDEX"),
        ("L20/x", "should end with /INDEX"),
        ("L20/1234", "names no transcoder set"),
        ("20-clt-hp/1234", "which model"),
        ("gemma-2-2b/clt-hp/twenty/1234", "neither a layer nor a Neuronpedia source"),
        ("gemma-2-2b/clt-hp/20/-1", "should end with /INDEX"),
    ],
)
def test_unreadable_references_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(BadFeatureRef, match=message):
        parse_feature_ref(text)


# --- the real "opposite of small" pair ---------------------------------------------------------


def _ingest_with_manifest(kb: KB, tmp_path: Path, entries: list[tuple[Path, str, str]]) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,family,language,tags\n" + "".join(f"{p},{fam},{lang},\n" for p, fam, lang in entries), encoding="utf-8")
    report = kb.ingest([p for p, _, _ in entries], manifest=manifest)
    assert not report.failed, report.failed


def _keyed(frame: Any) -> dict[tuple[int, int], Any]:
    return {(int(r.layer), int(r.index)): r for r in frame.itertuples()}


def test_the_english_and_french_opposite_graphs_share_76_of_346_features(kb: KB, tmp_path: Path) -> None:
    en, fr = ref.load(real_graph("02")), ref.load(real_graph("03"))
    _ingest_with_manifest(kb, tmp_path, [(real_graph("02"), "opposite", "en"), (real_graph("03"), "opposite", "fr")])
    family = Selection(family="opposite")
    expected_all = ref.presence([en, fr])
    expected_both = ref.shared([en, fr], 2)
    assert (len(expected_both), len(expected_all)) == (76, 346)  # the figure of the data README

    both = shared_features(kb, family)
    assert both.min_graphs == 2 and len(both.features) == 76
    assert set(_keyed(both.features)) == set(expected_both)
    assert set(both.features["transcoder_set"]) == {CLT}
    for row in both.presence.itertuples():
        act, infl, positions = expected_both[(row.layer, row.index)][row.slug]
        assert (row.activation, row.influence, row.positions) == (pytest.approx(act), pytest.approx(infl), positions)
    assert len(shared_features(kb, family, min_graphs=1).features) == 346

    core = family_core(kb, family)
    assert set(_keyed(core.core)) == set(expected_both)
    added = core.additions.groupby("slug").size().to_dict()
    assert added == {en.slug: len(ref.presence([en])) - 76, fr.slug: len(ref.presence([fr])) - 76}
    assert core.additions["unique"].all()

    overlap = language_overlap(kb, family)
    curve = overlap.curves.set_index("layer")
    for layer in range(26):
        expected = ref.iou(en, fr, layer)
        got = curve.loc[layer, "iou"]
        assert got == pytest.approx(expected) or (math.isnan(expected) and math.isnan(got))
    assert curve["baseline_iou"].isna().all()  # no French graph outside the family
    classes = overlap.features
    assert set(classes["basis"]) == {"kept"}  # Neuronpedia graphs are pruned (node_threshold 0.8)
    assert (classes["class"] == "shared").sum() == 76
    assert len(classes) == 346


def test_where_a_real_feature_is_used_matches_the_raw_links(kb: KB, tmp_path: Path) -> None:
    paths = [real_graph("02"), real_graph("03"), real_graph("04")]
    raws = [ref.load(p) for p in paths]
    _ingest_with_manifest(kb, tmp_path, [(p, p.name[6:14], p.name[3:5]) for p in paths])
    everywhere = [key for key, per_graph in ref.presence(raws).items() if len(per_graph) == 3]
    key = max(everywhere)
    usage = used_by(kb, [f"{CLT}/{key[0]}/{key[1]}"], neighbours=None, limit=None)
    assert usage.n_graphs == 3
    _check_usage(usage, raws, [key])


# --- random corpora against brute force ----------------------------------------------------------

LANGS = ("en", "fr", "de")


def _random_graph(rng: random.Random, slug: str) -> dict[str, Any]:
    n_pos = rng.randint(3, 6)
    nodes = [embedding_node(1000 + p, p) for p in range(n_pos)]
    taken: set[tuple[int, int, int]] = set()
    for _ in range(rng.randint(6, 18)):
        layer, index, pos = rng.randint(0, 4), rng.randint(30, 42), rng.randrange(n_pos)
        if (layer, index, pos) not in taken:
            taken.add((layer, index, pos))
            nodes.append(feature_node(layer, index, pos, activation=round(rng.uniform(0.1, 9), 3), influence=round(rng.uniform(0.05, 0.8), 4)))
    for _ in range(rng.randint(0, 3)):
        layer, pos = rng.randint(0, 4), rng.randrange(n_pos)
        if error_node(layer, pos)["node_id"] not in {n["node_id"] for n in nodes}:
            nodes.append(error_node(layer, pos))
    nodes += [logit_node(2000 + k, n_pos - 1, 0.3, k == 0) for k in range(2)]
    order = {"E": -1, "27": 27}
    links, seen = [], set()
    for _ in range(rng.randint(10, 60)):
        a, b = rng.sample(range(len(nodes)), 2)
        la, lb = (order.get(nodes[i]["layer"], None) for i in (a, b))
        la = int(nodes[a]["layer"]) if la is None else la
        lb = int(nodes[b]["layer"]) if lb is None else lb
        if la == lb:
            continue
        src, tgt = (a, b) if la < lb else (b, a)
        if (src, tgt) in seen:
            continue
        seen.add((src, tgt))
        links.append({"source": nodes[src]["node_id"], "target": nodes[tgt]["node_id"], "weight": rng.uniform(-3, 3)})
    return graph_of(slug, n_pos, nodes, links)


def _random_corpus(folder: Path, seed: int, n_families: int = 5) -> tuple[list[ref.Raw], dict[str, tuple[str, str]]]:
    """Families of 2-3 graphs in distinct languages; returns the raw graphs and slug -> (family, language)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    raws, tags, lines = [], {}, ["path,family,language,tags"]
    for f in range(n_families):
        for lang in rng.sample(LANGS, rng.randint(2, 3)):
            slug = f"rand-{seed}-{f}-{lang}"
            doc = _random_graph(rng, slug)
            path = write(folder / f"{slug}.json", doc)
            raws.append(ref.from_doc(doc))
            tags[slug] = (f"fam{f}", lang)
            lines.append(f"{path.name},fam{f},{lang},random")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return raws, tags


def _check_usage(usage: Any, raws: list[ref.Raw], keys: list[tuple[int, int]]) -> None:
    """used_by's graphs, per-graph neighbours and summary (with every neighbour) against brute force."""
    by_slug = {g.slug: g for g in raws}
    containing = [g for g in raws if all(key in ref.presence([g]) for key in keys)]
    assert usage.n_graphs == len(containing)
    scores = {g.slug: sum(ref.presence([g])[k][g.slug][0] for k in keys) / len(keys) for g in containing}
    expected_order = sorted(scores, key=lambda s: (-scores[s], s))
    listed = usage.graphs.drop_duplicates("slug").sort_values("rank")
    assert list(listed["slug"]) == expected_order[: len(listed)]
    assert list(listed["score"]) == pytest.approx([scores[s] for s in listed["slug"]])
    for direction, upstream in (("upstream", True), ("downstream", False)):
        for key in keys:
            for slug in listed["slug"]:
                expected = ref.neighbours(by_slug[slug], key, upstream)
                got = usage.neighbours[
                    (usage.neighbours["slug"] == slug) & (usage.neighbours["layer"] == key[0]) & (usage.neighbours["index"] == key[1]) & (usage.neighbours["direction"] == direction)
                ]
                found = {}
                for r in got.itertuples():
                    other = (int(r.neighbour_layer), int(r.neighbour_index)) if r.kind == "feature" else ("node", _position(by_slug[slug], r.node_id))
                    found[other] = (r.weight, r.n_links)
                assert set(found) == set(expected)
                for other, (weight, n_links) in found.items():
                    assert weight == pytest.approx(expected[other][0]) and n_links == expected[other][1]
                weights = [abs(w) for w in got["weight"]]
                assert weights == sorted(weights, reverse=True)
            expected_summary = ref.summary(containing, key, upstream)
            got = usage.summary[(usage.summary["layer"] == key[0]) & (usage.summary["index"] == key[1]) & (usage.summary["direction"] == direction)]
            found = {(int(r.neighbour_layer), int(r.neighbour_index)): (r.n_graphs, r.mean_weight) for r in got.itertuples()}
            assert set(found) == set(expected_summary)
            for other, (n, mean) in found.items():
                assert n == expected_summary[other][0] and mean == pytest.approx(expected_summary[other][1])


def _position(g: ref.Raw, node_id: str) -> int:
    return next(i for i, n in enumerate(g.nodes) if n["node_id"] == node_id)


@pytest.mark.slow
def test_random_corpora_match_brute_force(kb: KB, tmp_path: Path) -> None:
    raws, tags = _random_corpus(tmp_path / "corpus", seed=7)
    report = kb.ingest([tmp_path / "corpus"], manifest=tmp_path / "corpus" / "manifest.csv")
    assert not report.failed
    slugs = sorted(tags)

    # shared features, at every threshold
    for k in (1, 2, 3, len(raws) // 2):
        got = shared_features(kb, Selection(tags=("random",)), min_graphs=k)
        expected = ref.shared(raws, k)
        assert set(_keyed(got.features)) == set(expected)
        for row in got.presence.itertuples():
            act, infl, positions = expected[(row.layer, row.index)][row.slug]
            assert (row.activation, row.influence, row.positions) == (pytest.approx(act), pytest.approx(infl), positions)
        assert dict(zip(zip(got.features["layer"], got.features["index"]), got.features["n_graphs"])) == {key: len(v) for key, v in expected.items()}

    # the core of each family against what each member adds
    for family in sorted({t[0] for t in tags.values()}):
        members = [g for g in raws if tags[g.slug][0] == family]
        core = family_core(kb, Selection(family=family))
        everywhere = ref.shared(members, len(members))
        assert set(_keyed(core.core)) == set(everywhere)
        counts = {key: len(per) for key, per in ref.presence(members).items()}
        expected = {(g.slug, key): counts[key] for g in members for key in ref.presence([g]) if counts[key] < len(members)}
        got = {(r.slug, (r.layer, r.index)): r.n_members for r in core.additions.itertuples()}
        assert got == expected
        assert all(r.unique == (r.n_members == 1) for r in core.additions.itertuples())

    # where used: single features and a pair, every neighbour, then the top-2 cut
    counts = {key: len(per) for key, per in ref.presence(raws).items()}
    common = sorted(counts, key=lambda key: (-counts[key], key))
    for keys in ([common[0]], [common[3]], [common[0], common[1]]):
        usage = used_by(kb, [f"{CLT}/{k[0]}/{k[1]}" for k in keys], Selection(tags=("random",)), neighbours=None, limit=None)
        _check_usage(usage, raws, keys)
        top = used_by(kb, [f"{CLT}/{k[0]}/{k[1]}" for k in keys], neighbours=2, limit=3)
        assert list(top.graphs.drop_duplicates("slug")["slug"]) == list(usage.graphs.drop_duplicates("slug")["slug"])[:3]
        for (slug, direction), group in top.neighbours.groupby(["slug", "direction"]):
            per_feature = group.groupby(["layer", "index"]).size()
            assert (per_feature <= 2).all()
            full = usage.neighbours[(usage.neighbours["slug"] == slug) & (usage.neighbours["direction"] == direction)]
            for (layer, index), rows in group.groupby(["layer", "index"]):
                best = full[(full["layer"] == layer) & (full["index"] == index)]["weight"].abs().nlargest(2)
                assert sorted(rows["weight"].abs()) == pytest.approx(sorted(best))
    by_influence = used_by(kb, [f"{CLT}/{common[0][0]}/{common[0][1]}"], rank_by="influence", neighbours=0, limit=None)
    best = {g.slug: ref.presence([g])[common[0]][g.slug][1] for g in raws if common[0] in ref.presence([g])}
    assert list(by_influence.graphs["slug"]) == sorted(best, key=lambda s: (best[s], s))
    anywhere = used_by(kb, [f"{CLT}/{k[0]}/{k[1]}" for k in common[:2]], require_all=False, neighbours=0, limit=None)
    assert anywhere.n_graphs == sum(1 for g in raws if common[0] in ref.presence([g]) or common[1] in ref.presence([g]))

    # the cross-language measure, family by family, with its baseline
    overlap = language_overlap(kb, Selection(tags=("random",)), max_baseline_pairs=10_000)
    by_slug = {g.slug: g for g in raws}
    for row in overlap.curves.itertuples():
        members = [s for s in slugs if tags[s][0] == row.family]
        a = [by_slug[s] for s in members if tags[s][1] == row.lang_a]
        b = [by_slug[s] for s in members if tags[s][1] == row.lang_b]
        values = [ref.iou(x, y, row.layer) for x in a for y in b]
        _assert_mean(row.iou, values)
        sets = [(ref.layer_sets(x).get(row.layer, set()), ref.layer_sets(y).get(row.layer, set())) for x in a for y in b]
        assert (row.features_a, row.features_b, row.common) == pytest.approx(
            (np.mean([len(sa) for sa, _ in sets]), np.mean([len(sb) for _, sb in sets]), np.mean([len(sa & sb) for sa, sb in sets]))
        )
        others_a = [by_slug[s] for s in slugs if tags[s][1] == row.lang_a and tags[s][0] != row.family]
        others_b = [by_slug[s] for s in slugs if tags[s][1] == row.lang_b and tags[s][0] != row.family]
        baseline = [ref.iou(x, y, row.layer) for x in others_a for y in others_b if tags[x.slug][0] != tags[y.slug][0]]
        assert row.n_baseline_pairs == len(baseline)
        _assert_mean(row.baseline_iou, baseline)
    for family in {t[0] for t in tags.values()}:
        members = [by_slug[s] for s in slugs if tags[s][0] == family]
        langs = {tags[g.slug][1] for g in members}
        where: dict[tuple[int, int], set[str]] = {}
        for key, per_graph in ref.presence(members).items():
            where[key] = {tags[s][1] for s in per_graph}
        got = overlap.features[overlap.features["family"] == family]
        assert {(r.layer, r.index): set(r.languages) for r in got.itertuples()} == where
        shared = {(r["layer"], r["index"]) for r in got.to_dict(orient="records") if r["class"] == "shared"}
        assert shared == {k for k, v in where.items() if v == langs}


def _assert_mean(got: float, values: list[float]) -> None:
    known = [v for v in values if not math.isnan(v)]
    if not known:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(sum(known) / len(known))


def test_active_and_kept_features_are_classed_apart(sqlite_kb: KB, tmp_path: Path) -> None:
    """Unpruned graphs (node threshold 1) say what is active; pruned ones only what was kept."""
    rng = random.Random(3)
    entries = []
    for pruned in (True, False):
        for lang in ("en", "fr"):
            doc = _random_graph(rng, f"{'pruned' if pruned else 'full'}-{lang}")
            threshold = 0.8 if pruned else 1.0
            doc["metadata"]["node_threshold"] = threshold
            doc["metadata"]["pruning_settings"] = {"node_threshold": threshold, "edge_threshold": 0.98}
            entries.append((write(tmp_path / f"{doc['metadata']['slug']}.json", doc), "fam", lang))
    _ingest_with_manifest(sqlite_kb, tmp_path, entries)
    classes = language_overlap(sqlite_kb, Selection(family="fam")).features
    raws = {p.stem: ref.load(p) for p, _, _ in entries}
    for basis, prefix in (("kept", "pruned"), ("active", "full")):
        en, fr = ref.presence([raws[f"{prefix}-en"]]), ref.presence([raws[f"{prefix}-fr"]])
        got = classes[classes["basis"] == basis]
        assert set(zip(got["layer"], got["index"])) == set(en) | set(fr)
        assert set(zip(got[got["class"] == "shared"]["layer"], got[got["class"] == "shared"]["index"])) == set(en) & set(fr)


# --- Neo4j gives the embedded store's answer -----------------------------------------------------


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


@pytest.mark.slow
@pytest.mark.neo4j
def test_neo4j_answers_as_the_embedded_store(make_kb: Callable[..., KB], kb_env: Callable[[str, str], dict[str, str]], tmp_path: Path) -> None:
    from synth import generate_corpus

    info = generate_corpus(tmp_path / "synth", 14, seed=3, languages=("en", "fr", "de"), family_size=3)
    answers = []
    for store in ("embedded", "neo4j"):
        env = {**kb_env("sqlite", store), "CIRCUITKB_HOME": str(tmp_path / f"home-{store}")}  # one SQL file each
        kb = make_kb("sqlite", store, env=env)
        assert not kb.ingest([tmp_path / "synth"], manifest=info.manifest).failed
        family = next(f for f in info.families if f.kind == "multilingual")
        top = shared_features(kb, Selection(family=family.name)).features.iloc[0]
        feature = f"{top.transcoder_set}/{top.layer}/{top['index']}"
        answers.append(
            _rounded(
                {
                    "shared": shared_features(kb, min_graphs=3).as_dict(),
                    "core": family_core(kb, Selection(family=family.name)).as_dict(),
                    "used_by": used_by(kb, [feature], neighbours=4, limit=5).as_dict(),
                    "used_by_influence": used_by(kb, [feature], rank_by="influence", neighbours=None, limit=None).as_dict(),
                    "languages": language_overlap(kb, Selection(tags=("multilingual",)), max_baseline_pairs=30).as_dict(),
                }
            )
        )
    assert answers[0]["shared"]["features"] and answers[0]["used_by"]["graphs"] and answers[0]["languages"]["curves"]
    assert answers[0] == answers[1]


# --- a planted family gives the profile it was built with --------------------------------------


@pytest.mark.slow
def test_a_planted_multilingual_family_gives_its_per_layer_profile(kb: KB, tmp_path: Path) -> None:
    from synth import MULTILINGUAL_PROFILE, expected_iou, generate_corpus

    info = generate_corpus(tmp_path / "planted", 24, seed=5, languages=("en", "fr", "de"), family_size=3)
    assert not kb.ingest([tmp_path / "planted"], manifest=info.manifest).failed
    families = [f for f in info.families if f.kind == "multilingual" and len(set(f.languages)) >= 2]
    assert len(families) >= 3
    overlap = language_overlap(kb, Selection(tags=("multilingual",)))
    classes = overlap.features
    for family in families:
        shared = classes[(classes["family"] == family.name) & (classes["class"] == "shared")]
        got = {(int(r.layer), int(r.index)) for r in shared.itertuples()}
        planted = {(layer, index) for layer, indices in family.planted.items() for index in indices}
        assert planted <= got  # every planted feature is present in every language
    curves = overlap.curves[overlap.curves["family"].isin([f.name for f in families])]
    profile = curves.groupby("layer")["iou"].mean()
    designed = expected_iou(MULTILINGUAL_PROFILE)
    middle, ends = [10, 11, 12, 13, 14, 15], [0, 1, 24, 25]
    assert profile[middle].mean() > 2 * profile[ends].mean()
    baseline = curves.groupby("layer")["baseline_iou"].mean()
    assert (profile[middle] > baseline[middle]).all()
    # the measured curve follows the designed one: IoU above the baseline tracks s / (2 - s)
    above = [profile[layer] - baseline[layer] for layer in range(26)]
    assert _correlation(above, designed) > 0.8
    # in the middle the measured overlap is the designed one, plus what unrelated prompts share
    for layer in middle:
        assert designed[layer] - 0.15 <= profile[layer] <= designed[layer] + baseline[layer] + 0.15


def _correlation(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_commands_print_json_with_feature_objects(kb_env: Callable[[str, str], dict[str, str]], tmp_path: Path) -> None:
    env = kb_env("sqlite", "embedded")
    runner = CliRunner()
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,family,language,tags\n{real_graph('02')},opposite,en,demo\n{real_graph('03')},opposite,fr,demo\n")

    def run(*args: str) -> Any:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("ingest", str(real_graph("02")), str(real_graph("03")), "--manifest", str(manifest))
    assert json.loads(run("sets", "save", "pair", "--family", "opposite", "--json"))["slugs"]
    shared = json.loads(run("shared", "--set", "pair", "--json"))
    assert len(shared["features"]) == 76
    feature = shared["features"][0]["feature"]
    assert set(feature) >= {"transcoder_set", "layer", "index"}
    core = json.loads(run("shared", "--family", "opposite", "--core", "--json"))
    assert len(core["core"]) == 76 and len(core["members"]) == 2
    short = f"L{feature['layer']}/{feature['index']}"
    usage = json.loads(run("used-by", short, "--transcoder-set", feature["transcoder_set"], "--json"))
    assert usage["n_graphs"] == 2 and usage["features"] == [feature]
    assert {"upstream", "downstream"} <= set(usage["graphs"][0]["features"][0])
    neuronpedia = f"{feature['layer']}-clt-hp/{feature['index']}"
    assert json.loads(run("used-by", neuronpedia, "--model", "gemma-2-2b", "--json"))["n_graphs"] == 2
    languages = json.loads(run("languages", "--family", "opposite", "--json"))
    assert {"family", "lang_a", "lang_b", "layer", "iou", "baseline_iou"} <= set(languages["curves"][0])
    for table in (run("shared", "--family", "opposite"), run("used-by", short, "--transcoder-set", CLT), run("languages", "--family", "opposite")):
        assert table.strip()
    bad = runner.invoke(main, ["used-by", "L3/1"], env=env)
    assert bad.exit_code == 2 and "transcoder set" in bad.output


def test_errors_a_user_can_act_on(sqlite_kb: KB) -> None:
    sqlite_kb.ingest([real_graph("02")])
    with pytest.raises(CircuitKBError, match="matches 0 graph"):
        shared_features(sqlite_kb, Selection(family="nope"))
    with pytest.raises(CircuitKBError, match="min_graphs"):
        shared_features(sqlite_kb, min_graphs=5)
    with pytest.raises(NotFoundError, match="unknown feature"):
        used_by(sqlite_kb, [f"{CLT}/3/1"])
    with pytest.raises(CircuitKBError, match="two languages"):
        language_overlap(sqlite_kb)
    with pytest.raises(CircuitKBError, match="at least 2"):
        family_core(sqlite_kb)


# --- Cypher builders -----------------------------------------------------------------------------


def test_cypher_builders_carry_values_only_as_parameters() -> None:
    hostile = [10**12 + 1]
    builders = [
        cq.shared_fids_query(hostile, 2),
        cq.graph_presence_query(hostile),
        cq.neighbours_query(hostile, hostile, 3),
        cq.neighbours_query(hostile, hostile, None),
        cq.neighbour_summary_query(hostile, hostile, 5),
        cq.layer_counts_query(hostile),
        cq.graph_layer_features_query(hostile),
        cq.presence_query(hostile, hostile),
    ]
    for text, params in builders:
        assert str(hostile[0]) not in text
        assert any(isinstance(v, list) and hostile[0] in v for v in params.values())
    assert "n.idx >= 0" in cq.layer_counts_query([1])[0]  # the (gid, idx) index seek


# --- layers ---------------------------------------------------------------------------------------


def test_analyses_name_the_core_never_the_kb_a_backend_or_a_private_helper() -> None:
    folder = Path(__file__).resolve().parents[1] / "kb" / "analysis"
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules, names = [node.module or ""], [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                modules, names = [a.name for a in node.names], []
            else:
                continue
            for module in modules:
                if module in ("kb.api", "kb.search", "kb.cli") or module.startswith(("kb.stores.embedded", "kb.stores.neo4j", "kb.stores.cypher", "app")):
                    found.append(f"{path.name}: {module}")
            found += [f"{path.name}: {node.module}.{name}" for name in names if name.startswith("_") and node.module != "__future__"]
    assert found == []
    assert "kb: Core" in (folder / "edges.py").read_text()
