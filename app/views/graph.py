"""/graph?g=SLUG[&node=NODE_ID][&top=N][&x=NODE,NODE...][&link=SRC,TGT] : one attribution graph, drawn,
with the selected node's details.

The drawing is a bounded piece of the graph (kb.analysis.graphview): the ``top`` most influential
nodes, the logits, the file's pinned nodes, and the neighbourhood of every node clicked since the
graph was opened (``x``, oldest first). A click on a node (or a row of its inputs / outputs)
selects it; a click on a link selects the link. The address keeps all of it, so a
link reopens the same view.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.labelling import label_panel
from app.drawing import drawn_links, drawn_nodes, graph_scene
from app.plot import picked, show
from app.widgets import Param, md, feature_link, qk_tables, link, float_in, int_in, one_of, read_url, require_graphs, text, write_url
from kb.analysis.graphview import MAX_TOP
from app.state import BadParameter
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


def _node_list(raw: str) -> tuple[str, ...]:
    nodes = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if len(nodes) > MAX_EXPANDED:
        raise BadParameter(f"at most {MAX_EXPANDED} expanded nodes, separated by commas")
    return nodes


def _link_pair(raw: str) -> str:
    ends = [n.strip() for n in raw.split(",")]
    if len(ends) != 2 or not all(ends):
        raise BadParameter("it should be two node ids separated by a comma: source,target")
    return ",".join(ends)


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
        "x": Param("graph-x", _node_list, ()),
        "link": Param("graph-link", _link_pair, ""),
    }
    read_url(PAGE, params)
    _take_clicks()

    cols = st.columns([3, 1, 2, 2, 1.7])
    slug = cols[0].selectbox("Graph", slugs, key="graph-g", on_change=_forget_nodes)
    top = cols[1].number_input("Nodes", min_value=1, max_value=MAX_TOP, step=50, key="graph-top", help="The most influential nodes to draw (plus the logits, pinned and expanded nodes)")
    nt = cols[2].slider("Node threshold (cumulative influence)", 0.0, 1.0, step=0.01, key="graph-nt", help="Keep nodes whose cumulative influence is at most this, as circuit-tracer's pruning does; 1 keeps all")
    et = cols[3].slider("Edge threshold (share of the target's input)", 0.0, 0.5, step=0.005, key="graph-et", help="Hide links that carry less than this share of their target's input")
    saved = cols[4].toggle("Saved view", key="graph-saved", help="Only the file's pinned nodes and supernodes")

    graph = next(g for g in everything if g.slug == slug)
    head = st.columns([3, 1])
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
    view, expanded = _view(v, slug, _expanded(node), int(top), nt if nt < 1.0 else None, float(et))
    chosen_link = st.session_state.get("graph-link") or ""
    write_url(PAGE, {
        "g": slug, "node": node, "top": int(top) if top != DEFAULT_TOP else None, "nt": nt if nt < 1.0 else None,
        "et": et if et != DEFAULT_EDGE else None, "saved": "1" if saved else None,
        "x": tuple(n for n in expanded if n != node), "link": chosen_link,
    })  # fmt: skip

    left, right = st.columns([3, 2])
    with left:
        nodes = drawn_nodes(view.nodes, saved)
        shown = f"{len(nodes):,} of {view.n_nodes:,} nodes and {len(drawn_links(view.links, nodes)):,} of {view.n_links:,} links drawn"
        if saved:
            shown += " (the file's saved view)"
        elif view.capped:
            shown += f" (the strongest of {view.n_links_piece:,} among these nodes; raise the edge threshold to see others)"
        st.caption(shown)
        scene = graph_scene(view, selected=node or None, selected_link=tuple(chosen_link.split(",", 1)) if chosen_link else None, only_saved=saved)
        show(scene, key="graph-chart", on_pick=_picked_in_drawing)
        st.caption("Click a node or a link to select it; drag to pan, scroll to zoom, double-click to see it all again.")
        if expanded and st.button("Collapse the expanded neighbourhoods", key="graph-collapse"):
            st.session_state["graph-x"] = ()
            st.session_state["graph-node"] = ""
            st.rerun()
        _saved_view(view)
    with right:
        options = ["", *view.nodes.sort_values("influence", na_position="last")["node_id"].tolist()]
        if node and node not in options:
            options.append(node)
        st.session_state["graph-node"] = node
        st.selectbox("Selected node", options, key="graph-node", format_func=lambda n: n or "(click a node in the drawing)")
        if chosen_link:
            _link_panel(view, chosen_link)
        if details is not None:
            _node_panel(details)
        _scores(v, slug, view)
    if details is not None and details.feature is not None:
        drivers = state.qk(v, details.feature, slug)
        if drivers.n_graphs:
            with st.container(border=True):
                st.caption(f"What drives the queries and keys of {md(details.feature)} in this graph (QK tracing)")
                qk_tables(drivers, "graph-qk")
        with st.container(border=True):
            st.caption(f"Labels of {md(details.feature)}, the feature of the selected node (a new label here is about this node of {md(slug)})")
            label_panel(state.kb(), details.feature, graph_slug=slug, node_id=details.node["node_id"])


def _forget_nodes() -> None:
    st.session_state["graph-node"] = ""
    st.session_state["graph-x"] = ()
    st.session_state["graph-link"] = ""


def _expanded(node: str) -> list[str]:
    """The nodes clicked since this graph was opened (their neighbourhoods are drawn), latest last."""
    nodes = list(st.session_state.get("graph-x") or ())
    if node and node not in nodes:
        nodes.append(node)
    return nodes[-MAX_EXPANDED:]


def _view(v: str, slug: str, expanded: list[str], top: int, nt: float | None, et: float) -> tuple[Any, list[str]]:
    """The piece of graph ``slug`` to draw, and the nodes whose neighbourhoods it expands.

    Nodes the graph does not have (a hand-edited address) are dropped with a warning: the view
    refuses them, and only then is each node looked up to tell which."""
    try:
        view = state.graph_view(v, slug, top, tuple(expanded), nt, et)
    except NotFoundError:
        known = state.known_nodes(v, slug, tuple(expanded))
        missing = [n for n in expanded if n not in known]
        if not missing:
            raise
        st.warning(md(f"Graph {slug} has no node {', '.join(missing)}; it is left out of the expanded neighbourhoods."))
        expanded = known
        view = state.graph_view(v, slug, top, tuple(expanded), nt, et)
    st.session_state["graph-x"] = tuple(expanded)
    return view, expanded


def _picked_in_drawing() -> None:
    """(The drawing's callback, run before the page's widgets.) Select the node or link clicked."""
    pick = picked("graph-chart") or {}
    if isinstance(pick.get("node"), str):
        st.session_state["graph-node"] = pick["node"]
    elif isinstance(pick.get("link"), list) and len(pick["link"]) == 2:
        st.session_state["graph-link"] = ",".join(str(end) for end in pick["link"])


def _take_clicks() -> None:
    """Select the node clicked in the inputs / outputs tables since the last run."""
    for table in ("graph-inputs", "graph-outputs"):
        rows = (st.session_state.get(table) or {}).get("selection", {}).get("rows", []) if st.session_state.get(table) else []
        ids = st.session_state.get(f"{table}-ids") or []
        _take(table, tuple(ids[r] for r in rows if r < len(ids)))


def _take(source: str, nodes: tuple[str, ...]) -> None:
    seen = f"{source}-seen"
    if nodes and nodes != st.session_state.get(seen):
        st.session_state["graph-node"] = str(nodes[0])
    st.session_state[seen] = nodes


def _link_panel(view: Any, chosen: str) -> None:
    """The selected link: its ends (each can be selected) and its weight and share."""
    src_id, tgt_id = chosen.split(",", 1)
    idx_of = dict(zip(view.nodes["node_id"], view.nodes["idx"]))
    drawn = view.links[(view.links["src"] == idx_of.get(src_id)) & (view.links["tgt"] == idx_of.get(tgt_id))]
    with st.container(border=True):
        st.caption("Selected link")
        st.text(f"{src_id} → {tgt_id}")
        if drawn.empty:
            st.caption("This link is not among the links drawn now (lower the edge threshold, or expand one of its ends).")
        else:
            weight, share = float(drawn["weight"].sum()), float(drawn["share"].sum())
            st.text(f"weight {weight:.4g} · {share:.1%} of {tgt_id}'s total input")
        st.caption("Select one of its ends instead:")
        cols = st.columns(3)
        cols[0].button("Source", key="graph-link-src", on_click=_select, args=(src_id,))
        cols[1].button("Target", key="graph-link-tgt", on_click=_select, args=(tgt_id,))
        cols[2].button("Clear", key="graph-link-clear", on_click=_select, args=(None,))


def _select(node_id: str | None) -> None:
    """(A button's callback, run before the page's widgets.) Select ``node_id`` instead of the link."""
    if node_id is not None:
        st.session_state["graph-node"] = node_id
    st.session_state["graph-link"] = ""


def _node_panel(details: Any) -> None:
    row = details.node
    st.markdown(f"**{md(row['kind'])}** · layer {md(row['layer'])} · position {md(row['ctx_idx'])}")
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
    """The graph's scores, computed when their expander is opened (they read the whole graph)."""
    box = st.expander("Replacement and completeness scores", key="graph-scores-open", on_change="rerun")
    if not box.open:
        return
    with box:
        if view.n_links > BIG_GRAPH_LINKS and not st.button("Compute (reads the whole graph)", key="graph-scores"):
            return
        scores = state.graph_scores(v, slug)
        cols = st.columns(2)
        for col, name, value in zip(cols, ("replacement score", "completeness score"), (scores.replacement, scores.completeness)):
            col.metric(name, "n/a" if value is None else f"{value:.4f}")
