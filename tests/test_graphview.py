"""What the app asks of kb: a bounded piece of a graph to draw, one node's details, the KB's
version, recent labels, Neuronpedia links and the baseline band; checked against the file."""

from __future__ import annotations

import json
from collections import defaultdict

import pandas as pd
import pytest

from ingest.records import FeatureKey
from kb.analysis.bands import baseline_band
from kb.analysis.graphview import feature_node, graph_view, node_details
from kb.analysis.languages import PAIR_COLUMNS, LanguageOverlap
from kb.api import KB
from kb.errors import CircuitKBError, NotFoundError
from kb.featuremeta import add_label
from kb.overview import kb_version, neuronpedia_url, recent_labels
from tests.conftest import real_graph


def _file(prefix: str) -> dict:
    return json.loads(real_graph(prefix).read_text())


def _input_totals(doc: dict) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for link in doc["links"]:
        totals[link["target"]] += abs(link["weight"])
    return totals


def test_a_view_is_bounded_and_its_shares_are_fractions_of_the_targets_input(kb: KB) -> None:
    kb.ingest([real_graph("01")])
    doc = _file("01")
    slug = doc["metadata"]["slug"]
    view = graph_view(kb, slug, top=50, max_links=300)
    assert len(view.links) == 300 and view.capped
    assert view.n_nodes == len(doc["nodes"]) and view.n_links == len(doc["links"])
    logits = {n["node_id"] for n in doc["nodes"] if n["feature_type"] == "logit"}
    assert logits <= set(view.nodes["node_id"])
    assert set(doc["qParams"]["pinnedIds"]) <= set(view.nodes["node_id"])
    assert view.nodes.loc[view.nodes["pinned"], "node_id"].tolist() != []
    assert view.nodes["supernode"].notna().sum() == sum(len(g) - 1 for g in doc["qParams"]["supernodes"])
    # node_ids of this file are unique, so links can be checked by name
    names = dict(zip(view.nodes["idx"], view.nodes["node_id"]))
    totals = _input_totals(doc)
    weights = {(l["source"], l["target"]): l["weight"] for l in doc["links"]}
    for row in view.links.itertuples():
        source, target = names[row.src], names[row.tgt]
        assert row.weight == pytest.approx(weights[(source, target)])
        assert row.share == pytest.approx(row.weight / totals[target])
    kept = view.links["share"].abs().min()
    among = {(s, t) for s, t in weights if s in set(names.values()) and t in set(names.values())}
    stronger = [abs(weights[p] / totals[p[1]]) for p in among if abs(weights[p] / totals[p[1]]) > kept]
    assert len(stronger) <= 300  # the cap keeps the strongest shares


def test_thresholds_and_expansion(sqlite_kb: KB) -> None:
    kb = sqlite_kb
    kb.ingest([real_graph("02")])
    doc = _file("02")
    slug = doc["metadata"]["slug"]
    pruned = graph_view(kb, slug, top=400, node_threshold=0.3, edge_threshold=0.05)
    features = pruned.nodes[pruned.nodes["kind"] != "logit"]
    assert (features["influence"].dropna() <= 0.3).all()
    assert (pruned.links["share"].abs() >= 0.05).all()
    small = graph_view(kb, slug, top=5)
    far = next(n["node_id"] for n in sorted(doc["nodes"], key=lambda n: -(n["influence"] or 0)) if n["feature_type"] == "cross layer transcoder")
    assert far not in set(small.nodes["node_id"])
    grown = graph_view(kb, slug, top=5, expand=[far])
    assert far in set(grown.nodes["node_id"]) and len(grown.nodes) > len(small.nodes)
    with pytest.raises(NotFoundError):
        graph_view(kb, slug, expand=["no-such-node"])
    with pytest.raises(CircuitKBError):
        graph_view(kb, slug, top=0)
    with pytest.raises(NotFoundError):
        graph_view(kb, "no-such-graph")


def test_node_details_give_inputs_as_shares_of_its_input_and_outputs_of_theirs(kb: KB) -> None:
    kb.ingest([real_graph("02")])
    doc = _file("02")
    slug = doc["metadata"]["slug"]
    totals = _input_totals(doc)
    target = max(totals, key=lambda t: sum(1 for l in doc["links"] if l["target"] == t))
    details = node_details(kb, slug, target, top=1000)
    into = [l for l in doc["links"] if l["target"] == target]
    assert details.n_inputs == len(into)
    assert details.input_total == pytest.approx(totals[target])
    assert details.inputs["share"].abs().sum() == pytest.approx(1.0)
    assert list(details.inputs["share"].abs()) == sorted(details.inputs["share"].abs(), reverse=True)
    source = details.inputs.iloc[0]["node_id"]
    outputs = node_details(kb, slug, source, top=1000).outputs
    mine = outputs[outputs["node_id"] == target].iloc[0]
    weight = next(l["weight"] for l in into if l["source"] == source)
    assert mine["share"] == pytest.approx(weight / totals[target])
    assert details.feature is not None or details.node["kind"] != "feature"
    # every input and output, as shares of the file's sums (the stored totals stand in for them)
    for row in details.inputs.itertuples():
        assert row.share == pytest.approx(row.weight / totals[target], rel=1e-12)
    out_of = [l for l in doc["links"] if l["source"] == source]
    assert len(outputs) == len(out_of) and len(outputs) > 1
    for row in outputs.itertuples():
        assert row.share == pytest.approx(row.weight / totals[row.node_id], rel=1e-12)


def test_feature_node_finds_the_most_active_node_of_a_feature(sqlite_kb: KB) -> None:
    kb = sqlite_kb
    kb.ingest([real_graph("02")])
    doc = _file("02")
    slug = doc["metadata"]["slug"]
    view = graph_view(kb, slug, top=400)
    row = view.nodes[view.nodes["kind"] == "feature"].iloc[0]
    set_, layer, index = row["feature"].rsplit("/", 2)
    key = FeatureKey(set_, int(layer.lstrip("L")), int(index))
    same = view.nodes[view.nodes["feature"] == row["feature"]]
    best = same.sort_values("activation", ascending=False).iloc[0]
    assert feature_node(kb, slug, key, sorted(same["ctx_idx"].tolist())) == best["node_id"]
    assert feature_node(kb, slug, key, [999]) is None


def test_version_changes_on_ingest_and_label_and_recent_labels_come_newest_first(kb: KB) -> None:
    empty = kb_version(kb)
    kb.ingest([real_graph("02")])
    after_ingest = kb_version(kb)
    assert after_ingest != empty
    key = FeatureKey("gemma-2-2b/clt-hp", 20, 1234)
    add_label(kb, key, "first", "ada")
    after_label = kb_version(kb)
    assert after_label != after_ingest
    add_label(kb, key, "second", "bob")
    assert kb_version(kb) != after_label
    assert kb_version(kb) == kb_version(kb)
    recent = recent_labels(kb, 10)
    assert [r["text"] for r in recent] == ["second", "first"] and recent[0]["feature"] == key
    assert len(recent_labels(kb, 1)) == 1


def test_neuronpedia_links_only_for_sets_neuronpedia_hosts(sqlite_kb: KB) -> None:
    kb = sqlite_kb
    kb.ingest([real_graph("02")])  # its metadata names neuronpedia.org among its sources
    assert neuronpedia_url(kb, FeatureKey("gemma-2-2b/clt-hp", 20, 1234)) == "https://www.neuronpedia.org/gemma-2-2b/20-clt-hp/1234"
    assert neuronpedia_url(kb, FeatureKey("someone/private-set", 3, 7)) is None
    assert neuronpedia_url(kb, FeatureKey("org/repo/sub", 3, 7)) is None


def test_baseline_band_is_the_spread_of_the_baseline_pairs() -> None:
    rows = [("baseline", "f", "en", "fr", f"a{i}", f"b{i}", 0, 1, 1, 1, v) for i, v in enumerate([0.0, 0.1, 0.2, 0.3, 0.4])]
    rows += [("family", "f", "en", "fr", "x", "y", 0, 1, 1, 1, 0.9)]
    overlap = LanguageOverlap(pd.DataFrame(), pd.DataFrame(rows, columns=list(PAIR_COLUMNS)), pd.DataFrame(), pd.DataFrame())
    band = baseline_band(overlap, 0.0, 1.0)
    assert band[["low", "high", "n_pairs"]].iloc[0].tolist() == [0.0, 0.4, 5]
    assert baseline_band(overlap, 0.5, 0.5)["low"].iloc[0] == pytest.approx(0.2)
    with pytest.raises(CircuitKBError):
        baseline_band(overlap, 0.9, 0.1)
