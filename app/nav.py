"""The app's pages: one module of ``app.pages`` each, its title and its address.

A page is a ``st.Page`` over the module's ``render`` function; its address (``url_path``) is
part of the app's interface (docs/app.md). Pages link to each other through :func:`page`, so
an address is written in one place.
"""

from __future__ import annotations

import importlib

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app.state import guarded

# (module and address, title, icon); the first is the home page, served at /
PAGES = (
    ("home", "Overview", ":material/home:"),
    ("graphs", "Graphs", ":material/list:"),
    ("search", "Search", ":material/search:"),
    ("feature", "Feature", ":material/neurology:"),
    ("graph", "Graph", ":material/hub:"),
    ("compare", "Compare", ":material/compare:"),
    ("across", "Across prompts", ":material/join_inner:"),
    ("languages", "Languages", ":material/translate:"),
    ("labels", "Labels", ":material/label:"),
    ("ingest", "Ingest", ":material/upload:"),
)
NAMES = tuple(name for name, _, _ in PAGES)


def page(name: str, *, default: str = NAMES[0]) -> StreamlitPage:
    """The page ``name`` (one of NAMES), ready for ``st.navigation`` or ``st.page_link``."""
    for module_name, title, icon in PAGES:
        if module_name == name:
            module = importlib.import_module(f"app.pages.{module_name}")
            return st.Page(guarded(module.render), title=title, icon=icon, url_path=module_name, default=module_name == default)
    raise KeyError(f"no page {name!r}; pages are {', '.join(NAMES)}")


def all_pages(default: str = NAMES[0]) -> list[StreamlitPage]:
    """Every page; ``default`` is served at / (tests open one page there)."""
    return [page(name, default=default) for name in NAMES]
