"""The SQL database: engine creation and migrations."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from sqlalchemy import Engine, column, create_engine, event, inspect, select, table
from sqlalchemy.exc import DBAPIError, OperationalError

from kb.config import redact_url
from kb.errors import StoreUnavailable

log = logging.getLogger(__name__)

_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
WAL_CHECKPOINT_PAGES = 16384


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA cache_size=-262144")
            # the write-ahead log is copied into the database (and synced) every 16,384 pages
            # (64 MB) rather than SQLite's 1,000: the aggregates' pages, which every ingested
            # graph rewrites, are then copied once per checkpoint rather than every few commits
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cur.close()

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_pre_ping=True)


_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|(None))\s*$", re.MULTILINE)


def schema_head() -> str | None:
    """The newest migration's revision, read from the files of ``schema/migrations/versions``
    without loading Alembic; None when they do not form one plain chain (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_SCHEMA_DIR / "migrations" / "versions").glob("*.py"):
        found = {m.group(1): m.group(2) or m.group(3) for m in _REVISION.finditer(path.read_text(encoding="utf-8"))}
        if "revision" not in found or "down_revision" not in found:
            return None
        revisions.add(found["revision"])
        if found["down_revision"]:
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the database already has every migration (one query; Alembic costs 0.2 s to import)."""
    head = schema_head()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            found = conn.execute(select(column("version_num")).select_from(table("alembic_version"))).scalars().all()
    except DBAPIError:  # no such table yet, or the server is down: Alembic says which
        return False
    return found == [head]


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    if _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(str(_SCHEMA_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(_SCHEMA_DIR / "migrations"))
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # one migrator at a time when several processes start together
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(715517)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the SQL database {redact_url(str(engine.url))}: {exc.orig}") from exc


def current_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
