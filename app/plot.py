"""The app's drawing in the page: a scene of :mod:`app.drawing`, drawn as SVG by ``plot.js``.

A Streamlit component (``st.components.v2``) of this folder's ``plot.js`` and ``plot.css``, a few
kilobytes that draw in the page itself: a page with a drawing loads no charting library. A click
on an item that has a pick sends the pick back; :func:`picked` reads it in the callback, before
the page's widgets are made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import streamlit as st
from streamlit.components.v2 import component

_HERE = Path(__file__).parent
_draw = component(
    "circuitkb_plot",
    js=(_HERE / "plot.js").read_text(encoding="utf-8"),
    css=(_HERE / "plot.css").read_text(encoding="utf-8"),
)


def show(scene: dict[str, Any], *, key: str, on_pick: Callable[[], None] | None = None) -> None:
    """Draw ``scene``; a click on an item with a pick calls ``on_pick`` (which reads :func:`picked`).
    Without ``on_pick`` the items only show their tips: a click does not rerun the page."""
    data = {**scene, "pickable": on_pick is not None}
    _draw(data=data, key=key, on_pick_change=on_pick or _nothing, width=scene.get("width", "stretch"), height="content")


def picked(key: str) -> Any:
    """The pick the drawing ``key`` sent with the click now being handled (None if none)."""
    value = st.session_state.get(key)
    return value.get("pick") if value else None


def _nothing() -> None:
    """The callback of a drawing that takes no clicks (its JavaScript sends none)."""
