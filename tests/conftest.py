"""Shared fixtures: a fresh knowledge base on every SQL database and graph store.

Services come from the environment that scripts/test.sh sets up:
  CIRCUITKB_TEST_PG_URL        a PostgreSQL URL whose user may create databases
  CIRCUITKB_TEST_NEO4J_URI     plus _USER and _PASSWORD: a Neo4j server the tests may wipe
Without them a test that needs one is skipped on a laptop, and fails under CI (CI=true).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from kb.api import KB
from kb.config import Config

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GRAPHS = DATA / "graphs"
FEATURES = DATA / "features"

KB_VARIANTS = [("sqlite", "embedded"), ("postgres", "embedded"), ("sqlite", "neo4j"), ("postgres", "neo4j")]


def real_graph(prefix: str) -> Path:
    """The real graph file whose name starts with ``prefix`` (e.g. "02")."""
    matches = sorted(GRAPHS.glob(f"{prefix}*.json"))
    if len(matches) != 1:
        raise LookupError(f"expected one graph named {prefix}* in {GRAPHS}, found {len(matches)}")
    return matches[0]


def need_service(name: str, *env: str) -> dict[str, str]:
    values = {k: os.environ.get(k, "") for k in env}
    missing = [k for k, v in values.items() if not v]
    if missing:
        message = f"{name} is not available: {', '.join(missing)} not set (scripts/test.sh starts it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return values


def _admin_pg_url() -> str:
    return need_service("PostgreSQL", "CIRCUITKB_TEST_PG_URL")["CIRCUITKB_TEST_PG_URL"]


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; dropped afterwards."""
    import psycopg

    admin = _admin_pg_url()
    name = f"ck_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def neo4j_settings() -> dict[str, str]:
    return need_service("Neo4j", "CIRCUITKB_TEST_NEO4J_URI", "CIRCUITKB_TEST_NEO4J_PASSWORD")


def wipe_neo4j(settings: dict[str, str]) -> None:
    from neo4j import GraphDatabase

    auth = (os.environ.get("CIRCUITKB_TEST_NEO4J_USER") or "neo4j", settings["CIRCUITKB_TEST_NEO4J_PASSWORD"])
    with GraphDatabase.driver(settings["CIRCUITKB_TEST_NEO4J_URI"], auth=auth) as driver:
        with driver.session() as session:  # CALL ... IN TRANSACTIONS needs an auto-commit transaction
            session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 20000 ROWS").consume()


@pytest.fixture
def kb_env(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str, str], dict[str, str]]:
    """Environment variables (as the CLI reads them) for a fresh KB on (sql, store)."""

    def make(sql: str, store: str) -> dict[str, str]:
        env = {"CIRCUITKB_HOME": str(tmp_path / "home")}
        if sql == "postgres":
            env["CIRCUITKB_SQL_URL"] = request.getfixturevalue("pg_database")
        if store == "neo4j":
            settings = neo4j_settings()
            wipe_neo4j(settings)
            env["CIRCUITKB_NEO4J_URI"] = settings["CIRCUITKB_TEST_NEO4J_URI"]
            env["CIRCUITKB_NEO4J_USER"] = os.environ.get("CIRCUITKB_TEST_NEO4J_USER") or "neo4j"
            env["CIRCUITKB_NEO4J_PASSWORD"] = settings["CIRCUITKB_TEST_NEO4J_PASSWORD"]
        return env

    return make


@pytest.fixture
def make_kb(kb_env: Callable[[str, str], dict[str, str]]) -> Iterator[Callable[..., KB]]:
    """Open KBs on (sql, store); all are closed at the end of the test."""
    opened: list[KB] = []

    def make(sql: str = "sqlite", store: str = "embedded", env: dict[str, str] | None = None) -> KB:
        env = env or kb_env(sql, store)
        kb = KB.open(Config.load(env=env))
        opened.append(kb)
        return kb

    yield make
    for kb in opened:
        kb.close()


@pytest.fixture(params=KB_VARIANTS, ids=[f"{s}-{g}" for s, g in KB_VARIANTS])
def kb(request: pytest.FixtureRequest, make_kb: Callable[..., KB]) -> KB:
    """A fresh KB, once per SQL database and graph store."""
    sql, store = request.param
    return make_kb(sql, store)


@pytest.fixture
def sqlite_kb(make_kb: Callable[..., KB]) -> KB:
    return make_kb("sqlite", "embedded")
