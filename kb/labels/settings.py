"""Settings of collaborative labelling, stored in SQL (table ``kb_meta``) so that every process
and server of one knowledge base agrees. Declared as data: name, type, default, help."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from kb.errors import CircuitKBError

from schema.sql import kb_meta

if TYPE_CHECKING:
    from kb.core import Core

SETTING_PREFIX = "labels."


@dataclass(frozen=True)
class LabelSetting:
    name: str
    kind: type
    default: Any
    help: str


SETTINGS: dict[str, LabelSetting] = {
    s.name: s
    for s in (
        LabelSetting("votes_to_accept", int, 3, "net up-votes (up minus down) that accept a proposed label, and net down-votes that reject it; 0: only admins decide"),
        LabelSetting("anonymous_read", bool, False, "visitors who do not sign in may read (as viewers) once accounts exist"),
        LabelSetting("session_hours", int, 12, "hours a sign-in session lasts"),
    )
}


def get(core: "Core", name: str) -> Any:
    with core.engine.connect() as conn:
        return read(conn, name)


def read(conn: Connection, name: str) -> Any:
    """A setting's value, read in the caller's transaction."""
    setting = setting_named(name)
    raw = conn.execute(select(kb_meta.c.value).where(kb_meta.c.key == SETTING_PREFIX + name)).scalar()
    return setting.default if raw is None else parse_value(setting, raw)


def all_settings(core: "Core") -> dict[str, Any]:
    return {name: get(core, name) for name in SETTINGS}


def setting_named(name: str) -> LabelSetting:
    if name not in SETTINGS:
        raise CircuitKBError(f"no labelling setting {name!r}; there are {', '.join(SETTINGS)}")
    return SETTINGS[name]


def parse_value(setting: LabelSetting, raw: str) -> Any:
    if setting.kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise CircuitKBError(f"{setting.name} is yes or no; got {raw!r}")
    try:
        value = setting.kind(raw)
    except ValueError:
        raise CircuitKBError(f"{setting.name} is a whole number; got {raw!r}") from None
    if value < 0:
        raise CircuitKBError(f"{setting.name} must not be negative; got {value}")
    return value
