"""/search?q=TEXT : features by concept, words or id, with the search API's filters;
/search?like=TRANSCODER_SET/LAYER/INDEX : features described like that one (the feature page's
"Features like this"). Every hit links to its feature page."""

from __future__ import annotations

import streamlit as st

from app import state
from app.widgets import (
    Param,
    feature_address,
    feature_param,
    graph_filter,
    int_in,
    link,
    md,
    one_of,
    read_url,
    require_graphs,
    selection_params,
    text,
    write_url,
)
from kb.featureref import EXAMPLES, BadFeatureRef, format_feature_ref, parse_feature_ref
from kb.search.query import MODES, SearchError, SearchFilters

PAGE = "search"
SOURCES = ("neuronpedia", "clerp", "label")


def _sources(raw: str) -> list[str]:
    chosen = [s for s in raw.split(",") if s]
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise ValueError(f"sources are {', '.join(SOURCES)}")
    return chosen


def _flag(raw: str) -> bool:
    return raw == "1"


def render() -> None:
    st.header("Search features")
    everything = require_graphs()
    if everything is None:
        return
    params = {
        "q": Param("search-q", text, ""),
        "like": Param("search-like", feature_param, ""),
        "together": Param("search-together", _flag, False),
        "k": Param("search-k", int_in(5, 100), 20),
        "mode": Param("search-mode", one_of(MODES, "search mode"), "blend"),
        "tset": Param("search-tset", text, ""),
        "lmin": Param("search-lmin", int_in(0, 999), 0),
        "lmax": Param("search-lmax", int_in(0, 999), 999),
        "sources": Param("search-sources", _sources, []),
        **selection_params(PAGE, everything),
    }
    read_url(PAGE, params)
    query = st.text_input("Concept, words, or a feature id", key="search-q", placeholder="say a capital city · antonym · L20/1234 · 20-clt-hp/1234")
    example = st.text_input(
        "Or features like this one", key="search-like", placeholder="gemma-2-2b/clt-hp/20/1234",
        help="Features whose descriptions and labels are nearest to this feature's (the feature page's 'Features like this')",
    )  # fmt: skip
    together = st.checkbox("Only features that appear in a graph with it", key="search-together", disabled=not example.strip())
    with st.expander("Filters", expanded=False):
        cols = st.columns(4)
        k = cols[0].slider("Results", 5, 100, key="search-k")
        mode = cols[1].radio("Match", MODES, key="search-mode", horizontal=True, help="blend: meaning and words; semantic: meaning only; keyword: words only")
        tset = cols[2].text_input("Transcoder set or model", key="search-tset", help="e.g. gemma-2-2b/clt-hp, gemma-2-2b or clt-hp")
        sources = cols[3].multiselect("Said by", SOURCES, key="search-sources", help="Neuronpedia explanations, clerps in graphs, labels people wrote")
        lcols = st.columns(2)
        lmin = lcols[0].number_input("From layer", min_value=0, max_value=999, key="search-lmin")
        lmax = lcols[1].number_input("To layer", min_value=0, max_value=999, key="search-lmax")
        st.caption("Only features that appear in these graphs:")
        selection, chosen = graph_filter(PAGE, everything)
    write_url(
        PAGE,
        {
            "q": query.strip(), "like": example.strip(), "together": "1" if together and example.strip() else None,
            "k": k if k != 20 else None, "mode": mode if mode != "blend" else None, "tset": tset.strip(),
            "lmin": lmin or None, "lmax": lmax if lmax != 999 else None, "sources": tuple(sources), **chosen,
        },
    )  # fmt: skip
    if not query.strip() and not example.strip():
        st.caption("Type a concept above: the hits are features whose descriptions, clerps or labels say it.")
        return
    if lmin > lmax:
        st.warning("The layer range is empty: 'From layer' is above 'To layer'.")
        return
    filters = SearchFilters(
        transcoder_set=tset.strip() or None,
        min_layer=int(lmin) or None,
        max_layer=int(lmax) if lmax != 999 else None,
        sources=tuple(sources),
        graphs=None if selection.is_empty() else selection,
    )
    if example.strip():
        try:
            key = parse_feature_ref(example)
        except BadFeatureRef as exc:
            st.warning(f"'Or features like this one' is not a feature name the page can read. Write it like {EXAMPLES}.")
            st.text(str(exc))
            return
        st.markdown("**Described like**")
        link("feature", format_feature_ref(key), f=feature_address(key))
        if query.strip():
            st.caption("Searching by example: clear 'Or features like this one' to search the words above.")
        try:
            with st.spinner("Searching"):
                hits = state.like(state.version(), key, int(k), filters, together)
        except SearchError as exc:  # the feature is unknown, or has no description to compare
            st.info(md(str(exc)))
            return
    else:
        with st.spinner("Searching"):
            hits = state.search(state.version(), query.strip(), int(k), filters, mode)
    if not hits:
        st.info("No feature matches. Try other words, or widen the filters.")
        return
    st.caption(f"{len(hits)} features")
    # four elements a hit, no columns: each element is a message to the browser and a component
    # it draws (with columns, 100 hits took a new tab about half as long again, on a busy machine)
    for n, hit in enumerate(hits):
        with st.container(border=True, gap="xsmall", key=f"search-hit-{n}"):
            link("feature", format_feature_ref(hit.feature), f=feature_address(hit.feature))
            st.caption(f"score {hit.score:.3f} · {hit.match} · in {hit.n_graphs} graph{'' if hit.n_graphs == 1 else 's'}")
            said = hit.descriptions[0]["text"] if hit.descriptions else (hit.matched_text or "")
            lines = [said] if said else []
            if hit.matched_text and hit.matched_text != said:  # why it was found, when its first description does not say
                lines.append(f"matched: {hit.matched_text}")
            if hit.labels:
                lines.append("labels: " + "; ".join(label["text"] for label in hit.labels))
            if lines:
                st.text("\n".join(lines))
