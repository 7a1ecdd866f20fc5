"""circuitkb in the browser: a thin Streamlit layer over the ``kb`` API.

    CIRCUITKB_HOME=~/.circuitkb streamlit run app/main.py

Every answer comes from ``kb``; this file only lays out widgets. Text that users wrote
(labels, clerps, prompts) is shown in tables or as plain text, never as HTML or Markdown.
"""

from __future__ import annotations

import streamlit as st

from app import views
from kb.api import KB
from kb.config import Config

PAGES = {
    "Graphs": views.graphs_page,
    "Search features": views.search_page,
    "Shared features": views.shared_page,
    "Where a feature is used": views.used_by_page,
    "Languages": views.languages_page,
    "Circuits": views.circuits_page,
    "Compare graphs": views.compare_page,
    "One graph": views.one_graph_page,
    "Labels": views.labels_page,
}


@st.cache_resource
def open_kb() -> KB:
    return KB.open(Config.load())


def main() -> None:
    st.set_page_config(page_title="circuitkb", layout="wide")
    kb = open_kb()
    st.sidebar.title("circuitkb")
    names = list(PAGES)
    asked = st.query_params.get("page")  # ?page=Circuits opens that page (links can be shared)
    page = st.sidebar.radio("Page", names, index=names.index(asked) if asked in names else 0, key="page")
    PAGES[page](kb)


main()
