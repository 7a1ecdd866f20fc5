"""/feature?f=TRANSCODER_SET/LAYER/INDEX : everything known about one feature.

The page is a list of sections, each a function of the feature; a labelling panel is one more
section (see :data:`SECTIONS`). The graphs that contain it are two tabs, ranked by activation or
by influence; only the open one is computed and sent (``&rank=influence`` opens the second).
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import streamlit as st

from app import state
from app.labelling import label_panel, short_times
from app.widgets import INFLUENCE_NOTE, Param, Tabs, md, feature_address, feature_param, graph_link, link, link_columns, qk_tables, read_url, require_graphs, with_links, write_url
from ingest.records import FeatureKey
from kb.errors import NotFoundError
from kb.featureref import EXAMPLES, BadFeatureRef, format_feature_ref, parse_feature_ref

PAGE = "feature"
RANKS = Tabs("feature-rank", {"activation": "by activation", "influence": "by influence"}, what="ranking")


def render() -> None:
    st.header("Feature")
    if require_graphs() is None:
        return
    read_url(PAGE, {"f": Param("feature-f", feature_param, ""), "rank": RANKS.param()})
    ref = st.text_input("Feature", key="feature-f", placeholder="gemma-2-2b/clt-hp/20/1234 or gemma-2-2b/20-clt-hp/1234")
    if not ref.strip():
        write_url(PAGE, {})
        st.caption(f"Name a feature above ({EXAMPLES}), or find one on the Search page.")
        return
    try:
        key = parse_feature_ref(ref)
    except BadFeatureRef as exc:
        write_url(PAGE, {})
        st.warning(f"This is not a feature name the page can read. Write it like {EXAMPLES}.")
        st.text(str(exc))
        return
    if not known(key):
        write_url(PAGE, {"f": feature_address(key)})
        st.warning(
            f"The knowledge base knows nothing about feature {md(format_feature_ref(key))}: no stored graph contains it and "
            "no description or label names it. Check the transcoder set, layer and index, or find the feature on the Search page."
        )
        return
    for section in SECTIONS:
        section(key)
    write_url(PAGE, {"f": feature_address(key), "rank": RANKS.opened()})


def known(key: FeatureKey) -> bool:
    v = state.version()
    if state.descriptions(v, key):
        return True
    try:
        state.usage(v, key, "activation")
    except NotFoundError:
        return False
    return True


def header(key: FeatureKey) -> None:
    v = state.version()
    st.subheader(md(format_feature_ref(key)))
    cols = st.columns(2)
    neuronpedia = state.neuronpedia(v, key)
    if neuronpedia:
        cols[0].link_button("Open on Neuronpedia", neuronpedia)
    if state.descriptions(v, key):  # search by example compares descriptions and labels
        with cols[1]:
            link("search", "Features like this", like=feature_address(key))


def descriptions(key: FeatureKey) -> None:
    v = state.version()
    said = [d for d in state.descriptions(v, key) if d["source"] != "label"]
    st.markdown("**What is said about it**")
    if not said:
        st.caption("No description of this feature is stored (import Neuronpedia explanations on the Ingest page).")
        return
    frame = short_times(pd.DataFrame(said, columns=["source", "kind", "author", "text", "graph_slug", "created_at"]), "created_at")
    st.dataframe(frame, width="stretch", hide_index=True, key="feature-descriptions")


def labels(key: FeatureKey) -> None:
    """People's labels with votes, history and discussion, and the forms to add to them."""
    label_panel(state.kb(), key, descriptions=False)


def graphs(key: FeatureKey) -> None:
    v = state.version()
    st.markdown("**Graphs that contain it**")
    for rank_by, tab in RANKS.show().items():
        if not tab.open:
            continue
        with tab:
            usage = _usage(key, rank_by)
            if usage is None or usage.n_graphs == 0:
                st.caption("No stored graph contains this feature.")
                continue
            st.caption(f"in {usage.n_graphs} graph{'' if usage.n_graphs == 1 else 's'}; the first {len(usage.graphs)} by {rank_by}")
            if rank_by == "influence":
                st.caption(INFLUENCE_NOTE)
            for n, row in enumerate(usage.graphs.itertuples()):
                node = state.feature_node(v, row.slug, key, tuple(int(p) for p in row.positions))
                cols = st.columns([3, 2])
                with cols[0]:
                    graph_link(row.slug, node, label=f"{row.rank}. {row.slug}")
                value = row.activation if rank_by == "activation" else row.influence
                cols[1].caption(f"{rank_by} {value:.4g} · positions {', '.join(str(p) for p in row.positions)}" if value is not None and value == value else "")


def _usage(key: FeatureKey, rank_by: str) -> Any:
    """Where the feature is used; None when no stored graph has it."""
    try:
        return state.usage(state.version(), key, rank_by)
    except NotFoundError:
        return None


def neighbours(key: FeatureKey) -> None:
    usage = _usage(key, "activation")
    st.markdown("**What usually feeds it and what it usually drives, across graphs**")
    summary = usage.summary if usage is not None else None
    if summary is None or summary.empty:
        st.caption("No feature links to or from it in the stored graphs.")
        return
    frame = with_links(summary, "neighbour_").rename(columns={"neighbour_open": "open", "neighbour_description": "description"})
    for direction, title in (("upstream", "feeds it"), ("downstream", "it drives")):
        part = frame[frame["direction"] == direction]
        st.caption(title)
        st.dataframe(
            part[["open", "description", "neighbour_transcoder_set", "neighbour_layer", "neighbour_index", "n_graphs", "mean_weight"]],
            width="stretch",
            hide_index=True,
            column_config=link_columns("open"),
            key=f"feature-{direction}",
        )


def queries_and_keys(key: FeatureKey) -> None:
    """For a Lorsa (attention) feature of CRM graphs: the features that drive its queries and keys."""
    drivers = state.qk(state.version(), key)
    if not drivers.n_graphs:
        return
    st.markdown("**What drives its queries and keys (QK tracing)**")
    qk_tables(drivers, "feature-qk")


SECTIONS: list[Callable[[FeatureKey], None]] = [header, descriptions, labels, graphs, neighbours, queries_and_keys]
