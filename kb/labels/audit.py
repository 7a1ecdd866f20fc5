"""The audit log: one row per write, added in the write's own transaction.

Nothing here changes or deletes a row; admins read the log with :func:`read`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select

from kb.registry import now
from schema.sql import audit_log

if TYPE_CHECKING:
    from kb.core import Core
    from kb.labels.accounts import Actor


def record(conn: Connection, actor: str, action: str, target: Any, detail: dict[str, Any]) -> None:
    """Add one entry; ``detail`` must never hold a password or token."""
    conn.execute(insert(audit_log).values(at=now(), actor=actor, action=action, target=str(target)[:200], detail=detail))


def read(core: "Core", actor: "Actor", limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first (admins only)."""
    from kb.labels.accounts import authorize
    from schema.sql import ADMIN

    with core.engine.connect() as conn:
        authorize(conn, actor, ADMIN)
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).all()
    return [{"id": r.id, "at": iso(r.at), "actor": r.actor, "action": r.action, "target": r.target, "detail": r.detail} for r in rows]


def aware(value: datetime) -> datetime:
    """A stored time with its zone (SQLite gives times back without one; they are UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso(value: datetime | None) -> str | None:
    return None if value is None else aware(value).astimezone(timezone.utc).isoformat()
