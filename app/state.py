"""The knowledge base the app opens once, and every read the pages make, cached on its version.

The KB is a ``st.cache_resource`` (one per server process). Reads are ``st.cache_data`` keyed on
:func:`kb.overview.kb_version`, a cheap fingerprint that changes on an ingest, an import or a
saved label, so what changed shows at the next page view without a restart; an unchanged KB
answers from the cache (moving a widget back and forth recomputes nothing).

Every function here is one ``kb`` call that the CLI and the tests also make; pages never query
the stores themselves.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable

import pandas as pd
import streamlit as st

from app.labelling import sign_in_box
from ingest.records import FeatureKey
from kb.api import KB
from kb.config import Config
from kb.errors import CircuitKBError, StoreUnavailable
from kb.selection import GraphInfo, Selection

log = logging.getLogger(__name__)
_ENTRIES = 64


class BadParameter(CircuitKBError):
    """A value in the address bar that the page cannot read."""


@st.cache_resource(show_spinner=False)
def open_kb(settings: tuple[tuple[str, str], ...]) -> KB:
    """The KB of these settings, opened once per server process (a failure is retried next time)."""
    return KB.open(Config.load(env=dict(settings)))


def kb() -> KB:
    settings = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("CIRCUITKB_")))
    return open_kb(settings)


def version() -> str:
    """The KB's current fingerprint (a few indexed SQL aggregates)."""
    from kb.overview import kb_version

    return kb_version(kb())


def guarded(render: Callable[[], None]) -> Callable[[], None]:
    """A page that shows failures as messages in its own words, never as a stack trace."""

    @functools.wraps(render)
    def page() -> None:
        try:
            if allowed():
                render()
        except StoreUnavailable as exc:
            # The message names the server's address, which is for the operator, not for any visitor.
            log.error("the knowledge base cannot be reached: %s", exc)
            st.error(
                "The knowledge base cannot be reached, so this page cannot show anything. "
                "Check that the database servers are running and that the app was started with the right settings: "
                "the app's log (where it was started) names the server and its error."
            )
        except CircuitKBError as exc:
            st.error("This page cannot show what was asked.")
            st.text(str(exc))
        except Exception as exc:  # a bug: the user gets a message, the log gets the trace
            log.exception("page %s failed", render.__name__)
            st.error(f"Something went wrong on this page ({type(exc).__name__}). The app's log has the details.")

    return page


def allowed() -> bool:
    """Whether this browser session may see the pages: always without accounts; with accounts,
    once signed in (the form is in the sidebar), or as an anonymous visitor where an admin
    allows them. The kb checks every write again."""
    with st.sidebar:
        actor = sign_in_box(kb())
    if actor is None:
        st.info("This knowledge base has accounts: sign in with the form in the sidebar to see it.")
        return False
    return True


# --- cached reads ---------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def graphs(v: str, selection: Selection | None = None) -> list[GraphInfo]:
    return kb().select(selection)


# Not st.cache_data: it hashes its arguments its own way (0.2 s for the 14,000 features of a table
# over 1,000 graphs) and copies the answer on every hit; the tuple's own hash takes a millisecond.
# Callers only read the answer.
@functools.lru_cache(maxsize=_ENTRIES)
def one_line_descriptions(v: str, features: tuple[FeatureKey, ...]) -> dict[FeatureKey, str]:
    from kb.descriptions import one_line_descriptions as described

    return described(kb(), features)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def saved_set_names(v: str) -> list[str]:
    from kb.sets import saved_set_names as names

    return names(kb())


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def stats(v: str) -> dict[str, Any]:
    return kb().stats()


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def search(v: str, query: str, k: int, filters: Any, mode: str) -> list[Any]:
    from kb.search import search as run

    return run(kb(), query, k=k, filters=filters, mode=mode)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def like(v: str, feature: FeatureKey, k: int, filters: Any, cooccurring: bool) -> list[Any]:
    from kb.search import like as run

    return run(kb(), feature, k=k, filters=filters, cooccurring=cooccurring)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def graph_view(v: str, slug: str, top: int, expand: tuple[str, ...], node_threshold: float | None, edge_threshold: float) -> Any:
    from kb.analysis.graphview import graph_view as view

    return view(kb(), slug, top=top, expand=expand, node_threshold=node_threshold, edge_threshold=edge_threshold)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def known_nodes(v: str, slug: str, node_ids: tuple[str, ...]) -> list[str]:
    from kb.analysis.graphview import known_nodes as known

    return known(kb(), slug, node_ids)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def node_details(v: str, slug: str, node_id: str) -> Any:
    from kb.analysis.graphview import node_details as details

    return details(kb(), slug, node_id)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def graph_scores(v: str, slug: str) -> Any:
    from kb.analysis.scores import graph_scores as scores

    return scores(kb(), slug)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def descriptions(v: str, key: FeatureKey) -> list[dict[str, Any]]:
    from kb.descriptions import descriptions_of

    return descriptions_of(kb(), key)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def labels(v: str, key: FeatureKey) -> list[dict[str, Any]]:
    from kb.descriptions import labels_of

    return labels_of(kb(), key)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def usage(v: str, key: FeatureKey, rank_by: str) -> Any:
    from kb.analysis.usage import used_by

    return used_by(kb(), [key], rank_by=rank_by, limit=20, neighbours=10)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def qk(v: str, key: FeatureKey, slug: str | None = None) -> Any:
    """What drives the queries and keys of a Lorsa feature (QK tracing), in graph ``slug`` or in all."""
    from kb.analysis.qk import qk_drivers

    return qk_drivers(kb(), [key], Selection(slugs=(slug,)) if slug else None)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def neuronpedia(v: str, key: FeatureKey) -> str | None:
    from kb.overview import neuronpedia_url

    return neuronpedia_url(kb(), key)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def compare(v: str, a: str, b: str) -> Any:
    from kb.analysis.compare import compare_graphs

    return compare_graphs(kb(), a, b)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def similarity(v: str, selection: Selection, measure: str) -> Any:
    from kb.analysis.compare import graph_similarity

    return graph_similarity(kb(), selection, measure=measure)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def shared(v: str, selection: Selection, min_graphs: int) -> Any:
    from kb.analysis.shared import shared_features

    return shared_features(kb(), selection, min_graphs=min_graphs, with_presence=False)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def core(v: str, selection: Selection) -> Any:
    from kb.analysis.shared import family_core

    return family_core(kb(), selection)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def recurring_edges(v: str, selection: Selection, min_graphs: int, limit: int) -> Any:
    from kb.analysis.edges import recurring_edges as edges

    return edges(kb(), selection, min_graphs=min_graphs, limit=limit)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def languages(v: str, selection: Selection) -> tuple[Any, pd.DataFrame]:
    from kb.analysis.bands import baseline_band
    from kb.analysis.languages import language_overlap

    overlap = language_overlap(kb(), selection)
    return overlap, baseline_band(overlap)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def family_proposals(v: str, selection: Selection) -> Any:
    from kb.families import propose_families

    return propose_families(kb(), selection)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def families(v: str, selection: Selection | None = None) -> list[Any]:
    from kb.families import list_families

    return list_families(kb(), selection)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def recent_labels(v: str, limit: int) -> list[dict[str, Any]]:
    from kb.overview import recent_labels as recent

    return recent(kb(), limit)


@st.cache_data(show_spinner=False, max_entries=256)
def feature_node(v: str, slug: str, key: FeatureKey, positions: tuple[int, ...]) -> str | None:
    from kb.analysis.graphview import feature_node as node

    return node(kb(), slug, key, positions)
