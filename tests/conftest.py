"""Shared fixtures: a fresh knowledge base on every SQL database and graph store.

Services come from the environment that scripts/test.sh sets up:
  CIRCUITKB_TEST_PG_URL        a PostgreSQL URL whose user may create databases
  CIRCUITKB_TEST_NEO4J_URI     plus _USER and _PASSWORD: a Neo4j server the tests may wipe
The real graphs and feature files are read in place from ../shared/data, beside the checkout.
Without a service or the data, a test that needs it is skipped on a laptop, and fails under CI
(CI=true).

Markers, so that a loop can leave out what it lacks (``pytest -m "not slow"``):
  neo4j, postgres   set here from the parameters of a test (the ``kb`` fixture's ``sqlite-neo4j``,
                    ``postgres-embedded``, ...), or written on a test that opens one itself
  real_data         set here on every test that reads ../shared/data: its code, a fixture it uses or
                    a helper of the tests refers to DATA, GRAPHS, FEATURES or a path under them
                    (or calls real_graph); checked before the test runs
  slow              written on the long tests (large files, kill -9, server restarts, the demo)

The session runs with its own CIRCUITKB_HOME and without the caller's CIRCUITKB_SQL_URL and
CIRCUITKB_NEO4J_* settings, so that no test reads or writes the user's knowledge base.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import types
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
from sqlalchemy import Engine

from kb.api import KB
from kb.config import SETTINGS, Config

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GRAPHS = DATA / "graphs"
FEATURES = DATA / "features"

KB_VARIANTS = [("sqlite", "embedded"), ("postgres", "embedded"), ("sqlite", "neo4j"), ("postgres", "neo4j")]


# The name prefixes of the real graph files (a test can be parametrized over them without the data).
REAL_GRAPH_PREFIXES = ("01", "02", "03", "04", "05", "06", "07", "08", "10")

_SESSION_HOME: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _SESSION_HOME
    _SESSION_HOME = Path(tempfile.mkdtemp(prefix="circuitkb-test-home-"))
    # none of the user's own settings reaches a test (a model, a search index, a password ...)
    for setting in SETTINGS:
        os.environ.pop(setting.env, None)
    os.environ["CIRCUITKB_HOME"] = str(_SESSION_HOME)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_HOME is not None:
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark a test neo4j or postgres when one of its parameters names that service, and real_data
    when its code reads the real data."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        values: list[object] = []
        for value in (callspec.params.values() if callspec is not None else ()):
            values.extend(value if isinstance(value, (tuple, list)) else [value])
        for service in ("neo4j", "postgres"):
            if service in values:
                item.add_marker(service)
        if item.get_closest_marker("real_data") is None and _reads_real_data(item):
            item.add_marker("real_data")


def _reads_real_data(item: pytest.Item) -> bool:
    test = getattr(item, "obj", None)
    functions = [getattr(test, "__func__", test)]
    fixture_defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    functions += [defs[-1].func for defs in fixture_defs.values() if defs]
    seen: set[int] = set()
    return any(_refers_to_real_data(f, seen) for f in functions if isinstance(f, types.FunctionType))


def _refers_to_real_data(function: types.FunctionType, seen: set[int]) -> bool:
    """True if the function, its nested code, or a test helper it calls names the real data."""
    if id(function) in seen:
        return False
    seen.add(id(function))
    names: set[str] = set()
    codes = [function.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    for name in names:
        value: Any = function.__globals__.get(name)
        if _is_real_data_path(value):
            return True
        if (isinstance(value, types.FunctionType) and value.__module__.startswith("tests")
                and _refers_to_real_data(value, seen)):
            return True
    return False


def _is_real_data_path(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_is_real_data_path(v) for v in value)
    return isinstance(value, Path) and (value == DATA or DATA in value.parents)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("real_data") is not None:
        need_real_data()


def need_real_data() -> None:
    """Skip (fail under CI=true) when the real graphs and feature files are not beside the checkout."""
    missing = [folder for folder in (GRAPHS, FEATURES) if not folder.is_dir()]
    if missing:
        message = (f"the real data are not here: {', '.join(map(str, missing))} missing "
                   "(tests read ../shared/data beside the checkout)")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def real_graph(prefix: str) -> Path:
    """The real graph file whose name starts with ``prefix`` (e.g. "02"); skips without the data."""
    need_real_data()
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


SCHEMA = Path(__file__).resolve().parents[1] / "schema"


def alembic_config() -> "AlembicConfig":
    """Alembic's configuration for the project's migrations, as kb.sqldb.migrate makes it."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(str(SCHEMA / "alembic.ini"))
    cfg.set_main_option("script_location", str(SCHEMA / "migrations"))
    return cfg


def engine_at_revision(env: dict[str, str], revision: str) -> Engine:
    """An engine on the SQL database of ``env`` (from ``kb_env``), its schema migrated up to
    ``revision`` only: rows written there as an older version kept them, a test then runs
    the later migrations (:func:`kb.sqldb.migrate`) over them."""
    from alembic import command

    from kb.sqldb import make_engine

    config = Config.load(env=env)
    config.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.sql_url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return engine


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
