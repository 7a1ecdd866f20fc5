"""The schemas: migrations create exactly the models, and everything applies idempotently."""

from __future__ import annotations

from typing import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kb.api import KB
from kb.config import Config
from kb.sqldb import make_engine, migrate
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


@pytest.mark.neo4j
def test_neo4j_constraints_apply_idempotently(make_kb: Callable[..., KB]) -> None:
    kb = make_kb("sqlite", "neo4j")
    kb.store.setup()  # KB.open applied them once already
    names = {r["name"] for r in kb.store.run_read("SHOW CONSTRAINTS YIELD name", {})}
    assert {"feature_fid", "feature_key", "graph_gid"} <= names
    indexes = {r["name"] for r in kb.store.run_read("SHOW INDEXES YIELD name", {})}
    assert {"node_gid_idx", "node_fid"} <= indexes
    assert all("IF NOT EXISTS" in s for s in STATEMENTS)
