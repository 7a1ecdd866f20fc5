"""The labelling components of the app: who is signed in, a feature's labelling panel, and the
feed of recent labels and votes.

Pages call :func:`sign_in_box` once (say in the sidebar), :func:`label_panel` (on a feature
page, or for a selected node of a graph page) and :func:`activity_feed` (the labels page). Every write goes through
:mod:`kb.labels` with the signed-in actor, so the roles are checked there. Text people wrote
is shown only with ``st.text`` and ``st.dataframe``, never as Markdown or HTML: messages that
Streamlit renders as Markdown (errors, expander titles) carry no user text.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import streamlit as st

from ingest.records import FeatureKey
from kb import labels as api
from kb.errors import CircuitKBError, EditConflict, SignInFailed
from kb.labels.accounts import Actor
from kb.descriptions import imported_descriptions

TOKEN_KEY = "labelling-token"
DONE_KEY = "labelling-done"
SHOWN_LABELS = 20
_LABEL_COLUMNS = ["id", "text", "status", "up_votes", "down_votes", "confidence", "scope", "author", "edited_by", "version"]


def short_times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """``frame`` with its time columns (ISO text) shown to the minute, in UTC."""
    out = frame.copy()
    for column in columns:
        if column in out:
            out[column] = [_minute(v) for v in out[column]]
    return out


def _minute(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:  # SQLite gives stored times back without their zone: they are UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- who is signed in ------------------------------------------------------------------------------------


def current_user(kb: Any) -> Actor | None:
    """The actor of this browser session: the local user without accounts, the signed-in user,
    an anonymous viewer when the admins allow them, else None (sign-in needed)."""
    if not api.has_accounts(kb):
        return api.local_actor()
    token = st.session_state.get(TOKEN_KEY)
    if token:
        try:
            return api.actor_for_token(kb, token)
        except SignInFailed:
            del st.session_state[TOKEN_KEY]
    try:
        return api.anonymous(kb)
    except SignInFailed:
        return None


def sign_in_box(kb: Any) -> Actor | None:
    """Who is acting, with a sign-in form (or a sign-out button) when the knowledge base has
    accounts; returns :func:`current_user` after any sign-in."""
    if not api.has_accounts(kb):
        return current_user(kb)
    actor = current_user(kb)
    if actor is not None and actor.signed_in:
        st.text(f"Signed in as {actor.name} ({actor.role})")
        if st.button("Sign out", key="labelling-sign-out"):
            api.sign_out(kb, st.session_state.pop(TOKEN_KEY))
            st.rerun()
        return actor
    with st.form("labelling-sign-in"):
        name = st.text_input("User name", key="labelling-sign-in-name")
        password = st.text_input("Password", type="password", key="labelling-sign-in-password")
        if st.form_submit_button("Sign in", key="labelling-sign-in-submit"):
            try:
                session = api.sign_in(kb, name.strip(), password)
            except SignInFailed as exc:
                show_error(exc)
            else:
                st.session_state[TOKEN_KEY] = session.token
                st.rerun()
    return actor


# --- the labelling panel -------------------------------------------------------------------------------------


def label_panel(kb: Any, feature: FeatureKey, graph_slug: str | None = None, node_id: str | None = None, *, descriptions: bool = True) -> None:
    """A feature's labels ranked by votes, with status, votes, history, edit and vote controls,
    a form to add one, the feature's discussion, and (unless the page shows them already,
    ``descriptions=False``) the imported descriptions.

    The page shows :func:`sign_in_box` once (e.g. in the sidebar); the panel acts as
    :func:`current_user` and only offers what that user's role allows (kb checks it again)."""
    actor = current_user(kb)
    if actor is None:
        st.info("Sign in to see and write labels.")
        return
    if DONE_KEY in st.session_state:
        st.success(st.session_state.pop(DONE_KEY))
    prefix = _prefix(feature, graph_slug, node_id)
    rows = api.labels_of_feature(kb, feature, graph_slug, node_id)
    st.subheader("Labels")
    if rows:
        st.dataframe(_label_frame(rows), hide_index=True, width="stretch", key=f"{prefix}-table")
    else:
        st.text("No labels yet.")
    for item in rows[:SHOWN_LABELS]:
        with st.container(border=True):
            st.text(item["text"])  # people's text, shown as text
            st.text(f"label {item['id']} · version {item['version']} · {item['status']} · +{item['up_votes']} / -{item['down_votes']} · {item['author']}")
            with st.expander(f"Label {item['id']}: note, votes, history, edit"):
                _one_label(kb, actor, item, f"{prefix}-{item['id']}")
    if actor.can("labeller"):
        _add_form(kb, actor, feature, graph_slug, node_id, prefix)
    _discussion(kb, actor, feature, prefix)
    described = imported_descriptions(kb, feature) if descriptions else []
    if described:
        st.subheader("Imported descriptions")
        frame = pd.DataFrame(described, columns=["source", "kind", "author", "text", "graph_slug"])
        st.dataframe(frame, hide_index=True, width="stretch", key=f"{prefix}-descriptions")


def _one_label(kb: Any, actor: Actor, item: dict[str, Any], key: str) -> None:
    if item["note"]:
        st.text(item["note"])
    votes = api.votes_on(kb, item["id"])
    if votes:
        st.dataframe(pd.DataFrame(votes), hide_index=True, width="stretch", key=f"{key}-votes")
    history = api.history(kb, item["id"])
    st.dataframe(
        short_times(pd.DataFrame(history, columns=["version", "action", "based_on", "editor", "created_at", "text", "note", "confidence"]), "created_at"),
        hide_index=True, width="stretch", key=f"{key}-history",
    )
    if not actor.can("labeller"):
        return
    reason = st.text_input("Reason for your vote (optional)", key=f"{key}-reason")
    up, down = st.columns(2)
    if up.button("Vote up", key=f"{key}-up"):
        run_write(lambda: api.vote(kb, actor, item["id"], up=True, reason=reason), "Vote saved.")
    if down.button("Vote down", key=f"{key}-down"):
        run_write(lambda: api.vote(kb, actor, item["id"], up=False, reason=reason), "Vote saved.")
    _edit_form(kb, actor, item, key)
    versions = [h["version"] for h in history if h["version"] != item["version"]]
    if versions:
        target = st.selectbox("Revert to version", versions, key=f"{key}-revert-to")
        if st.button("Revert", key=f"{key}-revert"):
            run_write(lambda: api.revert(kb, actor, item["id"], int(target), item["version"]), "Reverted.")
    if actor.can("admin"):
        status = st.selectbox("Status", ["proposed", "accepted", "rejected"], index=["proposed", "accepted", "rejected"].index(item["status"]), key=f"{key}-status")
        if st.button("Set status", key=f"{key}-set-status"):
            run_write(lambda: api.set_status(kb, actor, item["id"], status), "Status saved.")


def _edit_form(kb: Any, actor: Actor, item: dict[str, Any], key: str) -> None:
    """Edit based on the version shown when the editor started; a conflict shows the other text."""
    base_key = f"{key}-base"
    st.session_state.setdefault(base_key, item["version"])
    with st.form(f"{key}-edit"):
        text = st.text_area("New text", value=item["text"], key=f"{key}-edit-text")
        st.text(f"Based on version {st.session_state[base_key]}")
        if st.form_submit_button("Save edit", key=f"{key}-edit-submit"):
            try:
                saved = api.edit(kb, actor, item["id"], text, st.session_state[base_key])
            except EditConflict as exc:
                st.error(f"Someone saved this label since you started: it is now version {exc.current_version}. Their text:")
                st.text(exc.current_text)
                st.session_state[base_key] = exc.current_version  # merge by hand, then save again
            except CircuitKBError as exc:
                show_error(exc)
            else:
                st.session_state[base_key] = saved.version
                st.success(f"Saved as version {saved.version}.")


def _add_form(kb: Any, actor: Actor, feature: FeatureKey, graph_slug: str | None, node_id: str | None, prefix: str) -> None:
    st.subheader("Add a label")
    with st.form(f"{prefix}-add", clear_on_submit=True):
        text = st.text_input("Label", key=f"{prefix}-add-text")
        note = st.text_area("Note (optional)", key=f"{prefix}-add-note")
        confidence = st.slider("Confidence", 0.0, 1.0, 0.5, 0.05, key=f"{prefix}-add-confidence")
        scopes = ["this feature everywhere"]
        if graph_slug:
            scopes.append("this feature in this graph")
            if node_id:
                scopes.append("this node only")
        scope = st.radio("About", scopes, key=f"{prefix}-add-scope")
        if st.form_submit_button("Add label", key=f"{prefix}-add-submit"):
            slug = graph_slug if scope != scopes[0] else None
            node = node_id if scope == "this node only" else None
            run_write(lambda: api.add(kb, actor, feature, text, note=note or None, confidence=confidence, graph_slug=slug, node_id=node), "Label added.")


def _discussion(kb: Any, actor: Actor, feature: FeatureKey, prefix: str) -> None:
    st.subheader("Discussion")
    found = api.comments_of(kb, feature)
    if found:
        st.dataframe(short_times(pd.DataFrame(found, columns=["created_at", "author", "text"]), "created_at"), hide_index=True, width="stretch", key=f"{prefix}-comments")
    else:
        st.text("No comments yet.")
    if actor.can("labeller"):
        with st.form(f"{prefix}-comment", clear_on_submit=True):
            text = st.text_area("Comment", key=f"{prefix}-comment-text")
            if st.form_submit_button("Post comment", key=f"{prefix}-comment-submit"):
                run_write(lambda: api.comment(kb, actor, feature, text), "Comment posted.")


def activity_feed(kb: Any, limit: int = 50) -> None:
    """The newest label versions and votes, as a table (for the labels page)."""
    if current_user(kb) is None:
        st.info("Sign in to see recent labelling.")
        return
    rows = api.activity(kb, limit)
    if not rows:
        st.text("No labels or votes yet.")
        return
    frame = pd.DataFrame(rows, columns=["at", "kind", "what", "who", "feature", "label_id", "text", "value"])
    st.dataframe(frame, hide_index=True, width="stretch", key="labelling-activity")


# --- helpers ------------------------------------------------------------------------------------------------


def _label_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    out = []
    for r in rows:
        scope = "everywhere" if r["graph_slug"] is None else r["graph_slug"] + (f" / {r['node_id']}" if r["node_id"] else "")
        out.append({**{k: r.get(k) for k in _LABEL_COLUMNS}, "scope": scope})
    return pd.DataFrame(out, columns=_LABEL_COLUMNS)


def _prefix(feature: FeatureKey, graph_slug: str | None, node_id: str | None) -> str:
    """A widget key prefix that is stable for one panel and safe whatever the ids hold."""
    digest = hashlib.sha256(f"{feature}|{graph_slug}|{node_id}".encode("utf-8")).hexdigest()[:12]
    return f"lp-{digest}"


def run_write(call: Any, done: str) -> None:
    """Run a write; on success rerun (so every table shows it) and say ``done`` once."""
    try:
        call()
    except CircuitKBError as exc:  # PermissionDenied names the role needed
        show_error(exc)
    else:
        st.session_state[DONE_KEY] = done
        st.rerun()


def show_error(exc: Exception) -> None:
    """An error without the user's text in Markdown: its message shown as plain text."""
    st.error("That did not work:")
    st.text(str(exc))
