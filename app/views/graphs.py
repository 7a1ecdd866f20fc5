"""/graphs : the stored graphs, filtered like every cross-graph page, each a link to its drawing."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app import state
from app.widgets import graph_filter, read_url, require_graphs, selection_params, url, write_url

PAGE = "graphs"


def render() -> None:
    st.header("Graphs")
    everything = require_graphs()
    if everything is None:
        return
    read_url(PAGE, selection_params(PAGE, everything))
    selection, values = graph_filter(PAGE, everything)
    write_url(PAGE, values)
    chosen = state.graphs(state.version(), selection)
    st.caption(f"{len(chosen)} of {len(everything)} graphs")
    rows = [{"open": url("graph", g=g.slug), **g.as_dict(), "tags": ", ".join(g.tags)} for g in chosen]
    st.dataframe(
        pd.DataFrame(rows, columns=["open", "slug", "prompt", "model", "transcoder_set", "language", "family", "tags"]),
        width="stretch",
        hide_index=True,
        column_config={"open": st.column_config.LinkColumn("open", display_text="draw")},
        key="graphs-table",
    )
    if not chosen:
        return
    # made when opened: a selectbox is the slowest element to draw in a new tab
    box = st.popover("Download a graph as JSON", key="graphs-download-open", on_change="rerun")
    if box.open:
        with box:
            slug = st.selectbox("Graph (the file loads in the circuit-tracer and Neuronpedia viewers)", [g.slug for g in chosen], key="graphs-export")
            if st.button("Prepare the download", key="graphs-prepare"):
                st.download_button("Download", json.dumps(state.kb().export(slug)), file_name=f"{slug}.json", mime="application/json", key="graphs-download")


