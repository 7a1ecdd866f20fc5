"""/graph?g=SLUG[&node=NODE_ID][&top=N] : one attribution graph, drawn, with the selected node's details.

The drawing is a bounded piece of the graph (kb.analysis.graphview): the ``top`` most influential
nodes, the logits, the file's pinned nodes, and the neighbourhood of every node clicked since the
graph was opened. A click on a node (or a row of its inputs / outputs) selects it; the address
keeps the selected node, so a link reopens the same view.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.labelling import label_panel
from app.drawing import graph_figure
from app.widgets import Param, md, feature_link, qk_tables, link, float_in, int_in, one_of, read_url, require_graphs, text, write_url
from kb.analysis.graphview import MAX_TOP
from kb.errors import NotFoundError

PAGE = "graph"
MAX_EXPANDED = 10
DEFAULT_TOP = 120
DEFAULT_EDGE = 0.02
BIG_GRAPH_LINKS = 500_000  # above this, scores are computed on request only


def _flag(raw: str) -> bool:
    if raw not in ("0", "1"):
        raise ValueError("it should be 0 or 1")
    return raw == "1"


def render() -> None:
    st.header("Graph")
    everything = require_graphs()
    if everything is None:
        return
    slugs = [g.slug for g in everything]
    params = {
        "g": Param("graph-g", one_of(slugs, "graph"), slugs[0]),
        "node": Param("graph-node", text, ""),
        "top": Param("graph-top", int_in(1, MAX_TOP), DEFAULT_TOP),
        "nt": Param("graph-nt", float_in(0.0, 1.0), 1.0),
        "et": Param("graph-et", float_in(0.0, 0.5), DEFAULT_EDGE),
        "saved": Param("graph-saved", _flag, False),
    }
    read_url(PAGE, params)
    _take_clicks()

    cols = st.columns([3, 1, 2, 2, 1])
    slug = cols[0].selectbox("Graph", slugs, key="graph-g", on_change=_forget_nodes)
    top = cols[1].number_input("Nodes", min_value=1, max_value=MAX_TOP, step=50, key="graph-top", help="The most influential nodes to draw (plus the logits, pinned and expanded nodes)")
    nt = cols[2].slider("Node threshold (cumulative influence)", 0.0, 1.0, step=0.01, key="graph-nt", help="Keep nodes whose cumulative influence is at most this, as circuit-tracer's pruning does; 1 keeps all")
    et = cols[3].slider("Edge threshold (share of the target's input)", 0.0, 0.5, step=0.005, key="graph-et", help="Hide links that carry less than this share of their target's input")
    saved = cols[4].toggle("Saved view", key="graph-saved", help="Only the file's pinned nodes and supernodes")

    graph = next(g for g in everything if g.slug == slug)
    head = st.columns([4, 1])
    head[0].text(graph.prompt)
    with head[1]:
        other = next((g.slug for g in everything if g.slug != slug and g.family and g.family == graph.family), None) or next((g.slug for g in everything if g.slug != slug), None)
        if other:
            link("compare", "Compare with another graph", a=slug, b=other)
    v = state.version()
    node = st.session_state.get("graph-node") or ""
    if node:
        try:
            details = state.node_details(v, slug, node)
        except NotFoundError:
            st.warning(md(f"Graph {slug} has no node {node!r}; click a node in the drawing to select one."))
            node, details = "", None
    else:
        details = None
    expanded = _expanded(slug, node)
    view = state.graph_view(v, slug, int(top), tuple(expanded), nt if nt < 1.0 else None, float(et))
    write_url(PAGE, {"g": slug, "node": node, "top": int(top) if top != DEFAULT_TOP else None, "nt": nt if nt < 1.0 else None, "et": et if et != DEFAULT_EDGE else None, "saved": "1" if saved else None})

    left, right = st.columns([3, 2])
    with left:
        shown = f"{len(view.nodes):,} of {view.n_nodes:,} nodes and {len(view.links):,} of {view.n_links:,} links drawn"
        if view.capped:
            shown += f" (the strongest of {view.n_links_piece:,} among these nodes; raise the edge threshold to see others)"
        st.caption(shown)
        figure = graph_figure(view, selected=node or None, only_saved=saved)
        st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="graph-chart", config={"scrollZoom": True, "displaylogo": False})
        if expanded and st.button("Collapse the expanded neighbourhoods", key="graph-collapse"):
            st.session_state["graph-expanded"] = {"slug": slug, "nodes": []}
            st.rerun()
        _saved_view(view)
    with right:
        options = ["", *view.nodes.sort_values("influence", na_position="last")["node_id"].tolist()]
        if node and node not in options:
            options.append(node)
        st.session_state["graph-node"] = node
        st.selectbox("Selected node", options, key="graph-node", format_func=lambda n: n or "(click a node in the drawing)")
        if details is not None:
            _node_panel(details)
        _scores(v, slug, view)
    if details is not None and details.feature is not None:
        drivers = state.qk(v, details.feature, slug)
        if drivers.n_graphs:
            with st.container(border=True):
                st.caption(f"What drives the queries and keys of {details.feature} in this graph (QK tracing)")
                qk_tables(drivers, "graph-qk")
        with st.container(border=True):
            st.caption(f"Labels of {details.feature}, the feature of the selected node (a new label here is about this node of {slug})")
            label_panel(state.kb(), details.feature, graph_slug=slug, node_id=details.node["node_id"])


def _forget_nodes() -> None:
    st.session_state["graph-node"] = ""
    st.session_state["graph-expanded"] = {"slug": None, "nodes": []}


def _expanded(slug: str, node: str) -> list[str]:
    """The nodes clicked since this graph was opened (their neighbourhoods are drawn), latest last."""
    memory = st.session_state.get("graph-expanded") or {"slug": slug, "nodes": []}
    nodes = list(memory["nodes"]) if memory.get("slug") == slug else []
    if node and node not in nodes:
        nodes.append(node)
    nodes = nodes[-MAX_EXPANDED:]
    st.session_state["graph-expanded"] = {"slug": slug, "nodes": nodes}
    return nodes


def _take_clicks() -> None:
    """Select the node clicked in the drawing, or in the inputs / outputs tables, since the last run."""
    chart = st.session_state.get("graph-chart")
    points = (chart or {}).get("selection", {}).get("points", []) if chart else []
    clicked = [p["customdata"][1] for p in points if isinstance(p.get("customdata"), (list, tuple)) and len(p["customdata"]) == 2]
    _take("graph-chart", tuple(clicked))
    for table in ("graph-inputs", "graph-outputs"):
        picked = (st.session_state.get(table) or {}).get("selection", {}).get("rows", []) if st.session_state.get(table) else []
        ids = st.session_state.get(f"{table}-ids") or []
        _take(table, tuple(ids[r] for r in picked if r < len(ids)))


def _take(source: str, nodes: tuple[str, ...]) -> None:
    seen = f"{source}-seen"
    if nodes and nodes != st.session_state.get(seen):
        st.session_state["graph-node"] = str(nodes[0])
    st.session_state[seen] = nodes


def _node_panel(details: Any) -> None:
    row = details.node
    st.markdown(f"**{row['kind']}** · layer {row['layer']} · position {row['ctx_idx']}")
    st.text(row["node_id"])
    if details.ambiguous:
        st.caption("Several nodes of this file share this node_id; this is the first of them.")
    if details.feature is not None:
        feature_link(details.feature, label=f"Feature page: {details.feature}")
    if row.get("clerp"):
        st.caption("clerp")
        st.text(row["clerp"])
    if details.labels:
        st.caption("labels")
        for label in details.labels:
            st.text(label)
    names = ("activation", "influence", "token_prob") if row["kind"] == "logit" else ("activation", "influence")
    numbers = {name: row.get(name) for name in names if row.get(name) is not None}
    if numbers:
        st.text(" · ".join(f"{k} {v:.4g}" for k, v in numbers.items()))
    st.caption(f"Strongest inputs, as shares of this node's total input ({details.n_inputs:,} links in)")
    _neighbour_table("graph-inputs", details.inputs)
    st.caption(f"Strongest outputs, as shares of each target's total input ({details.n_outputs:,} links out)")
    _neighbour_table("graph-outputs", details.outputs)


def _neighbour_table(key: str, frame: pd.DataFrame) -> None:
    st.session_state[f"{key}-ids"] = frame["node_id"].tolist()
    shown = frame[["share", "node_id", "clerp", "feature", "weight"]]
    st.dataframe(
        shown,
        width="stretch",
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=key,
        column_config={"share": st.column_config.NumberColumn("share", format="percent"), "weight": st.column_config.NumberColumn(format="%.4g")},
    )


def _saved_view(view: Any) -> None:
    if not view.pinned and not view.supernodes:
        return
    with st.expander(f"The file's saved view: {len(view.pinned)} pinned nodes, {len(view.supernodes)} supernodes"):
        drawn = set(view.nodes["node_id"])
        if view.supernodes:
            rows = [{"supernode": label, "members": ", ".join(members), "drawn": sum(m in drawn for m in members)} for label, members in view.supernodes]
            st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True, key="graph-supernodes")
        if view.pinned:
            st.text("pinned: " + ", ".join(view.pinned))


def _scores(v: str, slug: str, view: Any) -> None:
    with st.expander("Replacement and completeness scores"):
        if view.n_links > BIG_GRAPH_LINKS and not st.button("Compute (reads the whole graph)", key="graph-scores"):
            return
        scores = state.graph_scores(v, slug)
        cols = st.columns(2)
        for col, name, value in zip(cols, ("replacement score", "completeness score"), (scores.replacement, scores.completeness)):
            col.metric(name, "n/a" if value is None else f"{value:.4f}")
