"""Graphs of Neuronpedia's CRM engine: Lorsa attention features, Lorsa and MLP errors, bias leaves,
unknown nodes, integer layers, QK tracing; read, stored, exported equal and queried on every store."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from ingest.featureid import lorsa_set_of
from ingest.graphfile import read_graph
from ingest.records import FeatureKey
from kb.analysis import family_core, language_overlap, qk_drivers, shared_features, used_by
from kb.analysis.edges import recurring_edges
from kb.analysis.compare import compare_graphs, graph_similarity
from kb.analysis.scores import graph_scores
from kb.api import KB
from kb.cli import main
from kb.errors import GraphFormatError
from kb.descriptions import labels_of
from kb.featuremeta import add_label
from kb.search import search
from kb.selection import Selection
from schema.sql import descriptions
from tests.builders import small_graph, write
from tests.conftest import DATA
from tests.crm_builder import (
    BIAS_Q,
    LORSA_LOW,
    LORSA_PRUNED,
    LORSA_SET,
    LORSA_TOP,
    TC_MID,
    TC_PRUNED,
    TC_SAME,
    TRANSCODER_SET,
    UNKNOWN,
    crm_graph,
)

SCHEMA = DATA / "neuronpedia-graph-schema.json"

LORSA_1_7 = FeatureKey(LORSA_SET, 1, 7)
LORSA_3_9 = FeatureKey(LORSA_SET, 3, 9)
TC_1_7 = FeatureKey(TRANSCODER_SET, 1, 7)
TC_2_50 = FeatureKey(TRANSCODER_SET, 2, 50)
TC_0_12 = FeatureKey(TRANSCODER_SET, 0, 12)
GRAPH_FEATURES = {LORSA_1_7, LORSA_3_9, TC_1_7, TC_2_50, TC_0_12}


def valid_against_schema(doc: dict[str, Any]) -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(doc)


def ingest_crm(kb: KB, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    first, second = crm_graph("crm-texas"), crm_graph("crm-2", second=True)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,family,language,tags\ncrm-texas.json,capital,en,\ncrm-2.json,capital,fr,\n")
    report = kb.ingest([write(tmp_path / "crm-texas.json", first), write(tmp_path / "crm-2.json", second)], manifest=manifest)
    assert report.failed == [] and len(report.ingested) == 2
    return first, second


# --- reading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_every_node_type_is_read_with_its_identity(tmp_path: Path, stream: bool) -> None:
    doc = crm_graph()
    graph = read_graph(write(tmp_path / "crm.json", doc), stream=stream)
    kinds = {n.node_id: n.kind for n in graph.nodes}
    assert kinds[LORSA_LOW] == kinds[TC_SAME] == "feature"
    assert kinds["1_error_attn_3"] == kinds["2_error_mlp_4"] == "error"
    assert kinds["2_bias_mlp_bout_4"] == "bias" and kinds[UNKNOWN] == "other"
    assert kinds["E_315_3"] == "embedding" and kinds["4_21608_4"] == "logit"
    # a Lorsa feature and the transcoder feature at the same (layer, index) are two features
    keys = {n.node_id: n.feature_key for n in graph.nodes}
    assert keys[LORSA_LOW] == LORSA_1_7 and keys[TC_SAME] == TC_1_7 and LORSA_1_7 != TC_1_7
    assert graph.features() == GRAPH_FEATURES
    assert all(keys[i] is None for i in ("1_error_attn_3", "2_error_mlp_4", "2_bias_mlp_bout_4", UNKNOWN, "E_315_3"))
    assert graph.header.metadata == doc["metadata"] and graph.header.qparams == {}
    assert graph.warnings == []
    # QK contributors resolve in nodes and in qk_only_nodes; those pruned out are known features too
    assert {n.node_id for n in graph.qk_only_nodes} == {TC_PRUNED, LORSA_PRUNED, BIAS_Q}
    assert graph.qk_features() == {TC_2_50, TC_1_7, LORSA_1_7, FeatureKey(TRANSCODER_SET, 0, 33), FeatureKey(LORSA_SET, 0, 5)}
    top = [c for c in graph.qk if graph.nodes[c.target_idx].node_id == LORSA_TOP]
    assert [(c.role, c.q_node_id, c.k_node_id, c.weight) for c in top if c.role == "pair"] == [
        ("pair", TC_MID, TC_SAME, 0.8),
        ("pair", BIAS_Q, TC_PRUNED, 0.2),
    ]
    assert [c.k_feature for c in top if c.role == "k"] == [TC_1_7, FeatureKey(TRANSCODER_SET, 0, 33), LORSA_1_7]
    assert [c.q_feature for c in top if c.role == "q"] == [TC_2_50, None]  # a bias is not a feature


def test_the_lorsa_set_comes_from_feature_details_or_stays_apart() -> None:
    named = {"scan": "m", "feature_details": {"neuronpedia_source_set": "tc", "neuronpedia_lorsa_source_set": "lorsa-8x"}}
    assert lorsa_set_of(named, "m/tc") == "m/lorsa-8x"
    assert lorsa_set_of({"scan": "m"}, "m/tc") == "m/tc/lorsa"
    # a file naming the transcoder's own set for its Lorsa features still gets two sets
    same = {"scan": "m", "feature_details": {"neuronpedia_source_set": "tc", "neuronpedia_lorsa_source_set": "tc"}}
    assert lorsa_set_of(same, "m/tc") == "m/tc/lorsa"


def test_attention_of_a_layer_feeds_the_mlp_of_the_same_layer_and_links_against_the_order_are_reported(tmp_path: Path) -> None:
    def warning(doc: dict[str, Any]) -> str:
        graph = read_graph(write(tmp_path / "order.json", doc))
        assert graph.n_links == len(doc["links"])  # kept as the file has them
        assert len(graph.warnings) == 1 and "1 links run against the model's causal order" in graph.warnings[0]
        return graph.warnings[0]

    doc = crm_graph()
    graph = read_graph(write(tmp_path / "ok.json", doc))
    assert graph.warnings == [] and graph.n_links == len(doc["links"])  # 1_lor_7_3 -> 1_cro_7_3 is in order

    backwards = crm_graph()
    backwards["links"].append({"source": TC_SAME, "target": LORSA_LOW, "weight": 0.1})  # MLP 1 -> attention 1
    text = warning(backwards)
    assert f"links[{len(doc['links'])}]" in text and "(layer 1 MLP) cannot feed" in text and "(layer 1 attention)" in text

    same_sublayer = crm_graph()
    same_sublayer["links"].append({"source": LORSA_LOW, "target": "1_error_attn_3", "weight": 0.1})
    assert "runs against the model's order" in warning(same_sublayer)

    earlier_position = crm_graph()
    earlier_position["links"].insert(0, {"source": TC_MID, "target": LORSA_LOW, "weight": 0.1})  # position 4 -> 3
    assert "links[0]: runs backwards in the context" in warning(earlier_position)

    # ordinary CLT graphs: the layer order, as before
    clt = small_graph()
    clt["links"].append({"source": "20_400_2", "target": "12_300_2", "weight": 0.1})
    assert "(layer 20 MLP) cannot feed '12_300_2' (layer 12 MLP)" in warning(clt)


def test_colliding_ids_are_resolved_by_the_sublayer_order(tmp_path: Path) -> None:
    doc = crm_graph()
    # a Lorsa and a transcoder node share the plain id "2_8_4" (another writer's ids)
    lorsa, tc = copy.deepcopy(doc["nodes"][9]), copy.deepcopy(doc["nodes"][8])
    lorsa.update(node_id="2_8_4", jsNodeId="2_8_4-lor", layer=2, feature=None)
    tc.update(node_id="2_8_4", jsNodeId="2_8_4-cro", layer=2, feature=None)
    doc["nodes"] += [lorsa, tc]
    doc["links"].append({"source": "2_8_4", "target": TC_MID, "weight": 0.3})  # only attention 2 can feed MLP 2
    doc["links"].append({"source": TC_SAME, "target": "2_8_4", "weight": 0.2})  # MLP 1 may feed either
    graph = read_graph(write(tmp_path / "collide.json", doc))
    resolved = graph.nodes[int(graph.link_src[-1])]
    assert resolved.feature_type == "lorsa" and resolved.feature_key == FeatureKey(LORSA_SET, 2, 8)
    assert [a["link"] for a in graph.ambiguous_links] == [doc["links"][-1]]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_position_past_the_prompt_is_refused(tmp_path: Path, stream: bool) -> None:
    doc = crm_graph()
    doc["nodes"][7]["ctx_idx"] = 5  # the prompt has five tokens: positions 0 to 4
    with pytest.raises(GraphFormatError) as info:
        read_graph(write(tmp_path / "past.json", doc), stream=stream)
    assert info.value.where == "nodes[7].ctx_idx" and "past the prompt" in info.value.reason and str(tmp_path) in str(info.value)

    doc = crm_graph()
    doc["qk_only_nodes"][TC_PRUNED]["ctx_idx"] = 9
    with pytest.raises(GraphFormatError) as info:
        read_graph(write(tmp_path / "past.json", doc), stream=stream)
    assert info.value.where == f'qk_only_nodes["{TC_PRUNED}"].ctx_idx'


def test_bad_qk_tracing_is_refused_with_its_path(tmp_path: Path) -> None:
    def where(doc: dict[str, Any]) -> tuple[str, str]:
        with pytest.raises(GraphFormatError) as info:
            read_graph(write(tmp_path / "qk.json", doc))
        return info.value.where, info.value.reason

    doc = crm_graph()
    doc["nodes"][9]["qk_tracing_results"]["top_k_marginal_contributors"][1][0] = "0_cro_99_1"
    assert where(doc) == ("nodes[9].qk_tracing_results.top_k_marginal_contributors[1][0]", "no node '0_cro_99_1' in nodes or qk_only_nodes")

    doc = crm_graph()
    doc["nodes"][9]["qk_tracing_results"]["pair_wise_contributors"][0] = [TC_MID, 0.8]
    assert where(doc)[0] == "nodes[9].qk_tracing_results.pair_wise_contributors[0]"

    doc = crm_graph()
    doc["qk_only_nodes"][TC_PRUNED]["node_id"] = "0_cro_34_1"
    assert where(doc)[0] == f'qk_only_nodes["{TC_PRUNED}"].node_id'


def test_an_unknown_node_type_is_kept_with_a_warning(tmp_path: Path) -> None:
    doc = crm_graph()
    doc["nodes"].append({**copy.deepcopy(doc["nodes"][15]), "node_id": "2_head_3_4", "jsNodeId": "2_head_3_4", "feature_type": "attention head", "layer": 2, "ctx_idx": 4})
    doc["links"].append({"source": "2_head_3_4", "target": LORSA_TOP, "weight": 0.05})
    graph = read_graph(write(tmp_path / "future.json", doc))
    node = graph.nodes[-1]
    assert node.kind == "other" and node.feature_key is None and node.feature_type == "attention head"
    assert graph.n_links == len(doc["links"]) and graph.features() == GRAPH_FEATURES
    assert len(graph.warnings) == 1 and "'attention head' (1)" in graph.warnings[0] and "not features" in graph.warnings[0]

    doc["nodes"][-1]["ctx_idx"] = "four"  # unknown types are kept only when sound
    with pytest.raises(GraphFormatError) as info:
        read_graph(write(tmp_path / "future.json", doc))
    assert info.value.where == f"nodes[{len(doc['nodes']) - 1}].ctx_idx"


# --- stored, exported, queried on every store --------------------------------------------------------


def test_crm_graphs_export_equal_and_valid_and_an_unknown_type_survives(kb: KB, tmp_path: Path) -> None:
    first, second = ingest_crm(kb, tmp_path)
    future = crm_graph("crm-future")
    future["nodes"].append({**copy.deepcopy(future["nodes"][15]), "node_id": "2_head_3_4", "jsNodeId": "2_head_3_4", "feature_type": "attention head", "layer": 2, "ctx_idx": 4})
    report = kb.ingest([write(tmp_path / "future.json", future)])
    assert report.failed == [] and any("attention head" in w for w in report.warnings)
    for doc in (first, second, future):
        exported = kb.export(doc["metadata"]["slug"])
        assert exported == doc  # integer layers, qk_tracing_results, qk_only_nodes, metadata, qParams {}
        assert isinstance(exported["nodes"][5]["layer"], int) and exported["nodes"][0]["layer"] == "E"
        valid_against_schema(exported)
    row = kb.graph_row("crm-texas")
    assert row.n_features == 5 and kb.store.counts([row.id])["features"] == 5
    with kb.engine.connect() as conn:  # the converter's "F{feature}" clerps are placeholders, not descriptions
        assert conn.execute(descriptions.select()).all() == []


def test_lorsa_features_in_every_cross_graph_query(kb: KB, tmp_path: Path) -> None:
    ingest_crm(kb, tmp_path)
    assert kb.ingest([write(tmp_path / "clt.json", small_graph("clt"))]).failed == []
    crm = Selection(family="capital")

    shared = shared_features(kb, crm)
    assert {FeatureKey(r.transcoder_set, r.layer, r.index) for r in shared.features.itertuples()} == GRAPH_FEATURES

    core = family_core(kb, crm)
    assert {FeatureKey(r.transcoder_set, r.layer, r.index) for r in core.core.itertuples()} == GRAPH_FEATURES
    assert core.additions.empty

    usage = used_by(kb, [f"{LORSA_SET}/L1/7"])
    assert usage.n_graphs == 2 and set(usage.graphs["slug"]) == {"crm-texas", "crm-2"}
    downstream = usage.neighbours[(usage.neighbours["direction"] == "downstream") & (usage.neighbours["slug"] == "crm-texas")]
    assert list(zip(downstream["neighbour_transcoder_set"], downstream["neighbour_layer"], downstream["neighbour_index"])) == [(TRANSCODER_SET, 1, 7)]
    upstream = usage.neighbours[(usage.neighbours["direction"] == "upstream") & (usage.neighbours["slug"] == "crm-texas")]
    assert set(upstream["node_id"]) == {"0_cro_12_3"}  # the Lorsa error feeds the MLP feature, not the Lorsa one
    # the transcoder feature at the same (layer, index) is another feature, used in the same graphs
    tc_usage = used_by(kb, [f"{TRANSCODER_SET}/L1/7"])
    upstream = tc_usage.neighbours[(tc_usage.neighbours["direction"] == "upstream") & (tc_usage.neighbours["slug"] == "crm-texas")]
    assert set(upstream["kind"]) == {"feature", "error"} and set(upstream["node_id"]) == {LORSA_LOW, "1_error_attn_3"}

    edges = recurring_edges(kb, crm, min_graphs=2)
    pairs = {(FeatureKey(r.src_transcoder_set, r.src_layer, r.src_index), FeatureKey(r.tgt_transcoder_set, r.tgt_layer, r.tgt_index)) for r in edges.edges.itertuples()}
    assert pairs == {(TC_0_12, LORSA_1_7), (LORSA_1_7, TC_1_7), (TC_1_7, TC_2_50), (TC_2_50, LORSA_3_9)}  # never a bias, error or unknown

    overlap = language_overlap(kb, crm, max_baseline_pairs=0)
    layer1 = overlap.features[overlap.features["layer"] == 1]
    assert set(zip(layer1["transcoder_set"], layer1["class"])) == {(LORSA_SET, "shared"), (TRANSCODER_SET, "shared")}
    assert list(overlap.curves.sort_values("layer")["iou"]) == [1.0, 1.0, 1.0, 1.0]

    # labels and search: the Lorsa feature is its own, found by id and by its label
    add_label(kb, LORSA_3_9, "attends to the state's name", "ann", graph_slug="crm-texas")
    assert [lab["text"] for lab in labels_of(kb, LORSA_3_9)] == ["attends to the state's name"] and labels_of(kb, FeatureKey(TRANSCODER_SET, 3, 9)) == []
    assert [h.feature for h in search(kb, f"{LORSA_SET}/L1/7", k=3, mode="keyword")] == [LORSA_1_7]
    hits = search(kb, "state's name", k=3, mode="keyword")
    assert hits[0].feature == LORSA_3_9 and hits[0].n_graphs == 2


def test_comparison_keeps_lorsa_errors_bias_and_unknown_nodes_apart(kb: KB, tmp_path: Path) -> None:
    ingest_crm(kb, tmp_path)
    result = compare_graphs(kb, "crm-texas", "crm-2")
    kinds = dict(zip(result.nodes["key"], result.nodes["kind"]))
    assert kinds["attn err L1@3"] == "error" and kinds["err L2@4"] == "error"
    assert kinds["bias L2 mlp_bout@4"] == "bias"
    unknown = result.nodes[result.nodes["kind"] == "other"]
    assert list(unknown["key"]) == ["unknown 0_unknown_blocks_0_hook_resid_mid@2"] and list(unknown["in_b"]) == [False]
    # the summary counts features only: both graphs have the same five, and the same feature edges
    assert result.summary["features_jaccard"] == 1.0 and result.summary["feature_edges_jaccard"] == 1.0
    assert {r.key for r in result.nodes.itertuples() if r.kind == "feature"} == {f"{k.transcoder_set}/L{k.layer}/{k.index}" for k in GRAPH_FEATURES}
    similarity = graph_similarity(kb, Selection(family="capital"))
    assert np.allclose(similarity.matrix.to_numpy(), 1.0)


# --- scores -------------------------------------------------------------------------------------------


def reference_scores(doc: dict[str, Any], keep: set[str] | None = None) -> tuple[float, float]:
    """Replacement and completeness by dense matrices, straight from the file.

    Rows: embeddings (tokens), errors and the features not kept, one row per (layer, position,
    sublayer) (errors), and every other node on its own: kept features, logits, and bias and
    unknown nodes, which are neither tokens nor errors (their input counts as explained).
    """
    rows: dict[Any, int] = {}
    role: list[str] = []
    row_of: dict[str, int] = {}
    for n in doc["nodes"]:
        attention = n["feature_type"] in ("lorsa", "lorsa error")
        folded = n["feature_type"] in ("lorsa", "cross layer transcoder") and keep is not None and n["node_id"] not in keep
        if n["feature_type"].endswith("error") or folded:
            slot: Any = ("error", int(n["layer"]), n["ctx_idx"], attention)
            kind = "error"
        else:
            slot, kind = n["node_id"], {"embedding": "token"}.get(n["feature_type"], n["feature_type"])
        if slot not in rows:
            rows[slot] = len(role)
            role.append(kind)
        row_of[n["node_id"]] = rows[slot]
    size = len(role)
    matrix = np.zeros((size, size))
    for link in doc["links"]:
        s, t = row_of[link["source"]], row_of[link["target"]]
        if role[t] != "error":
            matrix[t, s] += link["weight"]
    matrix = np.abs(matrix)
    sums = matrix.sum(axis=1, keepdims=True)
    matrix = np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)
    logit = np.zeros(size)
    for n in doc["nodes"]:
        if n["feature_type"] == "logit":
            logit[row_of[n["node_id"]]] = n["token_prob"]
    influence = np.linalg.solve(np.eye(size) - matrix.T, matrix.T @ logit)  # w A + w A^2 + ...
    kinds = np.array(role)
    token, error = influence[kinds == "token"].sum(), influence[kinds == "error"].sum()
    error_share = matrix[:, kinds == "error"].sum(axis=1)
    weight = influence + logit
    return token / (token + error), float(((1 - error_share) * weight).sum() / weight.sum())


def test_scores_treat_lorsa_features_as_features_and_lorsa_errors_as_errors(kb: KB, tmp_path: Path) -> None:
    first, _ = ingest_crm(kb, tmp_path)
    whole = graph_scores(kb, "crm-texas")
    assert (whole.replacement, whole.completeness) == pytest.approx(reference_scores(first))
    assert whole.n_features == 5 and whole.n_feature_nodes == 5
    # keep the Lorsa features only: transcoder features fold into the MLP error of their layer and position
    lorsa_only = graph_scores(kb, "crm-texas", features=[LORSA_1_7, LORSA_3_9])
    assert (lorsa_only.replacement, lorsa_only.completeness) == pytest.approx(reference_scores(first, {LORSA_LOW, LORSA_TOP}))
    assert lorsa_only.n_feature_nodes_kept == 2 and lorsa_only.replacement < whole.replacement
    # bias and unknown nodes are not errors: read as errors (each its own), both scores would drop
    as_errors = copy.deepcopy(first)
    for n in as_errors["nodes"]:
        if n["feature_type"] in ("bias", "unknown"):
            n["feature_type"] = "lorsa error"
    replacement, completeness = reference_scores(as_errors)
    assert replacement < whole.replacement and completeness < whole.completeness


# --- QK tracing ---------------------------------------------------------------------------------------


def test_qk_tracing_in_one_graph_is_the_files_and_across_graphs_is_summed_up(kb: KB, tmp_path: Path) -> None:
    first, _ = ingest_crm(kb, tmp_path)
    one = qk_drivers(kb, [LORSA_3_9], Selection(slugs=("crm-texas",)))
    assert one.n_graphs == 1
    # the rows give back the file's lists, in order
    rebuilt: dict[str, list[list[Any]]] = defaultdict(list)
    names = {"pair": "pair_wise_contributors", "q": "top_q_marginal_contributors", "k": "top_k_marginal_contributors"}
    for r in one.rows.itertuples():
        ids = [i for i in (r.q_node_id, r.k_node_id) if i is not None]
        rebuilt[names[r.role]].append([*ids, r.weight])
    assert dict(rebuilt) == next(n for n in first["nodes"] if n["node_id"] == LORSA_TOP)["qk_tracing_results"]
    pruned = {(r.role, r.k_node_id): r.k_pruned for r in one.rows.itertuples() if r.role == "k"}
    assert pruned == {("k", TC_SAME): False, ("k", TC_PRUNED): True, ("k", LORSA_LOW): False}
    lorsa_key = one.rows[(one.rows["role"] == "k") & (one.rows["k_node_id"] == LORSA_LOW)].iloc[0]
    assert (lorsa_key.k_transcoder_set, lorsa_key.k_layer, lorsa_key.k_index) == (LORSA_SET, 1, 7)

    both = qk_drivers(kb, [f"{LORSA_SET}/L3/9"])
    assert both.n_graphs == 2
    keys = both.summary[both.summary["role"] == "k"]
    assert list(zip(keys["k_transcoder_set"], keys["k_layer"], keys["k_index"], keys["n_graphs"])) == [
        (TRANSCODER_SET, 1, 7, 2),
        (TRANSCODER_SET, 0, 33, 2),  # pruned from both graphs, still a driver of the keys
        (LORSA_SET, 1, 7, 2),
    ]
    assert list(keys["mean_weight"]) == pytest.approx([(0.9 + 0.45) / 2, (0.4 + 0.2) / 2, (0.1 + 0.05) / 2])
    queries = both.summary[both.summary["role"] == "q"]
    assert len(queries) == 1 and (queries.iloc[0].q_layer, queries.iloc[0].q_index) == (2, 50)  # the bias is not a feature
    as_json = both.as_dict()
    assert {n["slug"] for n in as_json["nodes"]} == {"crm-texas", "crm-2"}
    assert as_json["nodes"][0]["contributors"][0]["q"]["node_id"] == TC_MID
    # a transcoder feature has no QK tracing
    assert qk_drivers(kb, [TC_1_7]).n_graphs == 0


def test_used_by_shows_what_drives_queries_and_keys(make_kb: Any, kb_env: Any, tmp_path: Path) -> None:
    env = kb_env("sqlite", "embedded")
    kb = make_kb(env=env)
    ingest_crm(kb, tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["used-by", f"{LORSA_SET}/L3/9"], env=env, catch_exceptions=False)
    assert result.exit_code == 0
    assert "what drives the queries and keys" in result.output and f"{TRANSCODER_SET}/L0/33*" in result.output
    result = runner.invoke(main, ["used-by", f"{LORSA_SET}/L3/9", "--json"], env=env, catch_exceptions=False)
    doc = json.loads(result.output)
    assert doc["qk"]["n_graphs"] == 2 and doc["qk"]["summary"][0]["role"] == "q"


def test_the_app_shows_what_drives_queries_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from kb.config import Config

    with KB.open(Config.load(home=tmp_path / "home", env={})) as kb:
        ingest_crm(kb, tmp_path)
    monkeypatch.setenv("CIRCUITKB_HOME", str(tmp_path / "home"))
    for name in ("CIRCUITKB_SQL_URL", "CIRCUITKB_NEO4J_URI"):
        monkeypatch.delenv(name, raising=False)

    def opened(page: str, **params: str) -> AppTest:
        app = AppTest.from_function(_run_app_page, args=(page,), default_timeout=120)
        for name, value in params.items():
            app.query_params[name] = value
        return app.run()

    feature = opened("feature", f=f"{LORSA_SET}/3/9")
    assert not feature.exception, feature.exception
    summary = next(d.value for d in feature.dataframe if "n_graphs" in d.value.columns and "role" in d.value.columns)
    assert list(summary["role"]) == ["q", "k", "k", "k", "pair"] and set(summary["n_graphs"]) == {2}

    graph = opened("graph", g="crm-texas", node=LORSA_TOP)
    assert not graph.exception, graph.exception
    rows = next(d.value for d in graph.dataframe if "target_node_id" in d.value.columns)
    assert set(rows["slug"]) == {"crm-texas"} and set(rows["role"]) == {"q", "k", "pair"}


def _run_app_page(page: str) -> None:
    import streamlit as st

    from app.nav import all_pages

    st.navigation(all_pages(default=page)).run()


def test_a_piece_of_a_crm_graph_resolves_its_qk_tracing(kb: KB, tmp_path: Path) -> None:
    from kb.analysis.pieces import neighbourhood_piece

    first, _ = ingest_crm(kb, tmp_path)
    piece = neighbourhood_piece(kb, "crm-texas", LORSA_TOP, hops=1)
    doc = piece.doc
    assert LORSA_TOP in {n["node_id"] for n in doc["nodes"]} and TC_SAME not in {n["node_id"] for n in doc["nodes"]}
    # every contributor outside the piece is described: the file's pruned ones and the graph's own nodes
    assert set(doc["qk_only_nodes"]) == {BIAS_Q, TC_PRUNED, TC_SAME, LORSA_LOW}
    assert doc["qk_only_nodes"][TC_PRUNED] == first["qk_only_nodes"][TC_PRUNED]
    assert doc["qk_only_nodes"][TC_SAME]["feature_type"] == "cross layer transcoder"
    valid_against_schema(doc)
    again = read_graph(write(tmp_path / "piece.json", doc))
    assert {c.k_feature for c in again.qk if c.role == "k"} == {TC_1_7, FeatureKey(TRANSCODER_SET, 0, 33), LORSA_1_7}
