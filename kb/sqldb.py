"""The SQL database: engine creation and migrations."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import OperationalError

from kb.config import redact_url
from kb.errors import StoreUnavailable

log = logging.getLogger(__name__)

_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"


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
            cur.close()

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
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
