"""/ : what the knowledge base holds and where to start."""

from __future__ import annotations

import streamlit as st

from app import state
from app.widgets import link, require_graphs


def render() -> None:
    st.title("circuitkb")
    st.caption("A knowledge base of attribution graphs: search features, open a graph, compare graphs, look across prompts and languages.")
    if require_graphs() is None:
        return
    stats = state.stats(state.version())
    cols = st.columns(5)
    for col, name in zip(cols, ("graphs", "nodes", "links", "features", "descriptions")):
        col.metric(name, f"{stats[name]:,}")
    st.subheader("Start here")
    link("search", "Search features by concept")
    link("graphs", "The list of graphs")
    link("across", "Features shared across prompts")
    link("languages", "How much of the circuit is shared across languages")
    link("labels", "Recent labels")
