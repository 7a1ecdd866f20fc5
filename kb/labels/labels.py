"""Labels people write on features: versions, review status, discussion, activity.

Every write takes the acting :class:`~kb.labels.accounts.Actor` and checks its role in the
write's transaction. An edit names the version it was based on and is a compare-and-set
(``UPDATE labels ... WHERE id = :id AND version = :base``): when someone else saved first, no
row matches and :class:`~kb.errors.EditConflict` carries what they saved. Each saved version is
kept in ``label_versions``; a revert copies an old version into a new one. The ``labels`` row is
the current version, which search, comparisons and circuits read as before.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case, insert, select, union_all, literal, update

from ingest.featurefiles import MAX_SLUG
from ingest.records import FeatureKey
from kb import registry
from kb.descriptions import imported_descriptions
from kb.errors import CircuitKBError, EditConflict, NotFoundError
from kb.labels import audit
from kb.labels.accounts import Actor, authorize
from schema.sql import (
    ADMIN,
    LABEL_STATUSES,
    LABELLER,
    PROPOSED,
    VIEWER,
    comments,
    features,
    label_versions,
    label_votes,
    labels,
)

if TYPE_CHECKING:
    from kb.core import Core

MAX_TEXT = 2000
MAX_NOTE = 10_000
MAX_NODE_ID = 200
_KEEP = object()  # an edit that leaves the note or confidence as they are


@dataclass(frozen=True)
class LabelRef:
    """A saved label: its id, the number of its current version, and its uuid."""

    id: int
    version: int
    uuid: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "uuid": self.uuid}


# --- writing ------------------------------------------------------------------------------------------


def add(
    core: "Core",
    actor: Actor,
    feature: FeatureKey,
    text: str,
    *,
    note: str | None = None,
    confidence: float | None = None,
    graph_slug: str | None = None,
    node_id: str | None = None,
) -> LabelRef:
    """Label ``feature`` everywhere, in one graph (``graph_slug``) or on one node of it
    (``graph_slug`` and ``node_id``); needs the labeller role. The label starts ``proposed``."""
    if not isinstance(feature, FeatureKey):
        raise CircuitKBError(f"feature must be a FeatureKey, got {type(feature).__name__}")
    text = clean_text(text, "label text", MAX_TEXT)
    note = _optional(note, "note", MAX_NOTE)
    confidence = check_confidence(confidence)
    if node_id is not None and graph_slug is None:
        raise CircuitKBError("a label on a node names its graph too (--graph SLUG --node NODE_ID)")
    node_id = _optional(node_id, "node id", MAX_NODE_ID)
    if graph_slug is not None:
        graph_slug = clean_text(graph_slug, "graph slug", MAX_SLUG)
        graph = core.graph_row(graph_slug)  # NotFoundError for a graph that is not stored
        if node_id is not None and not core.store.find_nodes(graph.id, node_id):
            raise NotFoundError(f"graph {graph_slug} has no node {node_id!r}")
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        fid = registry.ensure_features(conn, [feature])[feature]
        return insert_label(conn, fid, actor.name, text, note=note, confidence=confidence, graph_slug=graph_slug, node_id=node_id)


def insert_label(
    conn: Connection,
    fid: int,
    author: str,
    text: str,
    *,
    note: str | None = None,
    confidence: float | None = None,
    graph_slug: str | None = None,
    node_id: str | None = None,
) -> LabelRef:
    """Write a new label and its version 1 in the caller's transaction (roles already checked)."""
    stamp = registry.now()
    label_uuid = str(uuidlib.uuid4())
    label_id = conn.execute(
        insert(labels)
        .values(
            uuid=label_uuid, feature_id=fid, graph_slug=graph_slug, node_id=node_id, author=author, text=text,
            note=note, confidence=confidence, status=PROPOSED, version=1, edited_by=author, created_at=stamp, updated_at=stamp,
        )
        .returning(labels.c.id)
    ).scalar_one()
    conn.execute(
        insert(label_versions).values(
            label_id=label_id, version=1, action="create", text=text, note=note, confidence=confidence, editor=author, created_at=stamp
        )
    )
    audit.record(conn, author, "label.add", label_id, {"version": 1, "text": text})
    return LabelRef(label_id, 1, label_uuid)


def edit(
    core: "Core",
    actor: Actor,
    label_id: int,
    text: str,
    base_version: int,
    *,
    note: Any = _KEEP,
    confidence: Any = _KEEP,
) -> LabelRef:
    """Save a new version of a label, based on version ``base_version``; needs the labeller role.

    Raises EditConflict (with the text saved since) when the label is no longer at that version.
    """
    text = clean_text(text, "label text", MAX_TEXT)
    values: dict[str, Any] = {"text": text}
    if note is not _KEEP:
        values["note"] = _optional(note, "note", MAX_NOTE)
    if confidence is not _KEEP:
        values["confidence"] = check_confidence(confidence)
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        return _save_version(conn, actor, label_id, base_version, values, "edit", base_version)


def revert(core: "Core", actor: Actor, label_id: int, to_version: int, base_version: int | None = None) -> LabelRef:
    """Make version ``to_version`` current again, as a new version; needs the labeller role.

    ``base_version`` is the version the reverter saw (default: the current one when read here);
    EditConflict when someone saved since.
    """
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        old = conn.execute(
            select(label_versions.c.text, label_versions.c.note, label_versions.c.confidence).where(
                label_versions.c.label_id == label_id, label_versions.c.version == to_version
            )
        ).first()
        if old is None:
            _current(conn, label_id)  # NotFoundError for an unknown label
            raise NotFoundError(f"label {label_id} has no version {to_version}; `circuitkb labels show` lists its history")
        if base_version is None:
            base_version = _current(conn, label_id).version
        values = {"text": old.text, "note": old.note, "confidence": old.confidence}
        return _save_version(conn, actor, label_id, base_version, values, "revert", to_version)


def _save_version(conn: Connection, actor: Actor, label_id: int, base: int, values: dict[str, Any], action: str, based_on: int) -> LabelRef:
    stamp = registry.now()
    changed = conn.execute(
        update(labels)
        .where(labels.c.id == label_id, labels.c.version == base)
        .values(**values, version=labels.c.version + 1, edited_by=actor.name, updated_at=stamp)
    ).rowcount
    current = _current(conn, label_id)
    if changed != 1:
        raise EditConflict(
            f"label {label_id} was changed by {current.edited_by or current.author} (now version {current.version}) since "
            f"version {base} that this edit is based on; their text: {current.text!r}. Merge and edit again with --base-version {current.version}",
            current.version,
            current.text,
            current.edited_by,
        )
    conn.execute(
        insert(label_versions).values(
            label_id=label_id, version=current.version, action=action, based_on=based_on, text=current.text,
            note=current.note, confidence=current.confidence, editor=actor.name, created_at=stamp,
        )
    )
    audit.record(conn, actor.name, f"label.{action}", label_id, {"version": current.version, "based_on": based_on, "text": current.text})
    return LabelRef(label_id, current.version, current.uuid)


def set_status(core: "Core", actor: Actor, label_id: int, status: str) -> None:
    """Accept, reject or re-open a label (admins only); votes no longer change it afterwards."""
    if status not in LABEL_STATUSES:
        raise CircuitKBError(f"status must be one of {', '.join(LABEL_STATUSES)}; got {status!r}")
    with core.engine.begin() as conn:
        authorize(conn, actor, ADMIN)
        if not conn.execute(update(labels).where(labels.c.id == label_id).values(status=status, status_by=actor.name)).rowcount:
            raise NotFoundError(f"no label with id {label_id}")
        audit.record(conn, actor.name, "label.status", label_id, {"status": status})


def comment(core: "Core", actor: Actor, feature: FeatureKey, text: str) -> int:
    """Add to a feature's discussion; needs the labeller role. Returns the comment's id."""
    text = clean_text(text, "comment", MAX_NOTE)
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        fid = registry.ensure_features(conn, [feature])[feature]
        comment_id = conn.execute(
            insert(comments)
            .values(uuid=str(uuidlib.uuid4()), feature_id=fid, author=actor.name, text=text, created_at=registry.now())
            .returning(comments.c.id)
        ).scalar_one()
        audit.record(conn, actor.name, "comment.add", comment_id, {"feature": str(feature)})
    return comment_id


# --- reading ------------------------------------------------------------------------------------------


def label(core: "Core", label_id: int) -> dict[str, Any]:
    """One label as :func:`labels_of_feature` lists it."""
    with core.engine.connect() as conn:
        row = conn.execute(_label_query().where(labels.c.id == label_id)).first()
    if row is None:
        raise NotFoundError(f"no label with id {label_id}")
    return label_dict(row)


def labels_of_feature(core: "Core", feature: FeatureKey, graph_slug: str | None = None, node_id: str | None = None) -> list[dict[str, Any]]:
    """A feature's labels, most up-voted first (net votes, then accepted before proposed before
    rejected, then oldest). With ``graph_slug`` only the labels that apply there: the feature's
    labels everywhere, in that graph, and (with ``node_id``) on that node."""
    with core.engine.connect() as conn:
        fid = registry.lookup_features(conn, [feature]).get(feature)
        if fid is None:
            return []
        rows = [label_dict(r) for r in conn.execute(_label_query().where(labels.c.feature_id == fid))]
    if graph_slug is not None:
        rows = [
            r for r in rows
            if r["graph_slug"] is None or (r["graph_slug"] == graph_slug and (r["node_id"] is None or r["node_id"] == node_id))
        ]
    return rank(rows)


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    status_order = {"accepted": 0, "proposed": 1, "rejected": 2}
    return sorted(rows, key=lambda r: (-(r["up_votes"] - r["down_votes"]), status_order.get(r["status"], 3), r["created_at"] or "", r["id"]))


def _label_query() -> Any:
    f = features.c
    return select(labels, f.transcoder_set, f.layer, f["index"]).select_from(labels.join(features, f.id == labels.c.feature_id))


def label_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "uuid": row.uuid,
        "feature": {"transcoder_set": row.transcoder_set, "layer": row.layer, "index": row.index},
        "graph_slug": row.graph_slug,
        "node_id": row.node_id,
        "text": row.text,
        "note": row.note,
        "confidence": row.confidence,
        "author": row.author,
        "edited_by": row.edited_by,
        "version": row.version,
        "status": row.status,
        "status_by": row.status_by,
        "up_votes": row.up_votes,
        "down_votes": row.down_votes,
        "created_at": registry.iso(row.created_at),
        "updated_at": registry.iso(row.updated_at),
    }


def history(core: "Core", label_id: int) -> list[dict[str, Any]]:
    """Every version of a label, oldest first: version, action, based_on, text, note, confidence, editor, created_at."""
    v = label_versions.c
    with core.engine.connect() as conn:
        _current(conn, label_id)
        rows = conn.execute(select(label_versions).where(v.label_id == label_id).order_by(v.version)).all()
    return [
        {
            "version": r.version, "action": r.action, "based_on": r.based_on, "text": r.text, "note": r.note,
            "confidence": r.confidence, "editor": r.editor, "created_at": registry.iso(r.created_at),
        }
        for r in rows
    ]


def votes_on(core: "Core", label_id: int) -> list[dict[str, Any]]:
    """Every vote on a label: voter, value (+1 / -1), reason, updated_at; newest first."""
    c = label_votes.c
    with core.engine.connect() as conn:
        rows = conn.execute(select(label_votes).where(c.label_id == label_id).order_by(c.updated_at.desc(), c.id.desc())).all()
    return [{"voter": r.voter, "value": r.value, "reason": r.reason, "updated_at": registry.iso(r.updated_at)} for r in rows]


def comments_of(core: "Core", feature: FeatureKey) -> list[dict[str, Any]]:
    """A feature's discussion, oldest first."""
    with core.engine.connect() as conn:
        fid = registry.lookup_features(conn, [feature]).get(feature)
        if fid is None:
            return []
        rows = conn.execute(select(comments).where(comments.c.feature_id == fid).order_by(comments.c.created_at, comments.c.id)).all()
    return [{"id": r.id, "author": r.author, "text": r.text, "created_at": registry.iso(r.created_at)} for r in rows]


def show(core: "Core", feature: FeatureKey, graph_slug: str | None = None, node_id: str | None = None) -> dict[str, Any]:
    """Everything about a feature's labelling: ranked labels with their votes and history, the
    discussion, and the imported descriptions (kept apart from people's labels)."""
    found = labels_of_feature(core, feature, graph_slug, node_id)
    for item in found:
        item["votes"] = votes_on(core, item["id"])
        item["history"] = history(core, item["id"])
    return {
        "feature": str(feature),
        "labels": found,
        "comments": comments_of(core, feature),
        "descriptions": imported_descriptions(core, feature),
    }


def activity(core: "Core", limit: int = 50) -> list[dict[str, Any]]:
    """The newest label versions and votes, newest first: at, kind (label | vote), who, label_id,
    feature, text (the version's text, or the voted label's), value (+1 / -1 for votes)."""
    v, vt, lab, f = label_versions.c, label_votes.c, labels.c, features.c
    versions_q = select(
        v.created_at.label("at"), literal("label").label("kind"), v.editor.label("who"), v.label_id, v.text,
        v.action.label("what"), literal(0).label("value"),
    ).order_by(v.created_at.desc()).limit(limit)
    votes_q = select(
        vt.updated_at.label("at"), literal("vote").label("kind"), vt.voter.label("who"), vt.label_id, lab.text,
        case((vt.value > 0, "up"), else_="down").label("what"), vt.value,
    ).select_from(label_votes.join(labels, lab.id == vt.label_id)).order_by(vt.updated_at.desc()).limit(limit)
    merged = union_all(versions_q.subquery().select(), votes_q.subquery().select()).subquery()
    query = (
        select(merged, f.transcoder_set, f.layer, f["index"])
        .select_from(merged.join(labels, lab.id == merged.c.label_id).join(features, f.id == lab.feature_id))
        .order_by(merged.c.at.desc())
        .limit(limit)
    )
    with core.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "at": registry.iso(r.at), "kind": r.kind, "what": r.what, "who": r.who, "label_id": r.label_id,
            "feature": f"{r.transcoder_set}/L{r.layer}/{r.index}", "text": r.text, "value": r.value or None,
        }
        for r in rows
    ]


def can_read(core: "Core", actor: Actor) -> None:
    """PermissionDenied unless ``actor`` may read (every account, and allowed anonymous visitors)."""
    with core.engine.connect() as conn:
        authorize(conn, actor, VIEWER)


# --- helpers -------------------------------------------------------------------------------------------


def _current(conn: Connection, label_id: int) -> Any:
    row = conn.execute(select(labels).where(labels.c.id == label_id)).first()
    if row is None:
        raise NotFoundError(f"no label with id {label_id}")
    return row


def clean_text(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CircuitKBError(f"{what} is required and must not be empty")
    value = value.strip()
    if len(value) > max_length:
        raise CircuitKBError(f"{what} is longer than {max_length} characters")
    return value


def _optional(value: Any, what: str, max_length: int) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return clean_text(value, what, max_length)


def check_confidence(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CircuitKBError(f"confidence is a number from 0 to 1; got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise CircuitKBError(f"confidence is a number from 0 to 1; got {number}")
    return number

