"""The app's pages: one module of ``app.views`` each, its title and its address.

A page is a ``st.Page`` over the module's ``render`` function; its address (``url_path``) is
part of the app's interface (docs/app.md). Pages link to each other through :func:`page`, so
an address is written in one place.
"""

from __future__ import annotations

import importlib

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app.state import guarded

# (module and address, title); the first is the home page, served at /
PAGES = (
    ("home", "Overview"),
    ("graphs", "Graphs"),
    ("search", "Search"),
    ("feature", "Feature"),
    ("graph", "Graph"),
    ("compare", "Compare"),
    ("across", "Across prompts"),
    ("languages", "Languages"),
    ("labels", "Labels"),
    ("ingest", "Ingest"),
)
NAMES = tuple(name for name, _ in PAGES)


def page(name: str, *, default: str = NAMES[0]) -> StreamlitPage:
    """The page ``name`` (one of NAMES), ready for ``st.navigation`` or ``st.page_link``."""
    for module_name, title in PAGES:
        if module_name == name:
            module = importlib.import_module(f"app.views.{module_name}")
            return st.Page(guarded(module.render), title=title, url_path=module_name, default=module_name == default)
    raise KeyError(f"no page {name!r}; pages are {', '.join(NAMES)}")


def all_pages(default: str = NAMES[0]) -> list[StreamlitPage]:
    """Every page; ``default`` is served at / (tests open one page there)."""
    return [page(name, default=default) for name in NAMES]
