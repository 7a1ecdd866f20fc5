"""/across?family=F (or tag=, language=, set=) : features shared across the chosen prompts, the
family's common core and what each member adds, and feature edges that recur; every feature a link.

Each of the three is a tab, and only the open one is computed and sent (``&show=core`` or
``&show=edges`` opens the others).
"""

from __future__ import annotations

import streamlit as st

from app import state
from app.widgets import INFLUENCE_NOTE, Param, Tabs, graph_filter, int_in, link_columns, read_url, require_graphs, selection_params, with_links, write_url

PAGE = "across"
EDGE_LIMIT = 200
TABS = Tabs("across-tab", {"shared": "Shared features", "core": "Family core", "edges": "Recurring edges"})


def render() -> None:
    st.header("Across prompts")
    everything = require_graphs()
    if everything is None:
        return
    read_url(
        PAGE,
        {
            **selection_params(PAGE, everything),
            "k": Param("across-k", int_in(1, 100_000), 2),
            "show": TABS.param(),
        },
    )
    selection, chosen = graph_filter(PAGE, everything)
    graphs = state.graphs(state.version(), selection)
    k = st.number_input("Present in at least this many of the chosen graphs", min_value=1, max_value=max(1, len(graphs)), key="across-k")
    st.caption(f"{len(graphs)} graphs chosen")
    if len(graphs) < 2:
        write_url(PAGE, {**chosen, "k": int(k) if k != 2 else None})
        st.info("Choose two graphs or more: open \"Choose graphs\" above and change the family, tag, language or set.")
        return
    tabs = TABS.show()
    write_url(PAGE, {**chosen, "k": int(k) if k != 2 else None, "show": TABS.opened()})
    st.caption(INFLUENCE_NOTE)
    k = min(int(k), len(graphs))
    v = state.version()
    if tabs["shared"].open:
        with tabs["shared"]:
            shared = state.shared(v, selection, k)
            st.caption(f"{len(shared.features)} features in at least {k} of {len(graphs)} graphs")
            st.dataframe(with_links(shared.features), width="stretch", hide_index=True, key="across-shared", column_config=link_columns("open"))
    if tabs["core"].open:
        with tabs["core"]:
            core = state.core(v, selection)
            st.caption(f"{len(core.core)} features in every one of the {len(graphs)} graphs")
            st.dataframe(with_links(core.core), width="stretch", hide_index=True, key="across-core", column_config=link_columns("open"))
            st.markdown("**What each graph adds**")
            st.dataframe(with_links(core.additions), width="stretch", hide_index=True, key="across-additions", column_config=link_columns("open"))
    if tabs["edges"].open:
        with tabs["edges"]:
            edges = state.recurring_edges(v, selection, k, EDGE_LIMIT)
            st.caption(f"{edges.n_found:,} feature edges in at least {k} of {len(graphs)} graphs (the {min(EDGE_LIMIT, edges.n_found)} most widely shared shown)")
            frame = with_links(with_links(edges.edges, "src_"), "tgt_")
            st.dataframe(frame, width="stretch", hide_index=True, key="across-edges", column_config=link_columns("src_open", "tgt_open"))
