"""The Streamlit app: every page renders without an exception on a small knowledge base."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.main import PAGES
from kb.api import KB
from kb.config import Config
from tests.conftest import GRAPHS

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
# Every test renders pages of a knowledge base of the nine real graphs: about a minute in all.
pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    with KB.open(Config.load(home=tmp_path, env={})) as kb:
        kb.ingest([GRAPHS])
    monkeypatch.setenv("CIRCUITKB_HOME", str(tmp_path))
    for name in ("CIRCUITKB_SQL_URL", "CIRCUITKB_NEO4J_URI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders(home: Path, page: str) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.sidebar.radio(key="page").set_value(page).run()
    assert not app.exception, app.exception


def test_a_label_saved_in_the_app_is_shown_as_plain_text(home: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.sidebar.radio(key="page").set_value("Labels").run()
    app.text_input(key="labels-ref").set_value("20-clt-hp/1234").run()
    app.text_input(key="labels-author").set_value("ada")
    app.text_input(key="labels-text").set_value("<script>alert(1)</script> **bold**")
    app.button[0].click().run()
    assert not app.exception, app.exception
    assert any("saved" in s.value for s in app.success)
    shown = app.dataframe[0].value
    assert "<script>alert(1)</script> **bold**" in list(shown["text"])
    assert not app.markdown or all("<script>" not in m.value for m in app.markdown)


def test_search_and_comparison_answer(home: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=300)
    app.run()
    app.sidebar.radio(key="page").set_value("Search features").run()
    app.text_input(key="search-query").set_value("opposite").run()
    assert not app.exception, app.exception
    assert len(app.dataframe[0].value) > 0
    app.sidebar.radio(key="page").set_value("Compare graphs").run()
    assert not app.exception, app.exception
    assert len(app.dataframe) >= 2


def test_circuits_and_one_graph_pages_answer(home: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=300)
    app.run()
    app.sidebar.radio(key="page").set_value("Circuits").run()
    assert not app.exception, app.exception
    edges = app.dataframe[0].value
    assert len(edges) > 0 and {"src_layer", "tgt_layer", "n_graphs"} <= set(edges.columns)
    app.text_input(key="circuits-token").set_value("Dallas").run()
    assert not app.exception, app.exception
    assert all("error" not in e.value.lower() for e in app.error), [e.value for e in app.error]
    assert len(app.dataframe) == 3 and len(app.dataframe[2].value) > 0  # edges, paths, two-hop
    app.sidebar.radio(key="page").set_value("One graph").run()
    assert not app.exception, app.exception
    assert [m.label for m in app.metric] == ["replacement score", "completeness score"]
    assert len(app.dataframe[0].value) > 0


def test_a_link_with_a_page_opens_that_page(home: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["page"] = "One graph"
    app.run()
    assert not app.exception, app.exception
    assert app.sidebar.radio(key="page").value == "One graph"
    influence = list(app.dataframe[0].value["influence"].dropna())
    assert influence == sorted(influence)  # most influential first
