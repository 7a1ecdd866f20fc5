"""The audit log: one row per write, added in the write's own transaction.

Nothing here changes or deletes a row; admins read the log with :func:`read`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, insert

from kb.registry import now
from schema.sql import audit_log


def record(conn: Connection, actor: str, action: str, target: Any, detail: dict[str, Any]) -> None:
    """Add one entry; ``detail`` must never hold a password or token."""
    conn.execute(insert(audit_log).values(at=now(), actor=actor, action=action, target=str(target)[:200], detail=detail))


def aware(value: datetime) -> datetime:
    """A stored time with its zone (SQLite gives times back without one; they are UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso(value: datetime | None) -> str | None:
    return None if value is None else aware(value).astimezone(timezone.utc).isoformat()
