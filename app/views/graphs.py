"""/graphs : the stored graphs, filtered like every cross-graph page, each a link to its drawing;
the graphs shown saved as a set (for labellers), and one of them downloaded as graph JSON."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app import state
from app.labelling import current_user, show_error
from app.widgets import FILTER, graph_filter, read_url, require_graphs, selection_params, url, write_url
from kb.errors import CircuitKBError
from kb.selection import MAX_NAME, GraphInfo, Selection

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
        pd.DataFrame(rows, columns=["open", "slug", "language", "family", "tags", "prompt", "model", "transcoder_set"]),
        width="stretch",
        hide_index=True,
        column_config={"open": st.column_config.LinkColumn("open", display_text="draw")},
        key="graphs-table",
    )
    if not chosen:
        return
    save_as_set(chosen)
    # made when opened: a selectbox is the slowest element to draw in a new tab
    box = st.popover("Download a graph as JSON", key="graphs-download-open", on_change="rerun")
    if box.open:
        with box:
            slug = st.selectbox("Graph (the file loads in the circuit-tracer and Neuronpedia viewers)", [g.slug for g in chosen], key="graphs-export")
            if st.button("Prepare the download", key="graphs-prepare"):
                st.download_button("Download", json.dumps(state.kb().export(slug)), file_name=f"{slug}.json", mime="application/json", key="graphs-download")


def save_as_set(chosen: list[GraphInfo]) -> None:
    """"Save these graphs as a set", for those who may (a labeller once there are accounts; the
    kb checks again): the slugs shown now, under a name every page's filter and --set then take."""
    actor = current_user(state.kb())
    if actor is None or not actor.can("labeller"):
        return
    box = st.popover(f"Save these {len(chosen)} graphs as a set", key="graphs-save-open", on_change="rerun")
    if not box.open:
        return
    with box:
        name = st.text_input("Name of the set", key="graphs-set-name", max_chars=MAX_NAME, help="A set with this name already is replaced.")
        if st.button("Save the set", key="graphs-save"):
            try:
                saved = state.kb().save_set(name, Selection(slugs=tuple(g.slug for g in chosen)), actor)
            except CircuitKBError as exc:
                show_error(exc)
            else:
                st.success(f'Saved {len(saved)} graphs as a set: choose it under "{FILTER}" on any page, or with --set in circuitkb.')
