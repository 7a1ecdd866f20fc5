"""The schemas: migrations create exactly the models, and everything applies idempotently."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kb.api import KB
from kb.config import Config
from kb.sqldb import make_engine, migrate, schema_head
from schema.graph_schema import STATEMENTS
from schema.sql import graph_nodes, metadata
from tests.conftest import alembic_config, engine_at_revision


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
    from alembic.script import ScriptDirectory

    from kb import sqldb

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [schema_head()]
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


@pytest.mark.parametrize("sql", ["sqlite", "postgres"])
def test_migration_0008_gives_stored_nodes_their_input_totals(sql: str, kb_env: Callable[[str, str], dict[str, str]]) -> None:
    engine = engine_at_revision(kb_env(sql, "embedded"), "0007")
    # nodes and links as the embedded store kept them before 0008: two graphs, some nodes without input
    rng = np.random.default_rng(7)
    nodes = sa.table("graph_nodes", *(sa.column(c) for c in ("graph_id", "idx", "node_id", "kind", "feature_type", "layer", "layer_num", "ctx_idx")))
    links = sa.table("graph_links", *(sa.column(c) for c in ("graph_id", "idx", "src", "tgt", "weight")))
    expected: dict[tuple[int, int], float] = {}
    with engine.begin() as conn:
        for gid, n_nodes, n_links in ((3, 40, 300), (9, 25, 0)):
            conn.execute(nodes.insert(), [{"graph_id": gid, "idx": i, "node_id": f"n{i}", "kind": "feature", "feature_type": "cross layer transcoder", "layer": "1", "layer_num": 1, "ctx_idx": 0} for i in range(n_nodes)])
            src, tgt = rng.integers(0, n_nodes, n_links), rng.integers(0, n_nodes // 2, n_links)
            weight = rng.normal(size=n_links)
            if n_links:
                conn.execute(links.insert(), [{"graph_id": gid, "idx": i, "src": int(a), "tgt": int(b), "weight": float(w)} for i, (a, b, w) in enumerate(zip(src, tgt, weight))])
            totals = np.zeros(n_nodes)
            np.add.at(totals, tgt, np.abs(weight))
            expected.update({(gid, i): float(t) for i, t in enumerate(totals)})
    migrate(engine)
    with engine.connect() as conn:
        got = {(g, i): t for g, i, t in conn.execute(sa.select(graph_nodes.c.graph_id, graph_nodes.c.idx, graph_nodes.c.input_total))}
    engine.dispose()
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(v, rel=1e-12, abs=0.0) for k, v in expected.items())
    assert sum(1 for v in got.values() if v == 0.0) >= 25 + 20 and all(got[(9, i)] == 0.0 for i in range(25))
