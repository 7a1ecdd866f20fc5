"""What only admins do: change the labelling settings and read the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kb import registry
from kb.core import Core
from kb.labels import audit, settings
from kb.labels.accounts import Actor, authorize
from kb.registry import dialect_insert
from schema.sql import ADMIN, audit_log, kb_meta


def set_setting(core: Core, actor: Actor, name: str, value: Any) -> Any:
    """Change a setting (admins only); ``value`` may be text as typed. Returns the stored value."""
    setting = settings.setting_named(name)
    parsed = settings.parse_value(setting, str(value))
    with core.engine.begin() as conn:
        stmt = dialect_insert(conn, kb_meta).values(key=settings.SETTING_PREFIX + name, value=str(parsed))
        conn.execute(stmt.on_conflict_do_update(index_elements=[kb_meta.c.key], set_={"value": str(parsed)}))
        authorize(conn, actor, ADMIN)
        audit.record(conn, actor.name, "setting.set", name, {"value": parsed})
    return parsed


def read_audit_log(core: Core, actor: Actor, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first (admins only)."""
    with core.engine.connect() as conn:
        authorize(conn, actor, ADMIN)
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).all()
    return [{"id": r.id, "at": registry.iso(r.at), "actor": r.actor, "action": r.action, "target": r.target, "detail": r.detail} for r in rows]
