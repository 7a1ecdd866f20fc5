"""Votes on labels: one per person per label, counted exactly under parallel voters.

A vote is an upsert on the unique (label, voter) pair, so a repeated vote replaces the earlier
one. In the same transaction the label's row is locked (PostgreSQL: ``SELECT ... FOR UPDATE``;
SQLite: the upsert took the database's write lock), its up and down votes are recounted from
``label_votes`` and stored on the label, and its status follows the ``votes_to_accept`` setting
unless an admin decided it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, update

from kb import registry
from kb.errors import NotFoundError
from kb.labels import audit, settings
from kb.labels.accounts import Actor, authorize
from kb.labels.labels import MAX_NOTE, clean_text
from schema.sql import ACCEPTED, LABELLER, PROPOSED, REJECTED, label_votes, labels

if TYPE_CHECKING:
    from kb.core import Core

VOTES = "votes"  # status_by of a status the votes decided


def vote(core: "Core", actor: Actor, label_id: int, up: bool = True, reason: str | None = None) -> dict[str, Any]:
    """Vote a label up or down (again: the new vote replaces yours); needs the labeller role.

    Returns the label's up_votes, down_votes and status after the vote.
    """
    reason = clean_text(reason, "reason", MAX_NOTE) if reason and reason.strip() else None
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        needed = settings.read(conn, "votes_to_accept")
        if conn.execute(select(labels.c.id).where(labels.c.id == label_id).with_for_update()).first() is None:
            raise NotFoundError(f"no label with id {label_id}")
        stamp = registry.now()
        value = 1 if up else -1
        stmt = registry.dialect_insert(conn, label_votes).values(
            label_id=label_id, voter=actor.name, value=value, reason=reason, created_at=stamp, updated_at=stamp
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[label_votes.c.label_id, label_votes.c.voter],
                set_={"value": value, "reason": reason, "updated_at": stamp},
            )
        )
        result = recount(conn, label_id, needed)
        audit.record(conn, actor.name, "label.vote", label_id, {"value": value})
    return result


def recount(conn: Connection, label_id: int, needed: int) -> dict[str, Any]:
    """Count a label's votes into its row and let them decide its status (caller's transaction)."""
    v = label_votes.c
    up, down = conn.execute(
        select(func.count().filter(v.value > 0), func.count().filter(v.value < 0)).where(v.label_id == label_id)
    ).one()
    row = conn.execute(select(labels.c.status, labels.c.status_by).where(labels.c.id == label_id)).one()
    status, status_by = row.status, row.status_by
    if needed > 0 and status_by in (None, VOTES):
        net = up - down
        decided = ACCEPTED if net >= needed else REJECTED if net <= -needed else PROPOSED
        if decided != status:
            status, status_by = decided, (None if decided == PROPOSED else VOTES)
    conn.execute(update(labels).where(labels.c.id == label_id).values(up_votes=up, down_votes=down, status=status, status_by=status_by))
    return {"label_id": label_id, "up_votes": up, "down_votes": down, "status": status}
