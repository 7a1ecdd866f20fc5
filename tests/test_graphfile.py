"""Reading graph files: every variant of the format, and a clear error for every bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ingest.featureid import cantor_pair, cantor_unpair, canonical_transcoder_set, decode_schema0, transcoder_set_of
from ingest.graphfile import read_graph
from ingest.records import FeatureKey
from kb.errors import GraphFormatError
from tests.builders import error_node, feature_node, small_graph, write
from tests.conftest import REAL_GRAPH_PREFIXES, real_graph


def raw_feature_keys(path: Path) -> set[tuple[int, int]]:
    """(layer, index) of every feature node, read straight from the JSON via its node_id."""
    doc = json.loads(path.read_text())
    out = set()
    for n in doc["nodes"]:
        if n["feature_type"] == "cross layer transcoder":
            layer, index, _pos = n["node_id"].split("_")
            out.add((int(layer), int(index)))
    return out


@pytest.mark.parametrize("prefix", REAL_GRAPH_PREFIXES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_real_graph_parses_with_its_counts(prefix: str, stream: bool) -> None:
    path = real_graph(prefix)
    doc = json.loads(path.read_text())
    graph = read_graph(path, stream=stream)
    assert len(graph.nodes) == len(doc["nodes"])
    assert graph.n_links == len(doc["links"])
    assert {(k.layer, k.index) for k in graph.features()} == raw_feature_keys(path)
    assert graph.header.qparams == doc["qParams"]
    assert [n.clerp for n in graph.nodes] == [n["clerp"] for n in doc["nodes"]]
    assert graph.warnings == []


def test_english_and_french_share_76_of_346_features() -> None:
    en = read_graph(real_graph("02")).features()
    fr = read_graph(real_graph("03")).features()
    assert len(en & fr) == 76
    assert len(en | fr) == 346


def test_transcoder_sets_are_canonical() -> None:
    assert read_graph(real_graph("01")).header.transcoder_set == "gemma-2-2b/gemmascope-transcoder-16k"
    # 05 names both the repository and Neuronpedia's source set; 02 only the repository
    assert read_graph(real_graph("05")).header.transcoder_set == "gemma-2-2b/clt-hp"
    assert read_graph(real_graph("02")).header.transcoder_set == "gemma-2-2b/clt-hp"
    assert canonical_transcoder_set("clt-hp", "gemma-2-2b") == "gemma-2-2b/clt-hp"
    assert transcoder_set_of({"scan": "my-model", "transcoder_list": ["org/tc/layer_0.safetensors", "org/tc/layer_1.safetensors"]}) == "org/tc/layer"


def test_feature_encodings() -> None:
    for layer, index in [(0, 0), (0, 5), (3, 0), (20, 1234), (25, 2_500_000 // 26)]:
        assert cantor_unpair(cantor_pair(layer, index)) == (layer, index)
    assert decode_schema0(20 * 100_000 + 1234, 20) == 1234
    assert decode_schema0(354, 0) == 354
    assert decode_schema0(25 * 100_000 + 7, 25) == 7
    with pytest.raises(ValueError):
        decode_schema0(1234, 20)


def test_schema0_graph_decodes_layer_times_power_of_ten() -> None:
    graph = read_graph(real_graph("01"))
    node = next(n for n in graph.nodes if n.node_id == "23_8683_8")
    assert node.feature_key == FeatureKey("gemma-2-2b/gemmascope-transcoder-16k", 23, 8683)


def test_converter_variant_ids(tmp_path: Path) -> None:
    doc = small_graph()
    doc["metadata"].pop("schema_version")
    for n in doc["nodes"]:
        if n["feature_type"] == "cross layer transcoder":
            layer, index, pos = n["node_id"].split("_")
            old = n["node_id"]
            n["node_id"] = f"{layer}_cro_{index}_{pos}"
            n["feature"] = int(index)
            for link in doc["links"]:
                for end in ("source", "target"):
                    if link[end] == old:
                        link[end] = n["node_id"]
        if n["feature_type"] == "embedding":
            n["feature"] = None
    graph = read_graph(write(tmp_path / "conv.json", doc))
    assert FeatureKey("gemma-2-2b/clt-hp", 12, 300) in graph.features()


def test_gzip_is_read_whatever_its_name(tmp_path: Path) -> None:
    graph = read_graph(write(tmp_path / "g.json.gz", small_graph(), compress=True))
    assert len(graph.nodes) == 9


def test_unknown_fields_are_kept(tmp_path: Path) -> None:
    doc = small_graph()
    doc["viewer_state"] = ["x"]
    doc["nodes"][3]["steering"] = {"pairs": [1, 2]}
    doc["links"][0]["note"] = "hand-checked"
    for stream in (False, True):
        graph = read_graph(write(tmp_path / "g.json", doc), stream=stream)
        assert graph.header.extra == {"viewer_state": ["x"]}
        assert graph.nodes[3].extra["steering"] == {"pairs": [1, 2]}
        assert graph.link_extra == {0: {"note": "hand-checked"}}


def test_colliding_node_ids_stay_distinct_and_doubtful_links_are_set_aside(tmp_path: Path) -> None:
    doc = small_graph()
    # error node at layer 2, position 1 and feature 2 of layer 0 at position 1 share "0_2_1"
    doc["nodes"].append(error_node(2, 1))
    doc["nodes"].append(feature_node(0, 2, 1))
    doc["links"].append({"source": "0_2_1", "target": "1_100_1", "weight": 0.3})  # only layer 0 can feed layer 1
    doc["links"].append({"source": "0_2_1", "target": "12_300_2", "weight": 0.2})  # either could: ambiguous
    graph = read_graph(write(tmp_path / "g.json", doc))
    ids = [n.node_id for n in graph.nodes]
    assert ids.count("0_2_1") == 2
    assert graph.n_links == len(doc["links"]) - 1
    resolved_src = graph.nodes[int(graph.link_src[-1])]
    assert resolved_src.kind == "feature" and resolved_src.layer_num == 0
    assert [a["link"] for a in graph.ambiguous_links] == [doc["links"][-1]]
    assert any("cannot be resolved without doubt" in w for w in graph.warnings)


def test_unusual_but_valid_input(tmp_path: Path) -> None:
    doc = small_graph(prompt="<bos>" + "très long prompt 🙂 " * 2000)
    doc["metadata"]["prompt_tokens"] = ["<bos>", "日本語", "🙂", ""]
    for n in doc["nodes"]:
        n["clerp"] = ""
    graph = read_graph(write(tmp_path / "g.json", doc))
    assert graph.header.prompt_tokens[1] == "日本語"


def _bad(tmp_path: Path, doc_or_text, stream: bool = False) -> GraphFormatError:  # noqa: ANN001
    path = tmp_path / "bad.json"
    if isinstance(doc_or_text, str):
        path.write_text(doc_or_text)
    else:
        write(path, doc_or_text)
    with pytest.raises(GraphFormatError) as info:
        read_graph(path, stream=stream)
    assert str(path) in str(info.value)
    return info.value


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_numbers_a_float_cannot_hold_are_named_errors(tmp_path: Path, stream: bool) -> None:
    """JSON has no NaN or Infinity, but Python's reader (and some writers) take them; stored, they
    broke the write of the whole batch, or came back in exports no strict parser reads."""
    for value, said in ((float("nan"), "NaN"), (float("inf"), "Infinity"), (-float("inf"), "-Infinity"), (10**400, "too large")):
        for where, put in (("links[2].weight", lambda d, v: d["links"][2].update(weight=v)), ("nodes[3].activation", lambda d, v: d["nodes"][3].update(activation=v))):
            doc = small_graph()
            put(doc, value)
            err = _bad(tmp_path, doc, stream)
            assert err.where.startswith(where.split(".")[0]), (where, err)
            if not stream:  # the streaming parser refuses NaN, Infinity and huge numbers as JSON itself
                assert err.where == where and said in err.reason and "finite number" in err.reason, err
    deep = small_graph()
    deep["metadata"]["info"] = {"deep": "__DEEP__"}
    text = json.dumps(deep).replace('"__DEEP__"', "[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in _bad(tmp_path, text).reason
    latin1 = json.dumps(small_graph()).encode().replace(b'"metadata": {', b'"metadata": {"note": "caf\xe9", ', 1)
    (tmp_path / "latin1.json").write_bytes(latin1)
    with pytest.raises(GraphFormatError, match=r"line 1: not UTF-8 text \(byte 0xe9\)"):
        read_graph(tmp_path / "latin1.json")
    (tmp_path / "plain.json.gz").write_text("not gzip at all {{{")
    with pytest.raises(GraphFormatError, match="invalid JSON: .*; the file is not gzip-compressed, though its name ends .gz"):
        read_graph(tmp_path / "plain.json.gz")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_bad_inputs_get_clear_errors(tmp_path: Path, stream: bool) -> None:
    text = json.dumps(small_graph())
    assert "invalid JSON" in str(_bad(tmp_path, text[: len(text) // 2], stream))

    doc = small_graph()
    doc["links"][5]["target"] = "12_77_3"
    err = _bad(tmp_path, doc, stream)
    assert err.where == "links[5].target" and "no node '12_77_3'" in err.reason

    doc = small_graph()
    doc["nodes"][4]["ctx_idx"] = "two"
    assert _bad(tmp_path, doc, stream).where == "nodes[4].ctx_idx"

    doc = small_graph()
    doc["links"][2]["weight"] = "heavy"
    assert _bad(tmp_path, doc, stream).where == "links[2].weight"

    doc = small_graph()
    doc["nodes"].append(copy.deepcopy(doc["nodes"][3]))
    err = _bad(tmp_path, doc, stream)
    assert err.where == "nodes[9]" and "the same node twice" in err.reason

    doc = small_graph()
    doc["nodes"][3]["feature"] = 10**20
    err = _bad(tmp_path, doc, stream)
    # the streaming parser stops at the number itself, so it can name the node but not the field
    assert err.where.startswith("nodes[3]") and "64 bits" in err.reason

    doc = small_graph()
    doc["nodes"] = []
    doc["links"] = []
    assert "no nodes" in _bad(tmp_path, doc, stream).reason

    assert "not a graph file" in _bad(tmp_path, json.dumps({"hello": "world"}), stream).reason
    assert "not a graph file" in _bad(tmp_path, json.dumps([1, 2, 3]), stream).reason

    doc = small_graph()
    del doc["metadata"]["slug"]
    assert _bad(tmp_path, doc, stream).where == "metadata.slug"
    doc["metadata"]["slug"] = 42
    assert "expected a string, got number 42" in _bad(tmp_path, doc, stream).reason
    doc["metadata"]["slug"] = "two\nlines"
    assert "control character" in _bad(tmp_path, doc, stream).reason

    doc = small_graph()
    feature_at = next(i for i, n in enumerate(doc["nodes"]) if n["feature_type"] == "cross layer transcoder")
    doc["nodes"][feature_at]["feature"] = -7
    err = _bad(tmp_path, doc, stream)
    assert err.where == f"nodes[{feature_at}].feature" and "a feature id of 0 or more, got -7" in err.reason

    doc = small_graph()
    doc["nodes"][5]["feature"] = cantor_pair(7, 300)  # the node says layer 12
    assert _bad(tmp_path, doc, stream).where == "nodes[5].feature"
