"""Feature metadata: Neuronpedia explanations and exports, circuit-tracer feature files, label CSVs.

Every test runs on SQLite and, when CIRCUITKB_TEST_PG_URL is set, on a fresh PostgreSQL
database (fixtures of tests/conftest.py); the tests that tie metadata to ingested graphs also
run on every graph store.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy import func, select

from ingest.featurefiles import read_metadata_file, ReadOptions, neuronpedia_feature
from ingest.featureid import cantor_pair, canonical_transcoder_set
from ingest.records import FeatureKey
from kb.api import KB
from kb.errors import CircuitKBError, ConfigError, MetadataFormatError
from kb.descriptions import descriptions_of, labels_of, one_line_descriptions
from kb.featuremeta import add_label, import_feature_metadata
from schema.sql import descriptions, feature_details, features, labels
from tests.conftest import FEATURES, real_graph
from tests.builders import small_graph, write

EXPLANATIONS = FEATURES / "np_explanations_gemma-2-2b_20-gemmascope-transcoder-16k.json"
PLT = "gemma-2-2b/gemmascope-transcoder-16k"
CLT = "gemma-2-2b/clt-hp"
CLT_REPO = "mntss/clt-gemma-2-2b-2.5M"


@pytest.fixture(params=["sqlite", "postgres"])
def meta_kb(request: pytest.FixtureRequest, make_kb: Callable[..., KB]) -> KB:
    """A fresh KB on each SQL database; feature metadata lives in SQL, so one graph store will do."""
    return make_kb(request.param, "embedded")


def table_counts(kb: KB) -> dict[str, int]:
    with kb.engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (features, descriptions, feature_details, labels)
        }


def feature_id(kb: KB, key: FeatureKey) -> int | None:
    c = features.c
    with kb.engine.connect() as conn:
        return conn.execute(
            select(c.id).where(c.transcoder_set == key.transcoder_set, c.layer == key.layer, c["index"] == key.index)
        ).scalar()


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def write_lines(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def export_row(layer: int, index: int | str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "modelId": "gemma-2-2b",
        "layer": f"{layer}-clt-hp",
        "index": index,
        "description": text,
        "typeName": "oai_token-act-pair",
        "explanationModelName": "gpt-4o-mini",
        **extra,
    }


def feature_page(encoded: int, **changes: Any) -> dict[str, Any]:
    """A circuit-tracer feature file as its viewer reads it."""
    page = {
        "index": encoded,
        "transcoder_id": CLT_REPO,
        "examples_quantiles": [
            {
                "quantile_name": "Top activations",
                "examples": [
                    {
                        "tokens": ["<bos>", "Dallas", " is", " in", " Texas"],
                        "tokens_acts_list": [0.0, 1.5, 0.0, 0.25, 3.0],
                        "train_token_ind": 4,
                        "is_repeated_datapoint": False,
                    }
                ],
            }
        ],
        "top_logits": [" Texas", " Austin"],
        "bottom_logits": [" Paris"],
        "act_min": 0.0,
        "act_max": 3.0,
        "quantile_values": [0.1, 0.5],
        "histogram": [10.0, 2.0],
        "activation_frequency": 0.0012,
    }
    page.update(changes)
    return page


def unique_explanations(path: Path) -> set[tuple[int, str, str, str]]:
    doc = json.loads(path.read_text())
    return {(int(k), e["type"], e["author"], e["text"].strip()) for k, entries in doc.items() for e in entries}


def graph_feature_nodes(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text())
    return [n for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder"]


def stored_feature_ids(kb: KB, slug: str) -> dict[str, int]:
    """node_id -> SQL feature id of every feature node, as the graph store keeps them."""
    stored = kb.store.load_graph(kb.graph_row(slug).id)
    return {n["node_id"]: n["feature_id"] for n in stored.nodes if n["feature_id"] is not None}


# --- identity --------------------------------------------------------------------------------------


def test_neuronpedia_name_is_the_graph_key() -> None:
    key = neuronpedia_feature("gemma-2-2b", "20-clt-hp", 1234)
    assert key == FeatureKey(canonical_transcoder_set("clt-hp", "gemma-2-2b"), 20, 1234)
    assert key == FeatureKey(CLT, 20, 1234)
    assert key.transcoder_set == canonical_transcoder_set(CLT_REPO)


# --- Neuronpedia explanations map --------------------------------------------------------------------


def test_real_explanations_file_is_imported(meta_kb: KB) -> None:
    expected = unique_explanations(EXPLANATIONS)
    report = import_feature_metadata(meta_kb, [EXPLANATIONS])
    assert report.failed == []
    assert report.descriptions_added == len(expected)
    assert report.files[0]["format"] == "neuronpedia-explanations"
    counts = table_counts(meta_kb)
    assert counts["descriptions"] == len(expected)
    assert counts["features"] == len({k for k, *_ in expected}) == 54
    found = descriptions_of(meta_kb, FeatureKey(PLT, 20, 945))
    assert [(d["source"], d["kind"], d["author"], d["text"]) for d in found] == [
        ("neuronpedia", "oai_token-act-pair", "gemini-2.0-flash", "numbers and sequences, especially those found in legal or scientific citations"),
        ("neuronpedia", "np_max-act-logits", "gemini-2.0-flash", "extracts data"),
        ("neuronpedia", "np_max-act-logits", "gpt-5-mini", 'say "digits"'),
    ]
    assert all(d["graph_slug"] is None and d["origin"] == str(EXPLANATIONS) for d in found)


def test_reimport_adds_nothing(meta_kb: KB, tmp_path: Path) -> None:
    import_feature_metadata(meta_kb, [EXPLANATIONS])
    before = table_counts(meta_kb)
    copy = tmp_path / "elsewhere" / EXPLANATIONS.name
    copy.parent.mkdir()
    shutil.copy(EXPLANATIONS, copy)
    for path in (EXPLANATIONS, copy):
        report = import_feature_metadata(meta_kb, [path])
        assert report.failed == []
        assert report.descriptions_added == 0
        assert report.files[0]["added"] == 0
    assert table_counts(meta_kb) == before


def test_concurrent_imports_of_one_file_add_each_explanation_once(meta_kb: KB) -> None:
    reports = []

    def run() -> None:
        reports.append(import_feature_metadata(meta_kb, [EXPLANATIONS]))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = len(unique_explanations(EXPLANATIONS))
    assert [r.failed for r in reports] == [[]] * 4
    assert sum(r.descriptions_added for r in reports) == expected
    assert table_counts(meta_kb)["descriptions"] == expected


def test_explanations_map_named_by_options_or_file_name(meta_kb: KB, tmp_path: Path) -> None:
    plain = tmp_path / "explanations.json"
    shutil.copy(EXPLANATIONS, plain)
    report = import_feature_metadata(meta_kb, [plain])
    assert report.failed and "pass model and source" in report.failed[0]["error"]
    assert table_counts(meta_kb)["descriptions"] == 0

    report = import_feature_metadata(meta_kb, [plain], model="gemma-2-2b", source="20-gemmascope-transcoder-16k")
    assert report.descriptions_added == len(unique_explanations(EXPLANATIONS))

    # {layer}-{set}.json takes its source from the name and the model from the option
    by_layer = tmp_path / "gemma-2-2b" / "21-gemmascope-transcoder-16k.json"
    by_layer.parent.mkdir()
    write_json(by_layer, {"7": [{"type": "t", "author": "a", "text": "layer 21 feature"}]})
    report = import_feature_metadata(meta_kb, [by_layer], model="gemma-2-2b")
    assert report.failed == []
    assert [d["text"] for d in descriptions_of(meta_kb, FeatureKey(PLT, 21, 7))] == ["layer 21 feature"]


@pytest.mark.slow
def test_explanations_land_on_schema0_graph_features(tmp_path: Path, make_kb: Callable[..., KB]) -> None:
    kb = make_kb("sqlite", "embedded")
    graph = real_graph("01")
    assert kb.ingest([graph]).failed == []
    before = table_counts(kb)["features"]
    import_feature_metadata(kb, [EXPLANATIONS])
    explained = {k for k, *_ in unique_explanations(EXPLANATIONS)}
    in_graph = {n["node_id"]: n for n in graph_feature_nodes(graph) if n["layer"] == "20"}
    shared = {nid for nid, n in in_graph.items() if n["feature"] - 20 * 100000 in explained}
    assert len(shared) == 6
    assert table_counts(kb)["features"] == before + len(explained) - len({in_graph[n]["feature"] for n in shared})
    ids = stored_feature_ids(kb, kb.graph_row(json.loads(graph.read_text())["metadata"]["slug"]).slug)
    for nid in shared:
        key = FeatureKey(PLT, 20, in_graph[nid]["feature"] - 20 * 100000)
        assert feature_id(kb, key) == ids[nid]
        sources = {d["source"] for d in descriptions_of(kb, key)}
        assert sources == {"clerp", "neuronpedia"}


# --- Neuronpedia export rows and circuit-tracer files meet graph nodes ---------------------------------


def test_export_rows_and_feature_files_land_on_graph_nodes(kb: KB, tmp_path: Path) -> None:
    graph = real_graph("05")
    slug = json.loads(graph.read_text())["metadata"]["slug"]
    assert kb.ingest([graph]).failed == []
    nodes = graph_feature_nodes(graph)
    first, second, third = nodes[0], nodes[len(nodes) // 2], nodes[-1]

    def key_of(node: dict[str, Any]) -> tuple[int, int]:
        layer, index, _pos = node["node_id"].split("_")
        return int(layer), int(index)

    (l1, i1), (l2, i2), (l3, i3) = key_of(first), key_of(second), key_of(third)
    before = table_counts(kb)["features"]
    array = write_json(tmp_path / "export.json", [export_row(l1, i1, "Dallas, the city", score=0.81, votes=3)])
    lines = write_lines(tmp_path / "export.jsonl", [export_row(l2, str(i2), "capital cities")])
    write_json(tmp_path / "features" / f"{third['feature']}.json", feature_page(third["feature"]))
    report = import_feature_metadata(kb, [array, lines, tmp_path / "features"], transcoder_set=CLT_REPO)
    assert report.failed == []
    assert (report.descriptions_added, report.details_added) == (2, 1)
    assert [f["format"] for f in report.files] == ["neuronpedia-export", "neuronpedia-export", "circuit-tracer-features"]
    assert table_counts(kb)["features"] == before  # no new feature: the graph's were found

    ids = stored_feature_ids(kb, slug)
    for node, layer, index in ((first, l1, i1), (second, l2, i2), (third, l3, i3)):
        assert feature_id(kb, FeatureKey(CLT, layer, index)) == ids[node["node_id"]]

    said = descriptions_of(kb, FeatureKey(CLT, l1, i1))
    np_rows = [d for d in said if d["source"] == "neuronpedia"]
    assert [(d["kind"], d["author"], d["text"], d["scores"]) for d in np_rows] == [
        ("oai_token-act-pair", "gpt-4o-mini", "Dallas, the city", {"score": 0.81, "votes": 3})
    ]
    clerps = [d for d in said if d["source"] == "clerp"]
    assert [(d["text"], d["graph_slug"]) for d in clerps] == [(first["clerp"].strip(), slug)]
    with kb.engine.connect() as conn:
        detail = conn.execute(select(feature_details).where(feature_details.c.feature_id == ids[third["node_id"]])).one()
    assert detail.top_logits == [" Texas", " Austin"] and detail.act_max == 3.0


# --- circuit-tracer feature files ---------------------------------------------------------------------


def test_feature_files_schema1(meta_kb: KB, tmp_path: Path) -> None:
    folder = tmp_path / "features"
    write_json(folder / f"{cantor_pair(20, 1234)}.json", feature_page(cantor_pair(20, 1234)))
    write_json(folder / "more" / "b.json", feature_page(cantor_pair(3, 77), act_max=9.5, top_logits=[" x"]))
    (folder / "README.md").write_text("not metadata")
    report = import_feature_metadata(meta_kb, [folder], transcoder_set=CLT_REPO)
    assert report.failed == []
    assert (report.details_added, len(report.files)) == (2, 2)

    fid = feature_id(meta_kb, FeatureKey(CLT, 20, 1234))
    with meta_kb.engine.connect() as conn:
        row = conn.execute(select(feature_details).where(feature_details.c.feature_id == fid)).one()
    page = feature_page(cantor_pair(20, 1234))
    assert row.examples_quantiles == page["examples_quantiles"]
    assert (row.top_logits, row.bottom_logits) == ([" Texas", " Austin"], [" Paris"])
    assert (row.act_min, row.act_max, row.activation_frequency) == (0.0, 3.0, 0.0012)
    assert row.extra == {"transcoder_id": CLT_REPO, "quantile_values": [0.1, 0.5], "histogram": [10.0, 2.0]}
    assert feature_id(meta_kb, FeatureKey(CLT, 3, 77)) is not None

    again = import_feature_metadata(meta_kb, [folder], transcoder_set=CLT_REPO)
    assert (again.details_added, again.details_updated) == (0, 0)
    write_json(folder / "more" / "b.json", feature_page(cantor_pair(3, 77), act_max=11.0))
    changed = import_feature_metadata(meta_kb, [folder], transcoder_set=CLT_REPO)
    assert (changed.details_added, changed.details_updated) == (0, 1)
    assert table_counts(meta_kb)["feature_details"] == 2


def test_feature_files_schema0_need_the_layer(meta_kb: KB, tmp_path: Path) -> None:
    opts = {"schema": 0, "transcoder_set": "gemmascope-transcoder-16k", "model": "gemma-2-2b"}
    named = write_json(tmp_path / "a" / "20_2001234.json", feature_page(2001234))
    assert import_feature_metadata(meta_kb, [named], **opts).failed == []
    assert feature_id(meta_kb, FeatureKey(PLT, 20, 1234)) is not None

    unnamed = write_json(tmp_path / "b" / "feature.json", feature_page(1905))
    report = import_feature_metadata(meta_kb, [unnamed], **opts)
    assert "schema-0 feature ids need the layer" in report.failed[0]["error"]
    assert import_feature_metadata(meta_kb, [unnamed], layer=0, **opts).failed == []
    assert feature_id(meta_kb, FeatureKey(PLT, 0, 1905)) is not None

    by_source = import_feature_metadata(
        meta_kb, [write_json(tmp_path / "c" / "x.json", feature_page(1500042))], schema=0,
        model="gemma-2-2b", source="15-gemmascope-transcoder-16k",
    )
    assert by_source.failed == []
    assert feature_id(meta_kb, FeatureKey(PLT, 15, 42)) is not None

    wrong = write_json(tmp_path / "d" / "21_2001234.json", feature_page(2001234))
    report = import_feature_metadata(meta_kb, [wrong], **opts)
    assert "does not start with its layer 21" in report.failed[0]["error"]


@pytest.mark.slow
def test_schema0_feature_file_matches_graph_node(make_kb: Callable[..., KB], tmp_path: Path) -> None:
    kb = make_kb("sqlite", "embedded")
    graph = real_graph("01")
    assert kb.ingest([graph]).failed == []
    node = next(n for n in graph_feature_nodes(graph) if n["layer"] == "12")
    page = write_json(tmp_path / f"12_{node['feature']}.json", feature_page(node["feature"]))
    before = table_counts(kb)["features"]
    report = import_feature_metadata(kb, [page], schema=0, transcoder_set="gemmascope-transcoder-16k", model="gemma-2-2b")
    assert report.failed == [] and report.details_added == 1
    assert table_counts(kb)["features"] == before
    slug = json.loads(graph.read_text())["metadata"]["slug"]
    with kb.engine.connect() as conn:
        fid = conn.execute(select(feature_details.c.feature_id)).scalar_one()
    assert stored_feature_ids(kb, slug)[node["node_id"]] == fid


# --- labels ------------------------------------------------------------------------------------------


def test_label_csv_in_each_header_style(meta_kb: KB, tmp_path: Path) -> None:
    styles = {
        "sets.csv": "transcoder_set,layer,index,label,author\nmntss/clt-gemma-2-2b-2.5M,20,1234,Texas,ann\n",
        "neuronpedia.csv": "model,source,index,text,graph\ngemma-2-2b,20-clt-hp,1234,say Austin,dallas-graph\n\n",
        "feature.csv": (
            "feature,label,author\n"
            "gemma-2-2b/20-clt-hp/1234,capital,cid\n"
            '"gemma-2-2b/clt-hp/L20/1234","capital, of a state",cid\n'
        ),
    }
    for name, text in styles.items():
        (tmp_path / name).write_text(text)
    report = import_feature_metadata(meta_kb, [tmp_path], author="bob")
    assert report.failed == []
    assert report.labels_added == 4
    assert {f["format"] for f in report.files} == {"label-csv"}
    key = FeatureKey(CLT, 20, 1234)
    got = {(lab["author"], lab["text"], lab["graph_slug"]) for lab in labels_of(meta_kb, key)}
    assert got == {
        ("ann", "Texas", None),
        ("bob", "say Austin", "dallas-graph"),
        ("cid", "capital", None),
        ("cid", "capital, of a state", None),
    }
    assert table_counts(meta_kb)["features"] == 1
    assert [d["source"] for d in descriptions_of(meta_kb, key)] == ["label"] * 4
    assert import_feature_metadata(meta_kb, [tmp_path], author="bob").labels_added == 0
    assert table_counts(meta_kb)["labels"] == 4


def test_add_label_validates_and_is_idempotent(meta_kb: KB) -> None:
    key = FeatureKey(CLT, 20, 1234)
    first = add_label(meta_kb, key, "  Texas  ", "ann")
    assert add_label(meta_kb, key, "Texas", "ann") == first
    in_graph = add_label(meta_kb, key, "Texas", "ann", graph_slug="dallas")
    assert in_graph != first
    assert add_label(meta_kb, key, "Texas", "ann", graph_slug="dallas") == in_graph
    for text, author, slug in (("", "ann", None), ("   ", "ann", None), ("ok", "", None), ("ok", None, None), ("ok", "ann", "")):
        with pytest.raises(CircuitKBError):
            add_label(meta_kb, key, text, author, slug)  # type: ignore[arg-type]
    assert [(lab["id"], lab["text"], lab["graph_slug"]) for lab in labels_of(meta_kb, key)] == [
        (first, "Texas", None),
        (in_graph, "Texas", "dallas"),
    ]
    assert labels_of(meta_kb, FeatureKey(CLT, 1, 1)) == []
    assert descriptions_of(meta_kb, FeatureKey(CLT, 1, 1)) == []


def test_descriptions_of_puts_labels_first(meta_kb: KB, tmp_path: Path) -> None:
    import_feature_metadata(meta_kb, [write_json(tmp_path / "e.json", [export_row(20, 1234, "Texas things")])])
    add_label(meta_kb, FeatureKey(CLT, 20, 1234), "Texas", "ann")
    said = descriptions_of(meta_kb, FeatureKey(CLT, 20, 1234))
    assert [(d["source"], d["text"]) for d in said] == [("label", "Texas"), ("neuronpedia", "Texas things")]
    assert said[1]["scores"] is None


def test_one_line_descriptions_say_labels_then_clerps_then_explanations(meta_kb: KB, tmp_path: Path) -> None:
    from kb.labels import accounts, labels as label_api

    kb = meta_kb
    assert not kb.ingest([write(tmp_path / "g.json", small_graph("g"))]).failed
    with kb.engine.connect() as conn:
        rows = conn.execute(select(features.c.transcoder_set, features.c.layer, features.c.index, descriptions.c.text).join(descriptions, descriptions.c.feature_id == features.c.id)).all()
    clerped = {text: FeatureKey(tset, layer, index) for tset, layer, index, text in rows}
    opposite, say_large = clerped["opposite"], clerped["say large"]
    explained, unknown, bare = FeatureKey(CLT, 20, 1234), FeatureKey(CLT, 20, 999_999), FeatureKey(opposite.transcoder_set, 20, 400)
    import_feature_metadata(kb, [write_json(tmp_path / "e.json", [export_row(20, 1234, "Texas things"), export_row(opposite.layer, opposite.index, "antonyms")])])
    me = accounts.local_actor()
    accepted = label_api.add(kb, me, say_large, "says large").id
    label_api.add(kb, me, say_large, "a newer proposal")  # newer, but the accepted label says it
    label_api.set_status(kb, me, accepted, "accepted")
    rejected = label_api.add(kb, me, explained, "wrong guess").id
    label_api.set_status(kb, me, rejected, "rejected")  # a rejected label says nothing
    said = one_line_descriptions(kb, [opposite, say_large, explained, unknown, bare, opposite])
    assert said == {opposite: "opposite", say_large: "says large", explained: "Texas things"}  # the clerp before the explanation
    kb.remove(["g"])  # a removed graph's clerps say nothing any more: the explanation does
    assert one_line_descriptions(kb, [say_large, opposite]) == {say_large: "says large", opposite: "antonyms"}
    label_api.add(kb, me, opposite, "antonym of the adjective")
    assert one_line_descriptions(kb, [opposite])[opposite] == "antonym of the adjective"


# --- malformed input ------------------------------------------------------------------------------------

GOOD_ROW = export_row(20, 1, "fine")
GOOD_PAGE = feature_page(cantor_pair(20, 1))
NP_NAME = "np_explanations_gemma-2-2b_20-clt-hp.json"

# (file name, content, options, where, words of the reason)
MALFORMED: dict[str, tuple[str, str, dict[str, Any], str, str]] = {
    "bad json": (NP_NAME, '{"1": [{"type": "t", "text": "a"}', {}, "line 1, column 34", "invalid JSON"),
    "not an object": ("x.json", "42", {}, "", "expected a JSON object or array"),
    "unknown object": ("x.json", json.dumps({"nodes": [], "links": []}), {}, "", "unrecognised feature metadata"),
    "map text not a string": (
        NP_NAME,
        json.dumps({"450": [{"type": "t", "author": "a", "text": "ok"}, {"type": "t", "author": "a", "text": 5}]}),
        {},
        '"450"[1].text',
        "expected a string, got number",
    ),
    "map key not numeric": (NP_NAME, json.dumps({"12a": [{"text": "x"}]}), {}, '"12a"', "must be a non-negative integer"),
    "map entries not a list": (NP_NAME, json.dumps({"12": {"text": "x"}}), {}, '"12"', "expected a list of explanations"),
    "map type not a string": (NP_NAME, json.dumps({"12": [{"text": "x", "type": 3}]}), {}, '"12"[0].type', "expected a string"),
    "export index not numeric": (
        "e.json",
        json.dumps([GOOD_ROW, {**GOOD_ROW, "index": "12a"}]),
        {},
        "[1].index",
        "must be a non-negative integer, got '12a'",
    ),
    "export layer not a source id": ("e.json", json.dumps([{**GOOD_ROW, "layer": "clt-hp"}]), {}, "[0].layer", "expected like '20-clt-hp'"),
    "export layer a number": ("e.json", json.dumps([{**GOOD_ROW, "layer": 20}]), {}, "[0].layer", "expected a string, got number"),
    "export description missing": (
        "e.json",
        json.dumps([{k: v for k, v in GOOD_ROW.items() if k != "description"}]),
        {},
        "[0].description",
        "missing",
    ),
    "export row not an object": ("e.json", json.dumps([GOOD_ROW, "row"]), {}, "[1]", "expected an object, got string"),
    "jsonl bad line": ("e.jsonl", json.dumps(GOOD_ROW) + "\n{oops\n", {}, "line 2", "invalid JSON"),
    "jsonl negative index": (
        "e.json",
        "\n".join(json.dumps(r) for r in (GOOD_ROW, GOOD_ROW, {**GOOD_ROW, "index": -1})),
        {},
        "line 3.index",
        "non-negative integer, got number",
    ),
    "page act not a number": (
        "p.json",
        json.dumps(feature_page(cantor_pair(20, 1), examples_quantiles=[{"quantile_name": "q", "examples": [{"tokens": ["a"], "tokens_acts_list": ["x"]}]}])),
        {"transcoder_set": CLT_REPO},
        "examples_quantiles[0].examples[0].tokens_acts_list[0]",
        "expected a finite number, got string",
    ),
    "page acts not one per token": (
        "p.json",
        json.dumps(
            feature_page(
                cantor_pair(20, 1),
                examples_quantiles=[{"quantile_name": "q", "examples": [{"tokens": ["a", "b"], "tokens_acts_list": [1.0]}]}],
            )
        ),
        {"transcoder_set": CLT_REPO},
        "examples_quantiles[0].examples[0].tokens_acts_list",
        "has 1 activations for 2 tokens",
    ),
    "page top logits not a list": (
        "p.json",
        json.dumps({**GOOD_PAGE, "top_logits": " Texas"}),
        {"transcoder_set": CLT_REPO},
        "top_logits",
        "expected an array of strings, got string",
    ),
    "page index a float": ("p.json", json.dumps({**GOOD_PAGE, "index": 1.5}), {"transcoder_set": CLT_REPO}, "index", "non-negative integer"),
    "page without transcoder set": ("p.json", json.dumps(GOOD_PAGE), {}, "", "pass transcoder_set"),
    "page layer disagrees": ("p.json", json.dumps(GOOD_PAGE), {"transcoder_set": CLT_REPO, "layer": 3}, "index", "decodes (schema 1) to layer 20"),
    "csv without feature columns": ("l.csv", "layer,index,label\n20,1,x\n", {}, "header", "cannot tell the feature"),
    "csv without label column": ("l.csv", "feature,author\ngemma-2-2b/20-clt-hp/1,ann\n", {}, "header", "no label column"),
    "csv empty": ("l.csv", "", {}, "line 1", "empty file"),
    "csv index not numeric": (
        "l.csv",
        "model,source,index,label,author\ngemma-2-2b,20-clt-hp,1,ok,ann\ngemma-2-2b,20-clt-hp,one,x,ann\n",
        {},
        'line 3, column "index"',
        "must be a non-negative integer, got 'one'",
    ),
    "csv layer not numeric": ("l.csv", "transcoder_set,layer,index,label,author\nx/y,L2,1,x,ann\n", {}, 'line 2, column "layer"', "layer must be"),
    "csv bad feature": ("l.csv", "feature,label,author\n1234,x,ann\n", {}, 'line 2, column "feature"', "expected model/source/index"),
    "csv no author": ("l.csv", "feature,label\ngemma-2-2b/20-clt-hp/1,x\n", {}, 'line 2, column "author"', "no author"),
    "csv empty label": ("l.csv", "feature,label,author\ngemma-2-2b/20-clt-hp/1,,ann\n", {}, 'line 2, column "label"', "empty label"),
    "csv too many fields": ("l.csv", "feature,label,author\ngemma-2-2b/20-clt-hp/1,x,ann,extra\n", {}, "line 2", "4 fields"),
    "csv too few fields": ("l.csv", "feature,author,label\ngemma-2-2b/20-clt-hp/1,ann\n", {}, "line 2", "2 fields, but the header names 3 columns: no label"),
    "csv quote never closed": ("l.csv", 'feature,label,author\ngemma-2-2b/20-clt-hp/1,"opened,ann\ngemma-2-2b/20-clt-hp/2,x,ann\n', {}, "line 2", "never closed"),
    "csv text after a quote": ("l.csv", 'feature,label,author\ngemma-2-2b/20-clt-hp/1,"said"so,ann\n', {}, "line 2", "invalid CSV"),
}


def test_a_label_csv_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"feature,label,author\ngemma-2-2b/20-clt-hp/1,ok,ann\ngemma-2-2b/20-clt-hp/2,caf\xe9,ann\n")
    with pytest.raises(MetadataFormatError, match=r"line 3: not UTF-8 text \(byte 0xe9\): save the file as UTF-8"):
        read_metadata_file(path, ReadOptions())


@pytest.mark.parametrize("case", sorted(MALFORMED), ids=lambda c: c.replace(" ", "-"))
def test_malformed_file_is_named_and_located(case: str, tmp_path: Path) -> None:
    name, content, options, where, reason = MALFORMED[case]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(MetadataFormatError) as caught:
        read_metadata_file(path, ReadOptions(**options))
    error = caught.value
    assert (error.path, error.where) == (str(path), where)
    assert reason in error.reason
    assert str(error).startswith(f"{path}: ")


@pytest.mark.parametrize("case", ["bad json", "map text not a string", "export index not numeric", "page act not a number", "csv index not numeric"])
def test_malformed_file_writes_nothing(case: str, meta_kb: KB, tmp_path: Path) -> None:
    name, content, options, where, reason = MALFORMED[case]
    path = tmp_path / name
    path.write_text(content)
    report = import_feature_metadata(meta_kb, [path], **options)
    assert report.files == []
    assert [f["path"] for f in report.failed] == [str(path)]
    assert where in report.failed[0]["error"] and reason in report.failed[0]["error"]
    assert table_counts(meta_kb) == {"features": 0, "descriptions": 0, "feature_details": 0, "labels": 0}


def test_a_late_bad_record_keeps_the_whole_file_out(meta_kb: KB, tmp_path: Path) -> None:
    rows = [export_row(20, i, f"feature {i}") for i in range(200)] + [export_row(20, 200, "")]
    report = import_feature_metadata(meta_kb, [write_json(tmp_path / "e.json", rows)])
    assert report.failed[0]["error"].endswith("[200].description: empty")
    assert table_counts(meta_kb)["features"] == 0


def test_bad_files_are_reported_and_the_others_imported(meta_kb: KB, tmp_path: Path) -> None:
    shutil.copy(EXPLANATIONS, tmp_path / EXPLANATIONS.name)
    (tmp_path / "labels.csv").write_text("feature,label\ngemma-2-2b/20-clt-hp/1,x\n")
    report = import_feature_metadata(meta_kb, [tmp_path])
    assert [f["path"] for f in report.failed] == [str(tmp_path / "labels.csv")]
    assert report.descriptions_added == len(unique_explanations(EXPLANATIONS))
    assert table_counts(meta_kb)["labels"] == 0


def test_bad_options_and_paths_fail_before_anything_is_read(meta_kb: KB, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="schema must be 0"):
        import_feature_metadata(meta_kb, [EXPLANATIONS], schema=2)
    with pytest.raises(ConfigError, match="source"):
        import_feature_metadata(meta_kb, [EXPLANATIONS], source="clt-hp")
    with pytest.raises(CircuitKBError, match="no such file"):
        import_feature_metadata(meta_kb, [EXPLANATIONS, tmp_path / "missing.json"])
    assert table_counts(meta_kb)["descriptions"] == 0


def test_gzip_json_lines_are_read(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "export.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(GOOD_ROW) + "\n").encode()))
    parsed = read_metadata_file(path)
    assert parsed.format == "neuronpedia-export"
    assert [d.feature for d in parsed.descriptions] == [FeatureKey(CLT, 20, 1)]


def test_a_graph_file_is_not_mistaken_for_metadata(tmp_path: Path) -> None:
    graph = tmp_path / "graph.json"
    shutil.copy(real_graph("05"), graph)
    with pytest.raises(MetadataFormatError, match="unrecognised feature metadata"):
        read_metadata_file(graph)
