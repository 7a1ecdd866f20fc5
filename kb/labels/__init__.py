"""Collaborative labelling: people and roles, labels with versions and votes, discussion,
saved subgraphs, and exchange files. Every function takes a :class:`kb.core.Core`; every write
also takes the acting :class:`Actor` (see :mod:`kb.labels.accounts`)."""

from kb.labels.accounts import (
    Actor,
    Session,
    acting_user,
    actor_for_token,
    add_user,
    anonymous,
    authenticate,
    has_accounts,
    list_users,
    local_actor,
    remove_user,
    set_role,
    sign_in,
    sign_out,
)
from kb.labels.admin import read_audit_log as audit_log, set_setting
from kb.labels.exchange import ImportReport, export_jsonl, import_jsonl
from kb.labels.labels import (
    LabelRef,
    activity,
    add,
    comment,
    comments_of,
    edit,
    history,
    label,
    labels_of_feature,
    revert,
    set_status,
    show,
    votes_on,
)
from kb.labels.subgraphs import FILE_VIEW, save as save_subgraph, subgraph, subgraphs_of, viewer_json
from kb.labels.votes import vote

__all__ = [
    "Actor", "Session", "acting_user", "actor_for_token", "add_user", "anonymous", "authenticate", "has_accounts",
    "list_users", "local_actor", "remove_user", "set_role", "sign_in", "sign_out", "audit_log", "set_setting", "ImportReport",
    "export_jsonl", "import_jsonl", "LabelRef", "activity", "add", "comment", "comments_of", "edit", "history", "label",
    "labels_of_feature", "revert", "set_status", "show", "votes_on", "FILE_VIEW", "save_subgraph", "subgraph",
    "subgraphs_of", "viewer_json", "vote",
]
