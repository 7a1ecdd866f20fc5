"""The schemas: migrations create exactly the models, and everything applies idempotently."""

from __future__ import annotations

from typing import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kb.api import KB
from kb.config import Config
from kb.sqldb import make_engine, migrate, schema_head
from schema.graph_schema import STATEMENTS
from schema.sql import metadata


@pytest.mark.parametrize("sql", ["sqlite", "postgres"])
def test_migrations_create_exactly_the_models_and_rerun_cleanly(sql: str, kb_env: Callable[[str, str], dict[str, str]]) -> None:
    config = Config.load(env=kb_env(sql, "embedded"))
    config.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.sql_url)
    migrate(engine)
    migrate(engine)  # a second run changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []



def test_schema_head_is_alembics_and_an_up_to_date_database_skips_alembic(
    kb_env: Callable[[str, str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from kb import sqldb

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(sqldb._SCHEMA_DIR / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_heads() == [schema_head()]
    config = Config.load(env=kb_env("sqlite", "embedded"))
    config.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.sql_url)
    upgrades: list[str] = []
    real_upgrade = command.upgrade
    monkeypatch.setattr(command, "upgrade", lambda cfg, rev: (upgrades.append(rev), real_upgrade(cfg, rev)))
    migrate(engine)  # a new database: Alembic creates the tables
    migrate(engine)  # at the newest revision: one query, no Alembic
    assert upgrades == ["head"]
    assert sqldb._at_head(engine)
    with engine.begin() as conn:  # a database behind the newest migration goes through Alembic
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    assert not sqldb._at_head(engine)
    engine.dispose()


@pytest.mark.neo4j
def test_neo4j_constraints_apply_idempotently(make_kb: Callable[..., KB]) -> None:
    kb = make_kb("sqlite", "neo4j")
    kb.store.setup()  # KB.open applied them once already
    names = {r["name"] for r in kb.store.run_read("SHOW CONSTRAINTS YIELD name", {})}
    assert {"feature_fid", "feature_key", "graph_gid"} <= names
    indexes = {r["name"] for r in kb.store.run_read("SHOW INDEXES YIELD name", {})}
    assert {"node_gid_idx", "node_fid"} <= indexes
    assert all("IF NOT EXISTS" in s for s in STATEMENTS)
