"""The app's labelling components, run by AppTest from a small script: the panel adds, votes,
edits (with a conflict message), comments; roles decide what it offers; user text stays text."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.labelling import _prefix
from ingest.records import FeatureKey
from kb import labels as api
from kb.config import Config
from kb.core import Core
from kb.labels import accounts

TEXAS = FeatureKey("gemma-2-2b/clt-hp", 20, 1234)
HOSTILE = "<script>alert(1)</script> **bold** [link](http://x)"


def panel_script(home: str, feature: tuple, graph_slug: str | None, node_id: str | None) -> None:
    import streamlit as st

    from app.labelling import activity_feed, label_panel, sign_in_box
    from ingest.records import FeatureKey
    from kb.config import Config
    from kb.core import Core

    @st.cache_resource
    def open_core(folder: str) -> Core:
        return Core.open(Config.load(home=folder, env={}))

    core = open_core(home)
    with st.sidebar:
        sign_in_box(core)
    label_panel(core, FeatureKey(*feature), graph_slug, node_id)
    activity_feed(core)


@pytest.fixture
def home(tmp_path: Path) -> str:
    return str(tmp_path / "home")


def core_of(home: str) -> Core:
    return Core.open(Config.load(home=home, env={}))


def run_app(home: str) -> AppTest:
    app = AppTest.from_function(panel_script, args=(home, (TEXAS.transcoder_set, TEXAS.layer, TEXAS.index), None, None), default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    return app


def all_text(app: AppTest) -> list[str]:
    return [t.value for t in app.text]


def markdown_text(app: AppTest) -> str:
    parts = [m.value for m in app.markdown] + [e.value for e in app.error] + [s.value for s in app.success] + [i.value for i in app.info]
    parts += [x.label for x in app.expander]
    return "\n".join(parts)


def test_the_panel_adds_votes_edits_and_comments_and_shows_text_as_text(home: str) -> None:
    p = _prefix(TEXAS, None, None)
    app = run_app(home)
    app.text_input(key=f"{p}-add-text").set_value(HOSTILE)
    app.slider(key=f"{p}-add-confidence").set_value(0.9)
    app.button(key=f"{p}-add-submit").click().run()
    assert not app.exception, app.exception
    with core_of(home) as core:
        (saved,) = api.labels_of_feature(core, TEXAS)
    assert (saved["text"], saved["confidence"], saved["version"]) == (HOSTILE, 0.9, 1)
    table = app.dataframe[0].value
    assert list(table["text"]) == [HOSTILE]
    assert HOSTILE in all_text(app)  # the label in its panel, as plain text
    assert "<script>" not in markdown_text(app) and "**bold**" not in markdown_text(app)
    key = f"{p}-{saved['id']}"
    app.button(key=f"{key}-up").click().run()
    assert api.label(core_of(home), saved["id"])["up_votes"] == 1
    app.text_area(key=f"{key}-edit-text").set_value("Texas")
    app.button(key=f"{key}-edit-submit").click().run()
    assert not app.exception, app.exception
    assert api.label(core_of(home), saved["id"])["version"] == 2
    app.text_area(key=f"{p}-comment-text").set_value("Is it the state or the word?")
    app.button(key=f"{p}-comment-submit").click().run()
    assert [c["text"] for c in api.comments_of(core_of(home), TEXAS)] == ["Is it the state or the word?"]
    feed = app.dataframe[-1].value
    assert list(feed["kind"]) == ["label", "vote", "label"]


def test_a_conflicting_edit_shows_the_other_text_and_saves_nothing(home: str) -> None:
    with core_of(home) as core:
        ref = api.add(core, accounts.local_actor("ann"), TEXAS, "Texas")
    p = _prefix(TEXAS, None, None)
    app = run_app(home)
    key = f"{p}-{ref.id}"
    with core_of(home) as core:  # someone else saves while this editor types
        api.edit(core, accounts.local_actor("bob"), ref.id, "Texas, by bob <b>", base_version=1)
    app.text_area(key=f"{key}-edit-text").set_value("Texas, by me")
    app.button(key=f"{key}-edit-submit").click().run()
    assert not app.exception, app.exception
    assert any("now version 2" in e.value for e in app.error)
    assert "Texas, by bob <b>" in all_text(app)
    assert api.label(core_of(home), ref.id)["text"] == "Texas, by bob <b>"


def test_roles_decide_what_the_panel_offers_and_kb_checks_again(home: str) -> None:
    with core_of(home) as core:
        admin = accounts.local_actor()
        accounts.add_user(core, admin, "ada", "ada-secret-pw", "admin")
        ada = accounts.authenticate(core, "ada", "ada-secret-pw")
        accounts.add_user(core, ada, "lin", "lin-secret-pw", "labeller")
        accounts.add_user(core, ada, "vic", "vic-secret-pw", "viewer")
        api.add(core, ada, TEXAS, "Texas")
    p = _prefix(TEXAS, None, None)
    app = run_app(home)
    assert any("Sign in" in i.value for i in app.info) and not app.dataframe  # nothing before signing in
    app.text_input(key="labelling-sign-in-name").set_value("vic")
    app.text_input(key="labelling-sign-in-password").set_value("wrong")
    app.button(key="labelling-sign-in-submit").click().run()
    assert any("did not work" in e.value for e in app.error)
    app.text_input(key="labelling-sign-in-password").set_value("vic-secret-pw")
    app.button(key="labelling-sign-in-submit").click().run()
    assert not app.exception, app.exception
    assert list(app.dataframe[0].value["text"]) == ["Texas"]
    assert not [w for w in app.text_input if w.key == f"{p}-add-text"]  # a viewer gets no form
    app.button(key="labelling-sign-out").click().run()
    app.text_input(key="labelling-sign-in-name").set_value("lin")
    app.text_input(key="labelling-sign-in-password").set_value("lin-secret-pw")
    app.button(key="labelling-sign-in-submit").click().run()
    app.text_input(key=f"{p}-add-text").set_value("Lone Star")
    with core_of(home) as core:  # lin loses the role while the form is open
        accounts.set_role(core, ada, "lin", "viewer")
    app.button(key=f"{p}-add-submit").click().run()
    assert not app.exception, app.exception
    assert [r["text"] for r in api.labels_of_feature(core_of(home), TEXAS)] == ["Texas"]
    assert "secret-pw" not in "\n".join(all_text(app) + [markdown_text(app)])


def test_the_panel_of_a_selected_node_labels_that_node(home: str) -> None:
    from kb.api import KB
    from tests.conftest import real_graph

    with KB.open(Config.load(home=home, env={})) as kb:
        kb.ingest([real_graph("01")])
    feature = FeatureKey("gemma-2-2b/gemmascope-transcoder-16k", 23, 8683)
    slug, node = "gemma-small-big-en", "23_8683_8"
    with core_of(home) as core:
        api.add(core, accounts.local_actor("ann"), feature, "elsewhere", graph_slug=slug, node_id="23_8683_7")
    app = AppTest.from_function(panel_script, args=(home, (feature.transcoder_set, feature.layer, feature.index), slug, node), default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    assert "No labels yet." in all_text(app)  # the label of another node does not apply here
    p = _prefix(feature, slug, node)
    app.text_input(key=f"{p}-add-text").set_value("say big, here")
    app.radio(key=f"{p}-add-scope").set_value("this node only")
    app.button(key=f"{p}-add-submit").click().run()
    assert not app.exception, app.exception
    with core_of(home) as core:
        shown = api.labels_of_feature(core, feature, slug, node)
    assert [(r["text"], r["graph_slug"], r["node_id"]) for r in shown] == [("say big, here", slug, node)]
    assert list(app.dataframe[0].value["text"]) == ["say big, here"]
    assert list(app.dataframe[0].value["scope"]) == [f"{slug} / {node}"]


def test_times_are_shown_to_the_minute_in_utc() -> None:
    import pandas as pd

    from app.labelling import short_times

    frame = pd.DataFrame({"when": ["2026-12-01T13:00:08.470685+00:00", "2026-12-01T13:00:59", "2026-12-01T15:30:00+02:00", None, "soon"], "n": range(5)})
    shown = short_times(frame, "when", "absent")
    when = list(shown["when"])
    assert when[:3] + when[4:] == ["2026-12-01 13:00 UTC", "2026-12-01 13:00 UTC", "2026-12-01 13:30 UTC", "soon"] and pd.isna(when[3])
    assert list(frame["when"])[0].endswith("+00:00")  # the caller's frame is left as it was
