"""circuitkb in the browser: a thin Streamlit layer over the ``kb`` API.

    CIRCUITKB_HOME=~/.circuitkb streamlit run app/main.py

One page per module of ``app.views`` (their addresses are in docs/app.md); every number comes
from a ``kb`` call, read through :mod:`app.state`. Text that users wrote (labels, clerps,
prompts) is shown as text, never as HTML or Markdown.
"""

from __future__ import annotations

import streamlit as st

from app.nav import all_pages


def main() -> None:
    st.set_page_config(page_title="circuitkb", layout="wide")
    st.navigation(all_pages()).run()


main()
