"""The shared SQL reads' building blocks, on each SQL database."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from sqlalchemy import select

from kb.config import Config
from kb.sqldb import make_engine, migrate
from kb.sqlqueries import keys_table


@pytest.mark.parametrize("sql", ["sqlite", "postgres"])
@pytest.mark.parametrize(
    "keys",
    [
        [(3, 1), (1, 7), (3, 1), (2, 0)],  # small: packed into one integer per key on SQLite
        [(1, 2, 3), (1, 2, 2), (0, 0, 0)],
        [(5,), (4,), (5,)],
        [(2**40, 1), (1, 2**30)],  # 71 bits side by side: a list of lists instead
        [(-1, 4), (2, 3)],  # a negative value: likewise
        [(2**62, 2**62)],
    ],
    ids=["pairs", "triples", "single", "too-wide", "negative", "huge"],
)
def test_keys_table_gives_each_distinct_key_once_in_order(sql: str, keys: list[tuple[int, ...]], kb_env: Callable[[str, str], dict[str, Any]]) -> None:
    config = Config.load(env=kb_env(sql, "embedded"))
    config.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.sql_url)
    migrate(engine)
    names = [f"c{i}" for i in range(len(keys[0]))]
    with engine.connect() as conn:
        table = keys_table(conn, keys, names)
        got = [tuple(row) for row in conn.execute(select(*table.c).order_by(*table.c))]
    engine.dispose()
    assert got == sorted(set(keys))


def test_keys_table_with_a_float_column(kb_env: Callable[[str, str], dict[str, Any]]) -> None:
    config = Config.load(env=kb_env("sqlite", "embedded"))
    config.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.sql_url)
    migrate(engine)
    with engine.connect() as conn:
        table = keys_table(conn, [(1, 0.5), (1, 0.25)], ("gid", "floor"), real=("floor",))
        got = [tuple(row) for row in conn.execute(select(*table.c).order_by(*table.c))]
    engine.dispose()
    assert got == [(1, 0.25), (1, 0.5)]
