"""The families panel of the Languages page: the families proposed from the prompts, each with
its evidence and a form to accept it under a name, and a form to rename or clear a family.

Writes go through :mod:`kb.families` as :func:`app.labelling.current_user`, which checks the
labeller role again; the forms are offered only to those who hold it. Slugs, prompts and family
names are shown with ``st.text`` and ``st.dataframe``, never as Markdown.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Callable

import pandas as pd
import streamlit as st

from app import state
from app.labelling import DONE_KEY, current_user, run_write
from kb import families as api
from kb.families.proposals import ACCEPTED, PARTIAL, FamilyProposal
from kb.selection import Selection
from schema.sql import LABELLER

# up to this many graphs the proposals are worked out when the page opens; above, on request (the
# prompts of 1,000 graphs take half a minute to compare on two cores)
FIND_ON_OPEN = 200
PROPOSAL_COLUMNS = ["name", "status", "graphs", "languages", "prompt similarity", "shared features", "features in all", "outputs in all", "transcoder set"]


def proposals_panel(selection: Selection, show_family: Callable[[str | None], None]) -> None:
    """The families proposed among the graphs of ``selection`` (its family left aside), with a
    form to accept each and one to rename or clear a family; ``show_family(name)`` is called
    with the family to show after a change (None: no family)."""
    kb = state.kb()
    actor = current_user(kb)
    if DONE_KEY in st.session_state:
        st.success(st.session_state.pop(DONE_KEY))
    st.subheader("Families found in the prompts")
    pool = replace(selection, family=None)
    n_graphs = len(state.graphs(state.version(), pool))
    if "families-find" not in st.session_state:
        st.session_state["families-find"] = n_graphs <= FIND_ON_OPEN
    if st.toggle(f"Look for families among these {n_graphs:,} graphs", key="families-find", help="Compares every pair of prompts; with many graphs this takes a while"):
        _proposals(kb, actor, pool, show_family)
    if actor is not None and actor.can(LABELLER):
        _edit_form(kb, actor, show_family)


def _proposals(kb: Any, actor: Any, pool: Selection, show_family: Callable[[str | None], None]) -> None:
    found = state.family_proposals(state.version(), pool)
    limits = found.thresholds
    st.caption(
        "Graphs whose prompts mean the same in any language (multilingual sentence model, cosine at least "
        f"{limits['prompt_similarity']}) and whose features overlap (Jaccard at least {limits['shared_features']}), "
        "of one model and transcoder set. Accepting one makes it a family for every question."
    )
    if not found.proposals:
        st.text(f"No group of graphs asks the same thing among these {found.n_graphs} graphs.")
    else:
        st.dataframe(_proposal_frame(found.proposals), hide_index=True, width="stretch", key="families-proposals")
    can_write = actor is not None and actor.can(LABELLER)
    for proposal in found.proposals:
        key = _key(proposal.slugs)
        with st.container(border=True):
            st.text(f"{proposal.name} ({proposal.status})")
            st.dataframe(_member_frame(proposal), hide_index=True, width="stretch", key=f"{key}-members")
            if proposal.status == ACCEPTED or not can_write:
                continue
            with st.form(f"{key}-accept"):
                name = st.text_input("Family name", value=proposal.name, key=f"{key}-name")
                moving = False
                if proposal.status == PARTIAL:
                    moving = st.checkbox(
                        "Move graphs that are in another family already", key=f"{key}-replace",
                        help="A family declared in a manifest or accepted before is kept unless you tick this.",
                    )
                if st.form_submit_button("Accept as a family", key=f"{key}-submit"):
                    run_write(lambda: _accept(kb, actor, proposal, name, moving, show_family), "Family saved.")
    if found.proposals and not can_write:
        st.caption("Sign in as a labeller to accept a family.")
    if found.kept_apart:
        st.markdown("**Same question, kept apart** (their features cannot be compared)")
        frame = pd.DataFrame([k.as_dict() for k in found.kept_apart], columns=["slug_a", "slug_b", "prompt_similarity", "reason"])
        st.dataframe(frame, hide_index=True, width="stretch", key="families-apart")


def _accept(kb: Any, actor: Any, proposal: FamilyProposal, name: str, moving: bool, show_family: Callable[[str | None], None]) -> None:
    change = api.accept_proposal(kb, actor, proposal, name, replace=moving)
    show_family(change.family or proposal.name)


def _clear(kb: Any, actor: Any, name: str, show_family: Callable[[str | None], None]) -> None:
    api.clear_family(kb, actor, name)
    show_family(None)


def _edit_form(kb: Any, actor: Any, show_family: Callable[[str | None], None]) -> None:
    """Rename a family, or clear it (its graphs stay, without a family); the page then shows the
    renamed family, or no family."""
    names = [f.name for f in state.families(state.version())]
    if not names:
        return
    box = st.expander("Rename or clear a family", key="families-edit-open", on_change="rerun")
    if not box.open:  # its widgets are made (and sent) once it is opened
        return
    with box:
        chosen = st.selectbox("Family", names, key="families-edit-family")
        new = st.text_input("New name", key="families-edit-name")
        rename, clear = st.columns(2)
        if rename.button("Rename", key="families-edit-rename"):
            run_write(lambda: show_family(api.rename_family(kb, actor, chosen, new).family), "Family renamed.")
        if clear.button("Clear", key="families-edit-clear", help="Take every graph out of this family"):
            run_write(lambda: _clear(kb, actor, chosen, show_family), "Family cleared.")


def _proposal_frame(proposals: tuple[FamilyProposal, ...]) -> pd.DataFrame:
    rows = [
        {
            "name": p.name,
            "status": p.status,
            "graphs": len(p.slugs),
            "languages": ", ".join(p.languages),
            "prompt similarity": round(p.prompt_similarity, 3),
            "shared features": round(p.shared_features, 3),
            "features in all": p.common_features,
            "outputs in all": ", ".join(p.shared_outputs),
            "transcoder set": p.transcoder_set,
        }
        for p in proposals
    ]
    return pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)


def _member_frame(proposal: FamilyProposal) -> pd.DataFrame:
    rows = [
        {
            "graph": slug,
            "language": proposal.language_of[slug] or "",
            "prompt": proposal.prompts[slug],
            "outputs": ", ".join(proposal.outputs[slug]),
            "family now": proposal.current[slug] or "",
        }
        for slug in proposal.slugs
    ]
    return pd.DataFrame(rows, columns=["graph", "language", "prompt", "outputs", "family now"])


def _key(slugs: tuple[str, ...]) -> str:
    """A widget key prefix stable for one group of graphs, whatever their slugs hold."""
    return "fp-" + hashlib.sha256("\n".join(slugs).encode("utf-8")).hexdigest()[:12]
