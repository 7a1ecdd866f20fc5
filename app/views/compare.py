"""/compare?a=SLUG&b=SLUG : two graphs side by side; /compare?family=F (or tag=, language=, set=):
the similarity of many, in clustering order, each cell a link to that pair.

Below the two drawings, the differences are tabs (features, edges, labels, supernodes), and only
the open one is sent: ``&show=edges`` opens the edges, which run to thousands of rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.drawing import graph_scene, similarity_scene
from app.plot import picked, show
from app.widgets import INFLUENCE_NOTE, Param, Tabs, graph_filter, kept, md, one_of, link_columns, read_url, require_graphs, selection_params, with_links, write_url
from ingest.records import FeatureKey
from kb.featureref import format_feature_ref

PAGE = "compare"
IN_ORDER = {"both": 0, "only A": 1, "only B": 2}
MEASURES = ("features", "edges")
TOP = 120
PICKER = "Choose the graphs"  # the button that opens the two graphs' pickers
EDGE = 0.05  # links below this share of their target's input are left out of the side-by-side drawings
TABS = Tabs("compare-tab", {"features": "Features only in A / only in B / in both", "edges": "Edges", "labels": "Labels side by side", "supernodes": "Supernodes"})


def render() -> None:
    st.header("Compare graphs")
    everything = require_graphs(at_least=2)
    if everything is None:
        return
    slugs = [g.slug for g in everything]
    params = {
        "a": Param("compare-a", one_of(slugs, "graph", f'under "{PICKER}"'), slugs[0]),
        "b": Param("compare-b", one_of(slugs, "graph", f'under "{PICKER}"'), slugs[1]),
        "measure": Param("compare-measure", one_of(MEASURES, "measure"), "features"),
        "show": TABS.param(),
        **selection_params(PAGE, everything),
    }
    many = any(name in st.query_params for name in ("family", "tag", "language", "set", "many"))
    if st.session_state.get("_url-compare") != st.query_params.to_dict():
        st.session_state["compare-view"] = "Many graphs" if many else "Two graphs"
    read_url(PAGE, params)
    view = st.radio("Compare", ["Two graphs", "Many graphs"], horizontal=True, key="compare-view", label_visibility="collapsed")
    if view == "Two graphs":
        a, b = _pair(slugs)
        _two(a, b)
    else:
        selection, chosen = graph_filter(PAGE, everything)
        measure = st.radio("Jaccard of their", MEASURES, horizontal=True, key="compare-measure")
        filters = {k: v for k, v in chosen.items() if v}
        write_url(PAGE, {**filters, "measure": measure if measure != "features" else None, "many": None if filters else "1"})
        _many(selection, measure)


def _pair(slugs: list[str]) -> tuple[str, str]:
    """The two graphs, named on the page; their pickers are made when "Choose the graphs" is
    opened (a selectbox is the slowest element to draw in a new tab, and most arrive here by a
    link that names the pair)."""
    kept("compare-a", slugs[0], slugs)
    kept("compare-b", slugs[1], slugs)
    cols = st.columns([5, 1], vertical_alignment="center")
    picker = cols[1].popover(PICKER, key="compare-pick", on_change="rerun")
    if picker.open:
        with picker:
            st.selectbox("Graph A", slugs, key="compare-a")
            st.selectbox("Graph B", slugs, key="compare-b")
    a, b = st.session_state["compare-a"], st.session_state["compare-b"]
    cols[0].markdown(f"**A** {md(a)} · **B** {md(b)}")
    return a, b


def _two(a: str, b: str) -> None:
    if a == b:
        write_url(PAGE, {"a": a, "b": b})
        st.info("Choose two different graphs.")
        return
    v = state.version()
    comparison = state.compare(v, a, b)
    shared = set()
    only = {"a": set(), "b": set()}
    for r in comparison.nodes[comparison.nodes["kind"] == "feature"].itertuples():
        ref = format_feature_ref(FeatureKey(r.transcoder_set, int(r.layer), int(r.index)))
        if r.in_a and r.in_b:
            shared.add(ref)
        else:
            only["a" if r.in_a else "b"].add(ref)
    summary = comparison.summary
    st.caption(
        f"{len(shared)} features in both, {len(only['a'])} only in A, {len(only['b'])} only in B · "
        + " · ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in summary.items() if isinstance(v, float))
    )
    cols = st.columns(2)
    for col, side, slug in ((cols[0], "a", a), (cols[1], "b", b)):
        with col:
            view = state.graph_view(v, slug, TOP, (), None, EDGE)
            marks = {ref: "shared" for ref in shared} | {ref: "only here" for ref in only[side]}
            st.markdown(f"**{side.upper()}**")
            st.text(view.graph.prompt)
            show(graph_scene(view, marks=marks, height=520), key=f"compare-chart-{side}")
    st.caption("Features: purple in both graphs, pink only in this one. Errors are grey squares, embeddings green diamonds, logits orange hexagons. " + INFLUENCE_NOTE)
    tabs = TABS.show()
    write_url(PAGE, {"a": a, "b": b, "show": TABS.opened()})
    if tabs["features"].open:
        with tabs["features"]:
            nodes = with_links(comparison.nodes)
            where = pd.Series(["both" if x and y else ("only A" if x else "only B") for x, y in zip(nodes["in_a"], nodes["in_b"])], index=nodes.index)
            nodes.insert(0, "in", where)
            # features first, those in both graphs first among them, each group by its best influence
            # (cumulative: lower is more influential); embeddings, errors and logits after
            nodes = nodes.assign(
                _kind=(nodes["kind"] != "feature"), _in=where.map(IN_ORDER), _best=nodes[["influence_a", "influence_b"]].apply(pd.to_numeric).min(axis=1)
            ).sort_values(["_kind", "_in", "_best"], na_position="last", kind="stable")
            columns = ["in", "open", "description", "key", "kind", "activation_a", "activation_b", "activation_diff", "influence_a", "influence_b", "clerp_a", "clerp_b"]
            st.dataframe(nodes[columns], width="stretch", hide_index=True, key="compare-nodes", column_config=link_columns("open"))
    for name, frame, empty in (
        ("edges", comparison.edges, "The two graphs have no links."),
        ("labels", comparison.labels, "No feature of either graph has a label yet."),
        ("supernodes", comparison.supernodes, "Neither graph's file groups nodes into supernodes."),
    ):
        if tabs[name].open:
            with tabs[name]:
                if frame.empty:
                    st.info(empty)
                else:
                    if name == "edges":  # the strongest first, by the larger |weight| of the two graphs
                        strength = frame[["weight_a", "weight_b"]].apply(pd.to_numeric).abs().max(axis=1)
                        frame = frame.loc[strength.sort_values(ascending=False, kind="stable").index]
                    st.dataframe(frame, width="stretch", hide_index=True, key=f"compare-{name}")


def _many(selection: Any, measure: str) -> None:
    v = state.version()
    chosen = state.graphs(v, selection)
    if len(chosen) < 2:
        st.info("Fewer than two graphs are chosen; widen the choice with \"Choose graphs\" above to see how they resemble each other.")
        return
    similarity = state.similarity(v, selection, measure)
    order = similarity.clusters.sort_values("order")["slug"].tolist()
    st.caption(f"{len(order)} graphs in clustering order; click a cell to compare that pair.")
    show(similarity_scene(similarity.matrix, order), key="compare-matrix", on_pick=_cell_clicked)
    st.dataframe(similarity.clusters.sort_values("order"), width="stretch", hide_index=True, key="compare-clusters")


def _cell_clicked() -> None:
    """(The matrix's callback, run before the page's widgets.) A click on a cell opens that pair."""
    pair = (picked("compare-matrix") or {}).get("pair")
    if not (isinstance(pair, list) and len(pair) == 2) or pair[0] == pair[1]:
        return
    a, b = (str(end) for end in pair)
    st.query_params.from_dict({"a": a, "b": b})
    st.session_state["compare-a"], st.session_state["compare-b"] = a, b
    st.session_state["compare-view"] = "Two graphs"
    for name in ("family", "tag", "language", "set"):
        st.session_state.pop(f"{PAGE}-{name}", None)
    st.session_state["_url-compare"] = {"a": a, "b": b}
