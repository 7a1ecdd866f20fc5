"""/labels : labelling activity (new label versions and votes), then the latest labels, each
feature a link to its page."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import state
from app.labelling import activity_feed, short_times
from app.widgets import feature_url, link_columns

PAGE = "labels"
SHOWN = 100


def render() -> None:
    st.header("Labels")
    st.subheader("Activity")
    activity_feed(state.kb())
    st.subheader("Latest labels")
    recent = state.recent_labels(state.version(), SHOWN)
    if not recent:
        st.info("No one has labelled a feature yet.")
        return
    frame = pd.DataFrame(
        [
            {
                "open": feature_url(r["feature"].transcoder_set, r["feature"].layer, r["feature"].index),
                "feature": str(r["feature"]),
                "text": r["text"],
                "author": r["author"],
                "graph": r["graph_slug"],
                "when": r["updated_at"],
            }
            for r in recent
        ]
    )
    st.caption(f"The {len(frame)} latest labels")
    st.dataframe(short_times(frame, "when"), width="stretch", hide_index=True, key="labels-recent", column_config=link_columns("open"))
