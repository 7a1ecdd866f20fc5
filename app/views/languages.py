"""/languages?family=F : how much of a family's circuit is shared across its languages, layer by
layer, against the baseline of unrelated prompts, and which features are shared or specific (two
tabs, of which only the open one is computed and sent: ``&show=features`` opens the second);
below, the families found in the prompts, to accept (:mod:`app.families`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import streamlit as st

from app import state
from app.families import proposals_panel
from app.drawing import counts_scene, overlap_scene
from app.plot import show
from app.widgets import Tabs, graph_filter, link_columns, md, read_url, require_graphs, selection_params, with_links, write_url
from kb.selection import GraphInfo, Selection

PAGE = "languages"
TABS = Tabs("languages-tab", {"overlap": "Overlap per layer", "features": "Shared and language-specific features"})


def render() -> None:
    st.header("Languages")
    everything = require_graphs()
    if everything is None:
        return
    read_url(PAGE, {**selection_params(PAGE, everything), "show": TABS.param()})
    selection, chosen = graph_filter(PAGE, everything)
    shown = _overlap(everything, selection)
    write_url(PAGE, {**chosen, "show": shown})
    proposals_panel(selection, _show_family)


def _overlap(everything: list[GraphInfo], selection: Selection) -> str | None:
    """The measure for the chosen family, or why there is none; returns the open tab's address
    value (None: the first, or no tabs)."""
    v = state.version()
    languages: dict[str, set[str]] = {}
    for g in everything:
        if g.family and g.language:
            languages.setdefault(g.family, set()).add(g.language)
    multilingual = sorted(family for family, langs in languages.items() if len(langs) >= 2)
    if not multilingual:
        st.info(
            "No family of prompts has graphs in two languages yet. The measure compares the same prompt in several "
            "languages: accept a family found in the prompts below, or ingest the graphs with a manifest that gives "
            "each graph its family and language (Ingest page)."
        )
        return None
    graphs = state.graphs(v, selection)
    among = sorted({g.family for g in graphs if g.family in multilingual})
    if not among:
        st.info(md(f"None of the chosen graphs belongs to a family with two languages; choose one of: {', '.join(multilingual)}."))
        return None
    if selection.family is None and len(among) > 1:
        # each family's overlap and baseline cost a query of their own: one family at a time
        selection = replace(selection, family=among[0])
        st.caption(md(f"{len(among)} families of the chosen graphs have two languages or more; this is {among[0]}. Choose another family with \"Choose graphs\" above."))
    overlap, band = state.languages(v, selection)
    tabs = TABS.show()
    if tabs["overlap"].open:
        with tabs["overlap"]:
            _curves(overlap, band)
    if tabs["features"].open:
        with tabs["features"]:
            _features(overlap)
    return TABS.opened()


def _curves(overlap: Any, band: Any) -> None:
    st.caption("Overlap of the features active anywhere in the context (IoU per layer) between the same prompt in two languages; the dotted line and grey band: unrelated prompts of the same two languages (mean, 10th to 90th percentile).")
    show(overlap_scene(overlap.curves, band), key="languages-chart")
    if overlap.curves["baseline_iou"].isna().all():
        st.info("No baseline yet: the knowledge base has no unrelated prompts in these languages to compare with. Ingest graphs of other prompts in the same languages to see it.")
    st.dataframe(overlap.table(), width="stretch", key="languages-table")


def _features(overlap: Any) -> None:
    layers, features = overlap.layers, overlap.features
    if not layers.empty:
        # "active": anywhere in the unpruned context; "kept": in the pruned graphs (see kb.analysis.languages)
        basis = st.radio("Features", sorted(set(layers["basis"])), horizontal=True, key="languages-basis", help="active: present in the graph; kept: kept after pruning")
        layers = layers[layers["basis"] == basis]
        features = features[features["basis"] == basis]
        counts = layers.groupby("layer")[["n_shared", "n_specific"]].sum()
        parts = {"n_shared": ("shared by every language", "#1f77b4"), "n_specific": ("in some languages only", "#ff7f0e")}
        show(counts_scene(counts, parts), key="languages-counts")
    for kind, title in (("shared", "In every language of the family"), ("specific", "In some languages only")):
        part = features[features["class"] == kind]
        st.markdown(f"**{title}** ({len(part)})")
        st.dataframe(with_links(part), width="stretch", hide_index=True, key=f"languages-{kind}", column_config=link_columns("open"))


def _show_family(name: str | None) -> None:
    """Open the page on family ``name``, or on no family (read from the address at the next run)."""
    if name:
        st.query_params["family"] = name
    elif "family" in st.query_params:
        del st.query_params["family"]
