"""The Streamlit app, page by page, with Streamlit's AppTest: every page renders its content
without an exception, every address opens the view it names, failures read as messages, and
text people wrote stays text. Each test points CIRCUITKB_HOME at a temporary folder."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from streamlit.testing.v1 import AppTest

from app.nav import NAMES
from ingest.records import FeatureKey
from kb.analysis.graphview import graph_view
from kb.analysis.scores import graph_scores
from kb.api import KB
from kb.config import Config
from kb import labels as labels_api
from kb.featuremeta import add_label
from kb.labels import accounts
from kb.selection import Selection
from tests.builders import small_graph, write
from tests.conftest import GRAPHS, KB_VARIANTS, need_real_data, real_graph

# every test renders pages of a knowledge base of real graphs: a minute and a half in all
pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)>"
FAMILY = "opposite"
SAVED_SET = "the opposite pair"


def _run_page(page: str) -> None:
    import streamlit as st

    from app.nav import all_pages

    st.navigation(all_pages(default=page)).run()


def open_page(page: str, **params: str) -> AppTest:
    """Page ``page`` opened at its address with ``params``, as a fresh browser tab would."""
    app = AppTest.from_function(_run_page, args=(page,), default_timeout=300)
    for name, value in params.items():
        app.query_params[name] = value
    app.run()
    return app


def problems(app: AppTest) -> list[str]:
    return [str(e.value) for e in app.exception] + [e.value for e in app.error]


def frame_with(app: AppTest, *columns: str) -> Any:
    """The first table of the page that has all ``columns``."""
    for frame in app.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    raise AssertionError(f"no table with columns {columns}")


def shown(markdown: str) -> str:
    """Markdown source as the page shows it (its escapes removed)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def link_labels(app: AppTest) -> list[str]:
    """The labels of the page's links, as shown (their Markdown escapes removed)."""
    return [shown(link.label) for link in app.get("page_link")]


def texts(app: AppTest) -> list[str]:
    return [t.value for t in app.text]


def drawings(app: AppTest) -> list[dict[str, Any]]:
    """The scenes the page drew (app.plot), read as the browser reads them: strict JSON, no NaN."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"a scene holds {constant}, which the browser cannot read")

    return [json.loads(e.proto.json, parse_constant=refuse) for e in app.get("bidi_component") if e.proto.component_name == "circuitkb_plot"]


def slug_of(prefix: str) -> str:
    return json.loads(real_graph(prefix).read_text())["metadata"]["slug"]


def _manifest(folder: Path) -> Path:
    path = folder / "manifest.csv"
    path.write_text(f"slug,family,language\n{slug_of('02')},{FAMILY},en\n{slug_of('03')},{FAMILY},fr\n", encoding="utf-8")
    return path


def _labelled_node(kb: KB, slug: str) -> tuple[FeatureKey, str]:
    """A feature of graph ``slug`` (its most influential feature node) and that node's id."""
    from kb.analysis.graphview import graph_view

    nodes = graph_view(kb, slug, top=20).nodes
    row = nodes[nodes["kind"] == "feature"].sort_values("influence").iloc[0]
    transcoder_set, layer, index = row["feature"].rsplit("/", 2)
    return FeatureKey(transcoder_set, int(layer.lstrip("L")), int(index)), row["node_id"]


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point the app at ``home``, without the SQL database or Neo4j of the environment."""
    monkeypatch.setenv("CIRCUITKB_HOME", str(home))
    for name in ("CIRCUITKB_SQL_URL", "CIRCUITKB_NEO4J_URI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def real_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A KB in a temporary home with the real graphs (02 and 03 one family in two languages)
    and a hostile label on a feature of graph 02."""
    need_real_data()
    home = tmp_path_factory.mktemp("home")
    with KB.open(Config.load(home=home, env={})) as kb:
        report = kb.ingest([GRAPHS], manifest=_manifest(home))
        assert not report.failed, report.failed
        key, node = _labelled_node(kb, slug_of("02"))
        add_label(kb, key, HOSTILE, "mallory")
        kb.save_set(SAVED_SET, Selection(family=FAMILY))
    return {"home": home, "feature": key, "node": node}


@pytest.fixture
def real(real_home: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    use_home(monkeypatch, real_home["home"])
    return real_home


def feature_address(key: FeatureKey) -> str:
    return f"{key.transcoder_set}/{key.layer}/{key.index}"


# --- every page ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page_name", [n for n in NAMES if n != "search"])
def test_every_page_renders_on_the_real_graphs(real: dict[str, Any], page_name: str) -> None:
    app = open_page(page_name)
    assert not problems(app), problems(app)
    assert app.header or app.title


@pytest.mark.parametrize("sql, store", KB_VARIANTS, ids=[f"{s}-{g}" for s, g in KB_VARIANTS])
def test_each_page_shows_its_content_on_every_store(sql: str, store: str, kb_env: Callable[[str, str], dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = kb_env(sql, store)
    for name in ("CIRCUITKB_SQL_URL", "CIRCUITKB_NEO4J_URI", "CIRCUITKB_NEO4J_USER", "CIRCUITKB_NEO4J_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with KB.open(Config.load(env=env)) as kb:
        report = kb.ingest([real_graph("02"), real_graph("03"), real_graph("06")], manifest=_manifest(tmp_path))
        assert len(report.ingested) == 3, report.as_dict()
        key, node = _labelled_node(kb, slug_of("02"))
    graph = open_page("graph", g=slug_of("02"), node=node)
    assert not problems(graph), problems(graph)
    assert len(drawings(graph)) == 1 and len(graph.dataframe) >= 2  # drawing, inputs, outputs
    compare = open_page("compare", a=slug_of("02"), b=slug_of("03"))
    assert not problems(compare) and len(drawings(compare)) == 2
    feature = open_page("feature", f=feature_address(key))
    assert not problems(feature) and feature.get("page_link")
    languages = open_page("languages", family=FAMILY)
    assert not problems(languages) and drawings(languages)
    across = open_page("across", family=FAMILY)
    assert not problems(across) and len(across.dataframe[0].value) > 0


# --- addresses -------------------------------------------------------------------------------------


def test_graph_address_opens_the_graph_with_that_node_selected(real: dict[str, Any]) -> None:
    slug = slug_of("02")
    app = open_page("graph", g=slug, node=real["node"], top="50")
    assert not problems(app), problems(app)
    assert app.selectbox(key="graph-g").value == slug
    assert app.selectbox(key="graph-node").value == real["node"]
    assert app.number_input(key="graph-top").value == 50
    assert dict(app.query_params) == {"g": slug, "node": real["node"], "top": "50"}
    inputs = app.dataframe[0].value
    assert {"node_id", "share"} <= set(inputs.columns) and len(inputs) > 0
    assert (inputs["share"].abs() <= 1.0).all()
    assert any(label.startswith("Feature page") for label in link_labels(app))


def test_graph_scores_are_computed_when_their_expander_opens(real: dict[str, Any]) -> None:
    app = open_page("graph", g=slug_of("02"))
    assert not problems(app) and not app.metric  # closed: not computed
    app.session_state["graph-scores-open"] = True
    app.run()
    assert not problems(app), problems(app)
    with KB.open(Config.load(home=real["home"], env={})) as kb:
        scores = graph_scores(kb, slug_of("02"))
    assert {m.label: m.value for m in app.metric} == {"replacement score": f"{scores.replacement:.4f}", "completeness score": f"{scores.completeness:.4f}"}


def test_choosing_a_node_writes_it_to_the_address(real: dict[str, Any]) -> None:
    slug = slug_of("02")
    app = open_page("graph", g=slug)
    options = app.selectbox(key="graph-node").options
    chosen = options[2]
    app.selectbox(key="graph-node").set_value(chosen).run()
    assert not problems(app), problems(app)
    assert app.query_params["node"] == [chosen] or app.query_params["node"] == chosen
    app.selectbox(key="graph-g").set_value(slug_of("03")).run()
    assert not problems(app)
    assert "node" not in app.query_params and app.query_params["g"] in (slug_of("03"), [slug_of("03")])


def test_expanded_neighbourhoods_and_a_chosen_link_are_in_the_address(real: dict[str, Any]) -> None:
    slug = slug_of("02")
    app = open_page("graph", g=slug, top="30")
    options = app.selectbox(key="graph-node").options
    first, second = options[1], options[2]
    app.selectbox(key="graph-node").set_value(first).run()
    app.selectbox(key="graph-node").set_value(second).run()
    assert not problems(app), problems(app)
    params = {k: app.query_params[k] for k in app.query_params}
    assert params["node"] in (second, [second]) and params["x"] in (first, [first])
    drawn = [c.value for c in app.caption if " nodes and " in c.value]

    # the same address in a fresh tab draws the same piece, with both neighbourhoods
    again = open_page("graph", g=slug, top="30", node=second, x=first)
    assert not problems(again), problems(again)
    assert tuple(again.session_state["graph-x"]) == (first, second)
    assert [c.value for c in again.caption if " nodes and " in c.value] == drawn

    # a link of the drawing, chosen by its ends
    with KB.open(Config.load(env={"CIRCUITKB_HOME": str(real["home"])})) as kb:
        view = graph_view(kb, slug, top=30, expand=(first, second), edge_threshold=0.02)
    ids = dict(zip(view.nodes["idx"], view.nodes["node_id"]))
    strongest = view.links.iloc[view.links["share"].abs().argmax()]
    src, tgt = ids[int(strongest["src"])], ids[int(strongest["tgt"])]
    chosen = open_page("graph", g=slug, top="30", node=second, x=first, link=f"{src},{tgt}")
    assert not problems(chosen), problems(chosen)
    assert f"{src} → {tgt}" in texts(chosen)
    assert any(t.startswith("weight ") and f"of {tgt}'s total input" in t for t in texts(chosen))
    chosen.button(key="graph-link-tgt").click().run()
    assert not problems(chosen), problems(chosen)
    assert chosen.selectbox(key="graph-node").value == tgt and "link" not in chosen.query_params


def test_an_unknown_expanded_node_or_a_bad_link_is_a_message(real: dict[str, Any]) -> None:
    slug = slug_of("02")
    app = open_page("graph", g=slug, x="no_such_node")
    assert not app.exception
    assert any("has no node no_such_node" in shown(w.value) for w in app.warning)
    assert "x" not in app.query_params and len(drawings(app)) == 1
    mixed = open_page("graph", g=slug, x=f"{real['node']},no_such_node")
    assert not problems(mixed) and tuple(mixed.session_state["graph-x"]) == (real["node"],)
    assert mixed.query_params["x"] in (real["node"], [real["node"]])
    bad = open_page("graph", g=slug, link="only-one-end")
    assert not bad.exception
    assert any("two node ids separated by a comma" in w.value for w in bad.warning)


def test_supernodes_are_boxes_and_every_node_and_link_can_be_picked_in_the_drawing(real: dict[str, Any]) -> None:
    slug = slug_of("01")  # its file has 5 supernodes
    app = open_page("graph", g=slug, saved="1")
    assert not problems(app), problems(app)
    scene = drawings(app)[0]
    qparams = json.loads(real_graph("01").read_text())["qParams"]
    names = {group[0] for group in qparams["supernodes"]}
    boxes = [layer for layer in scene["layers"] if layer["kind"] == "boxes"]
    assert len(boxes) == 1 and set(boxes[0]["labels"]) == names and len(boxes[0]["boxes"]) == len(names)
    lines = [layer for layer in scene["layers"] if layer["kind"] == "lines"]
    markers = [layer for layer in scene["layers"] if layer["kind"] == "markers"]
    assert lines and markers
    for layer in lines:
        assert len(layer["segments"]) == len(layer["picks"]) == len(layer["tips"]) > 0
        assert all(len(p["link"]) == 2 and " → ".join(p["link"]) in tip for p, tip in zip(layer["picks"], layer["tips"]))
    drawn = {n for layer in markers for n in layer["names"]}
    assert {p["node"] for layer in markers for p in layer["picks"]} == drawn
    assert {end for layer in lines for p in layer["picks"] for end in p["link"]} <= drawn
    tokens = json.loads(real_graph("01").read_text())["metadata"]["prompt_tokens"]
    assert [label for _, label in scene["x"]["ticks"]][: len(tokens)] == tokens


def test_search_address_shows_hits_that_link_to_feature_pages(real: dict[str, Any]) -> None:
    app = open_page("search", q="capital")
    assert not problems(app), problems(app)
    assert app.text_input(key="search-q").value == "capital"
    links = app.get("page_link")
    assert len(links) >= 5
    assert all(l.proto.page.endswith("feature") or "feature" in str(l.proto) for l in links)


def test_features_like_this_opens_the_search_by_example(real: dict[str, Any]) -> None:
    from urllib.parse import parse_qs

    from kb.featureref import format_feature_ref

    key = real["feature"]
    app = open_page("feature", f=feature_address(key))
    button = [link for link in app.get("page_link") if shown(link.label) == "Features like this"]
    assert len(button) == 1 and button[0].proto.page.endswith("search")
    assert parse_qs(button[0].proto.query_string) == {"like": [feature_address(key)]}
    app = open_page("search", like=feature_address(key))
    assert not problems(app), problems(app)
    assert app.text_input(key="search-like").value == feature_address(key) and app.query_params["like"] in (feature_address(key), [feature_address(key)])
    labels = link_labels(app)
    assert labels[0] == format_feature_ref(key) and labels.count(format_feature_ref(key)) == 1 and len(labels) >= 6  # the example, then hits
    together = open_page("search", like=feature_address(key), together="1")
    assert not problems(together) and together.checkbox(key="search-together").value is True
    assert len(link_labels(together)) >= 2
    bad = open_page("search", like="not a feature")
    assert not problems(bad) and bad.warning and not bad.get("page_link")


def test_feature_address_shows_descriptions_labels_and_graphs(real: dict[str, Any]) -> None:
    key = real["feature"]
    app = open_page("feature", f=feature_address(key))
    assert not problems(app), problems(app)
    assert shown(app.subheader[0].value) == f"{key.transcoder_set}/L{key.layer}/{key.index}"
    assert HOSTILE in texts(app)
    graph_links = [label for label in link_labels(app) if slug_of("02") in label]
    assert graph_links
    assert any(b.proto.url.startswith("https://www.neuronpedia.org/gemma-2-2b/") for b in app.get("link_button"))
    # the graphs ranked by influence are the second tab, computed and sent when it is open
    by_activation = [c.value for c in app.caption if " by activation" in c.value]
    assert by_activation and not any(" by influence" in c.value for c in app.caption) and "rank" not in app.query_params
    ranked = open_page("feature", f=feature_address(key), rank="influence")
    assert not problems(ranked), problems(ranked)
    assert any(" by influence" in c.value for c in ranked.caption) and not any(" by activation" in c.value for c in ranked.caption)
    assert [label for label in link_labels(ranked) if slug_of("02") in label] and ranked.query_params["rank"] in ("influence", ["influence"])


def test_compare_and_across_addresses(real: dict[str, Any]) -> None:
    app = open_page("compare", a=slug_of("02"), b=slug_of("03"))
    assert not problems(app), problems(app)
    assert (app.session_state["compare-a"], app.session_state["compare-b"]) == (slug_of("02"), slug_of("03"))
    assert any(slug_of("02") in shown(m.value) and slug_of("03") in shown(m.value) for m in app.markdown)
    assert not app.selectbox  # the pickers are made when "Choose the graphs" is opened
    app.session_state["compare-pick"] = True
    app.run()
    assert (app.selectbox(key="compare-a").value, app.selectbox(key="compare-b").value) == (slug_of("02"), slug_of("03"))
    app.selectbox(key="compare-b").set_value(slug_of("04")).run()
    assert not problems(app), problems(app)
    assert app.query_params["b"] in (slug_of("04"), [slug_of("04")]) and app.query_params["a"] in (slug_of("02"), [slug_of("02")])
    app.session_state["compare-pick"] = False
    app.run()
    assert not app.selectbox and app.session_state["compare-b"] == slug_of("04") and app.query_params["b"] in (slug_of("04"), [slug_of("04")])
    app = open_page("compare", a=slug_of("02"), b=slug_of("03"))
    only = frame_with(app, "in", "key", "clerp_a")
    assert {"both", "only A", "only B"} <= set(only["in"])
    assert len(app.dataframe) == 1 and "show" not in app.query_params  # the other tabs are sent when opened
    edges = open_page("compare", a=slug_of("02"), b=slug_of("03"), show="edges")
    assert not problems(edges), problems(edges)
    assert len(edges.dataframe) == 1 and "clerp_a" not in edges.dataframe[0].value.columns and len(edges.dataframe[0].value) > 100
    assert edges.query_params["show"] in ("edges", ["edges"])
    boxes = open_page("compare", a=slug_of("02"), b=slug_of("03"), show="supernodes")
    assert not boxes.dataframe and any("supernodes" in i.value for i in boxes.info)
    many = open_page("compare", family=FAMILY)
    assert not problems(many), problems(many)
    assert many.radio(key="compare-view").value == "Many graphs" and drawings(many)
    across = open_page("across", family=FAMILY)
    assert not problems(across), problems(across)
    assert across.session_state["across-family"] == FAMILY and not across.selectbox  # the filter's widgets: made when opened
    assert any(m.value == f"Graphs: family **{FAMILY}**" for m in across.markdown)
    shared = across.dataframe[0].value
    assert len(shared) > 0 and shared["open"].str.startswith("./feature?f=").all()
    # only the open tab is computed and sent; the address names it
    assert len(across.dataframe) == 1 and "show" not in across.query_params
    edges = open_page("across", family=FAMILY, show="edges")
    assert not problems(edges), problems(edges)
    assert len(edges.dataframe) == 1 and {"src_open", "tgt_open"} <= set(edges.dataframe[0].value.columns)
    assert edges.query_params["show"] in ("edges", ["edges"])
    core = open_page("across", family=FAMILY, show="core")
    assert [len(d.value.columns) > 0 for d in core.dataframe] == [True, True] and core.query_params["show"] in ("core", ["core"])
    odd = open_page("across", family=FAMILY, show="nothing")
    assert not problems(odd) and any("show='nothing'" in w.value for w in odd.warning)
    assert len(odd.dataframe) == 1 and "show" not in odd.query_params


def test_languages_address_draws_the_overlap_of_the_family(real: dict[str, Any]) -> None:
    app = open_page("languages", family=FAMILY)
    assert not problems(app), problems(app)
    scene = drawings(app)[0]
    names = [layer["name"] for layer in scene["layers"]]
    assert any("same prompt" in n for n in names)
    # the baseline is drawn where unrelated prompts of the two languages exist, and said missing where not
    assert any("baseline" in n for n in names) or any("No baseline yet" in i.value for i in app.info)
    curves = [layer for layer in scene["layers"] if layer["kind"] == "polyline"]
    assert all(0 <= y <= 1 for layer in curves for y in layer["y"]) and all(len(layer["x"]) == len(layer["y"]) > 0 for layer in curves)
    assert frame_with(app, "en-fr", "en-fr baseline").shape[0] > 0
    # the shared and language-specific features are the second tab, sent only when it is open
    assert not any("class" in d.value.columns for d in app.dataframe) and "show" not in app.query_params
    features = open_page("languages", family=FAMILY, show="features")
    assert not problems(features), problems(features)
    assert frame_with(features, "class", "languages").shape[0] > 0 and features.query_params["show"] in ("features", ["features"])
    assert [layer["name"] for layer in drawings(features)[0]["layers"]] and not any("same prompt" in layer["name"] for d in drawings(features) for layer in d["layers"])


def test_graphs_labels_and_ingest_addresses(real: dict[str, Any]) -> None:
    graphs = open_page("graphs", language="fr")
    assert not problems(graphs)
    assert list(graphs.dataframe[0].value["slug"]) == [slug_of("03")]
    # the filter's widgets are made when "Choose graphs" is opened, with the address's values; a
    # change there filters the page and goes to the address, and stays when the filter is closed
    assert not graphs.selectbox and any(m.value == "Graphs: language **fr**" for m in graphs.markdown)
    graphs.session_state["graphs-filter"] = True
    graphs.run()
    assert graphs.selectbox(key="graphs-language").value == "fr" and graphs.selectbox(key="graphs-family").value == ""
    graphs.selectbox(key="graphs-language").set_value("en").run()
    graphs.selectbox(key="graphs-family").set_value(FAMILY).run()
    assert not problems(graphs), problems(graphs)
    assert list(graphs.dataframe[0].value["slug"]) == [slug_of("02")]
    assert dict(graphs.query_params) in ({"language": "en", "family": FAMILY}, {"language": ["en"], "family": [FAMILY]})
    graphs.session_state["graphs-filter"] = False
    graphs.run()
    assert not graphs.selectbox and list(graphs.dataframe[0].value["slug"]) == [slug_of("02")]
    assert any(m.value == f"Graphs: family **{FAMILY}** · language **en**" for m in graphs.markdown)
    graphs.session_state["graphs-download-open"] = True  # "Download a graph as JSON"
    graphs.run()
    assert graphs.selectbox(key="graphs-export").options == [slug_of("02")]
    graphs.button(key="graphs-prepare").click().run()
    assert not problems(graphs) and [b.proto.label for b in graphs.get("download_button")] == ["Download"]
    labels = open_page("labels")
    assert not problems(labels)
    assert HOSTILE in list(labels.dataframe[0].value["text"])
    ingest = open_page("ingest")
    assert not problems(ingest) and ingest.header[0].value == "Ingest"


def test_a_saved_set_is_chosen_from_the_filter_and_an_unknown_one_is_a_message(real: dict[str, Any]) -> None:
    graphs = open_page("graphs", set=SAVED_SET)
    assert not problems(graphs), problems(graphs)
    assert list(graphs.dataframe[0].value["slug"]) == sorted([slug_of("02"), slug_of("03")])
    assert any(m.value == f"Graphs: saved set **{SAVED_SET}**" for m in graphs.markdown)
    graphs.session_state["graphs-filter"] = True
    graphs.run()
    chooser = graphs.selectbox(key="graphs-set")
    assert chooser.options == ["(none)", SAVED_SET] and chooser.value == SAVED_SET
    chooser.set_value("").run()
    assert len(graphs.dataframe[0].value) == 9 and "set" not in graphs.query_params
    unknown = open_page("graphs", set="no such set")
    said = " ".join(shown(w.value) for w in unknown.warning)
    assert not problems(unknown) and "set='no such set'" in said and 'choose one under "Choose graphs"' in said
    assert len(unknown.dataframe[0].value) == 9


def test_a_labeller_saves_the_graphs_shown_as_a_set_and_a_viewer_is_not_offered_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    use_home(monkeypatch, home)
    files = [write(tmp_path / f"{slug}.json", small_graph(slug, f"<bos>prompt {slug}")) for slug in ("g1", "g2", "g3")]
    with KB.open(Config.load(home=home, env={})) as kb:
        assert not kb.ingest(files).failed
    graphs = open_page("graphs")
    graphs.session_state["graphs-filter"] = True
    graphs.run()
    assert any("No saved set of graphs yet" in c.value for c in graphs.caption) and "graphs-set" not in [b.key for b in graphs.selectbox]
    graphs.session_state["graphs-save-open"] = True  # "Save these 3 graphs as a set"
    graphs.run()
    graphs.text_input(key="graphs-set-name").set_value("two\nlines")
    graphs.button(key="graphs-save").click().run()
    assert any("control characters" in t.value for t in graphs.text)  # the kb's words, as plain text
    graphs.text_input(key="graphs-set-name").set_value("first three")
    graphs.button(key="graphs-save").click().run()
    assert not problems(graphs) and any("Saved 3 graphs as a set" in m.value for m in graphs.success)
    with KB.open(Config.load(home=home, env={})) as kb:
        assert [g.slug for g in kb.select(Selection(saved_set="first three"))] == ["g1", "g2", "g3"]
        accounts.add_user(kb, accounts.local_actor(), "ada", "ada-secret-pw", "admin")
        ada = accounts.authenticate(kb, "ada", "ada-secret-pw")
        labels_api.set_setting(kb, ada, "anonymous_read", "yes")
    anonymous = open_page("graphs", set="first three")
    assert not problems(anonymous) and len(anonymous.dataframe[0].value) == 3
    anonymous.session_state["graphs-save-open"] = True
    anonymous.run()
    inputs = [t.key for t in anonymous.text_input]
    assert "graphs-set-name" not in inputs and "labelling-sign-in-name" in inputs  # the sign-in form, no saving


# --- failures as messages ------------------------------------------------------------------------------


def test_malformed_and_unknown_parameters_are_messages(real: dict[str, Any]) -> None:
    app = open_page("graph", g="no-such-graph", top="many")
    assert not problems(app), problems(app)
    warnings = " ".join(shown(w.value) for w in app.warning)
    assert "g='no-such-graph'" in warnings and "top='many'" in warnings
    crafted = open_page("graph", g="[x](http://example.invalid)")
    assert any(r"\[x\]\(http" in w.value for w in crafted.warning)  # an address's text is never Markdown
    node = open_page("graph", g=slug_of("02"), node="99_99_99")
    assert not problems(node) and any("has no node" in w.value for w in node.warning)
    feature = open_page("feature", f="not a feature")
    assert not problems(feature) and feature.warning
    unknown = open_page("feature", f="gemma-2-2b/clt-hp/3/999999")
    assert not problems(unknown) and any("knows nothing about" in w.value for w in unknown.warning)
    # a feature's transcoder set is any text: one written as a link or an image stays text
    for crafted_set in ("[Sign in again](http://example.invalid/p)", "![](http://example.invalid/x.png)"):
        page = open_page("feature", f=f"{crafted_set}/3/999")
        said = [w.value for w in page.warning if "knows nothing about" in w.value]
        assert not problems(page) and said and all(r"\]\(http" in w for w in said), said
    like = open_page("search", like="[x](http://example.invalid)/3/999")
    assert not problems(like) and like.info and all("](http" not in i.value for i in like.info)
    languages = open_page("languages", family="no-such-family")
    assert not problems(languages) and languages.warning
    # a warning says where the page offers the choices: the graph filter, the compared pair and
    # the tabs are made when opened, not listed below
    assert any('choose one under "Choose graphs"' in shown(w.value) for w in languages.warning)
    pair = open_page("compare", a="no-such-graph", b=slug_of("03"), show="nothing")
    said = " ".join(shown(w.value) for w in pair.warning)
    assert not problems(pair) and 'choose one under "Choose the graphs"' in said and "choose one among the tabs" in said


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    use_home(monkeypatch, tmp_path / "empty")
    yield tmp_path


@pytest.mark.parametrize("page_name", ["home", "graphs", "search", "feature", "graph", "compare", "across", "languages"])
def test_an_empty_knowledge_base_says_how_to_add_data(empty_home: Path, page_name: str) -> None:
    app = open_page(page_name)
    assert not problems(app), problems(app)
    assert any("empty" in i.value for i in app.info)
    assert "Ingest graph files" in link_labels(app)


def test_an_unreachable_server_is_a_message_and_its_address_only_in_the_log(
    empty_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CIRCUITKB_NEO4J_URI", "bolt://127.0.0.1:9")
    monkeypatch.setenv("CIRCUITKB_NEO4J_PASSWORD", "x")
    with caplog.at_level(logging.ERROR, logger="app.state"):
        app = open_page("graphs")
    assert not app.exception
    assert any("cannot be reached" in e.value for e in app.error)
    shown = " ".join(e.value for e in [*app.error, *app.text, *app.markdown, *app.info])
    assert "127.0.0.1:9" not in shown
    assert "bolt://127.0.0.1:9" in caplog.text


# --- user text stays text ------------------------------------------------------------------------------


def test_a_hostile_label_is_text_on_the_feature_and_graph_pages(real: dict[str, Any]) -> None:
    feature = open_page("feature", f=feature_address(real["feature"]))
    graph = open_page("graph", g=slug_of("02"), node=real["node"])
    assert HOSTILE in texts(feature)
    assert HOSTILE in texts(graph)
    for app in (feature, graph):
        assert all("<img" not in m.value for m in app.markdown)
        assert all("<img" not in c.value for c in app.caption)
    # the drawing's tips are set as text in the browser (test_app_browser), so the label is there as written
    tips = [tip for layer in drawings(graph)[0]["layers"] for tip in layer.get("tips") or []]
    assert any(HOSTILE in tip for tip in tips)


def test_a_new_label_shows_without_a_restart(real: dict[str, Any]) -> None:
    key = FeatureKey(real["feature"].transcoder_set, real["feature"].layer, real["feature"].index)
    before = open_page("labels")
    n = len(before.dataframe[0].value)
    with KB.open(Config.load(env=dict(os.environ))) as kb:
        add_label(kb, key, f"fresh label {n}", "ada")
    after = open_page("labels")
    assert len(after.dataframe[0].value) == n + 1
    assert after.dataframe[0].value["text"].iloc[0] == f"fresh label {n}"


# --- accounts ----------------------------------------------------------------------------------------


def test_with_accounts_a_page_asks_to_sign_in_and_a_labeller_labels_the_selected_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb import labels as api

    home = tmp_path / "home"
    use_home(monkeypatch, home)
    with KB.open(Config.load(home=home, env={})) as kb:
        assert len(kb.ingest([real_graph("02")]).ingested) == 1
        key, node = _labelled_node(kb, slug_of("02"))
        ada = api.add_user(kb, api.local_actor(), "ada", "ada-secret-pw", "admin")
        assert ada["role"] == "admin"
        api.add_user(kb, api.authenticate(kb, "ada", "ada-secret-pw"), "lin", "lin-secret-pw", "labeller")

    app = open_page("graph", g=slug_of("02"), node=node)
    assert not problems(app), problems(app)
    assert any("sign in" in info.value for info in app.info)
    assert not drawings(app)  # nothing of the knowledge base before signing in

    app.text_input(key="labelling-sign-in-name").set_value("lin")
    app.text_input(key="labelling-sign-in-password").set_value("lin-secret-pw")
    app.button(key="labelling-sign-in-submit").click().run()
    assert not problems(app), problems(app)
    assert len(drawings(app)) == 1 and "Signed in as lin (labeller)" in texts(app)

    add = [t for t in app.text_input if t.key and t.key.endswith("-add-text")]
    assert len(add) == 1, "the selected node's panel offers a label form"
    add[0].set_value("small, as in size")
    next(b for b in app.button if b.key and b.key.endswith("-add-submit")).click().run()
    assert not problems(app), problems(app)
    with KB.open(Config.load(home=home, env={})) as kb:
        written = api.labels_of_feature(kb, key, slug_of("02"), node)
    assert [(w["text"], w["author"]) for w in written] == [("small, as in size", "lin")]


# --- families found in the prompts ---------------------------------------------------------------------


def _home_without_families(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with graphs 02 (English), 03 (French) and 04 and no manifest: no family at all."""
    home = tmp_path / "home"
    use_home(monkeypatch, home)
    with KB.open(Config.load(home=home, env={})) as kb:
        assert len(kb.ingest([real_graph("02"), real_graph("03"), real_graph("04")]).ingested) == 3
    return home


def _family_buttons(app: AppTest) -> list[Any]:
    return [b for b in app.button if b.key and b.key.startswith("fp-") and b.key.endswith("-submit")]


def test_the_languages_page_proposes_the_pair_and_accepting_it_draws_its_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home_without_families(tmp_path, monkeypatch)
    app = open_page("languages")
    assert not problems(app), problems(app)
    assert any("No family" in i.value for i in app.info) and not drawings(app)
    proposals = frame_with(app, "name", "status", "languages", "prompt similarity")
    assert list(proposals["name"]) == ["opposite-small"] and list(proposals["languages"]) == ["en, fr"]
    members = frame_with(app, "graph", "language", "prompt", "outputs")
    assert set(members["graph"]) == {slug_of("02"), slug_of("03")}
    (name,) = [t for t in app.text_input if t.key and t.key.startswith("fp-") and t.key.endswith("-name")]
    assert name.value == "opposite-small"
    name.set_value("opposite <b>")
    _family_buttons(app)[0].click().run()
    assert not problems(app), problems(app)
    assert "Family saved." in [s.value for s in app.success]
    assert app.query_params["family"] in ("opposite <b>", ["opposite <b>"])
    assert app.session_state["languages-family"] == "opposite <b>"
    assert drawings(app) and frame_with(app, "en-fr", "en-fr baseline").shape[0] > 0
    assert all("<b>" not in m.value for m in app.markdown)  # the name typed is never Markdown
    with KB.open(Config.load(home=home, env={})) as kb:
        assert {g.slug: g.family for g in kb.select()} == {slug_of("02"): "opposite <b>", slug_of("03"): "opposite <b>", slug_of("04"): None}
    assert frame_with(app, "name", "status")["status"].tolist() == ["accepted"]
    assert not _family_buttons(app)
    # renamed, the page follows it; cleared, the page shows no family and proposes the pair again
    assert not [s for s in app.selectbox if s.key == "families-edit-family"]  # made when its expander opens
    app.session_state["families-edit-open"] = True
    app.run()
    app.selectbox(key="families-edit-family").set_value("opposite <b>")
    app.text_input(key="families-edit-name").set_value("antonyms")
    app.button(key="families-edit-rename").click().run()
    assert not problems(app), problems(app)
    assert app.session_state["languages-family"] == "antonyms" and drawings(app)
    app.button(key="families-edit-clear").click().run()
    assert not problems(app), problems(app)
    assert app.session_state["languages-family"] == "" and "family" not in app.query_params
    assert frame_with(app, "name", "status")["status"].tolist() == ["new"] and _family_buttons(app)


def test_with_many_graphs_families_are_looked_for_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.families

    _home_without_families(tmp_path, monkeypatch)
    monkeypatch.setattr(app.families, "FIND_ON_OPEN", 2)  # the knowledge base has 3 graphs
    page = open_page("languages")
    assert not problems(page), problems(page)
    assert page.toggle(key="families-find").value is False and not _family_buttons(page)
    page.toggle(key="families-find").set_value(True).run()
    assert not problems(page), problems(page)
    assert list(frame_with(page, "name", "status")["name"]) == ["opposite-small"] and _family_buttons(page)


def test_with_accounts_only_an_admin_gets_the_ingest_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb import labels as api

    home = tmp_path / "home"
    use_home(monkeypatch, home)
    with KB.open(Config.load(home=home, env={})) as kb:
        api.add_user(kb, api.local_actor(), "ada", "ada-secret-pw", "admin")
        api.add_user(kb, api.authenticate(kb, "ada", "ada-secret-pw"), "lin", "lin-secret-pw", "labeller")
    for name, forms in (("lin", False), ("ada", True)):
        app = open_page("ingest")
        app.text_input(key="labelling-sign-in-name").set_value(name)
        app.text_input(key="labelling-sign-in-password").set_value(f"{name}-secret-pw")
        app.button(key="labelling-sign-in-submit").click().run()
        assert not problems(app), problems(app)
        offered = [b.proto.label for b in app.get("form_submit_button")]
        if forms:
            assert "Ingest" in offered and "Import" in offered and not any("needs an admin" in i.value for i in app.info)
        else:
            assert "Ingest" not in offered and "Import" not in offered
            assert any("needs an admin's account" in i.value and "signed in as lin, a labeller" in i.value for i in app.info)


def test_a_viewer_sees_the_proposals_but_no_form_to_accept_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb import labels as api

    home = _home_without_families(tmp_path, monkeypatch)
    with KB.open(Config.load(home=home, env={})) as kb:
        api.add_user(kb, api.local_actor(), "ada", "ada-secret-pw", "admin")
        api.add_user(kb, api.authenticate(kb, "ada", "ada-secret-pw"), "vic", "vic-secret-pw", "viewer")
    app = open_page("languages")
    app.text_input(key="labelling-sign-in-name").set_value("vic")
    app.text_input(key="labelling-sign-in-password").set_value("vic-secret-pw")
    app.button(key="labelling-sign-in-submit").click().run()
    assert not problems(app), problems(app)
    assert list(frame_with(app, "name", "status")["name"]) == ["opposite-small"]
    assert not _family_buttons(app) and any("labeller" in c.value for c in app.caption)


def test_without_a_family_the_languages_page_measures_one_family_and_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    use_home(monkeypatch, home)
    manifest = tmp_path / "manifest.csv"
    rows = [(slug_of("02"), "b-opposite", "en"), (slug_of("03"), "b-opposite", "fr"), (slug_of("04"), "a-other", "en"), (slug_of("05"), "a-other", "de")]
    manifest.write_text("slug,family,language\n" + "".join(f"{s},{f},{lang}\n" for s, f, lang in rows), encoding="utf-8")
    with KB.open(Config.load(home=home, env={})) as kb:
        assert len(kb.ingest([real_graph(n) for n in ("02", "03", "04", "05")], manifest=manifest).ingested) == 4
    app = open_page("languages")
    assert not problems(app), problems(app)
    names = [layer["name"] for layer in drawings(app)[0]["layers"]]
    assert names and all(n.startswith("a-other:") for n in names)
    assert any("2 families" in shown(c.value) and "this is a-other" in shown(c.value) for c in app.caption)
    chosen = open_page("languages", family="b-opposite")
    assert all(layer["name"].startswith("b-opposite:") for layer in drawings(chosen)[0]["layers"])
