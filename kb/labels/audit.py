"""The audit log: one row per write, added in the write's own transaction.

Nothing here changes or deletes a row; admins read it with :func:`kb.labels.admin.read_audit_log`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from kb.registry import now
from schema.sql import audit_log


def record(conn: Connection, actor: str, action: str, target: Any, detail: dict[str, Any]) -> None:
    """Add one entry; ``detail`` must never hold a password or token."""
    conn.execute(insert(audit_log).values(at=now(), actor=actor, action=action, target=str(target)[:200], detail=detail))
