"""Reads of one question run beside each other: its joins over thousands of graphs a chunk of
graphs at a time, two chunks at once (:func:`read_in_parts`), and a read begun while the question
does other work (:func:`started`).

The chunks are independent, each on a connection of its own: the database steps through one
chunk's join while Python turns the other's rows into answers (the SQLite and PostgreSQL drivers
let other threads run while a statement steps). That pays where the database does much work per
row returned, as in a chain join (each path several index seeks). Reads that return rows about as
fast as Python takes them (rows by key) got slower split in two, the threads taking turns at the
interpreter on every row, so they are read whole. More than two readers would only contend for
the two cores these machines have.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence, TypeVar

from sqlalchemy import Connection, Engine

READERS = max(1, min(2, os.cpu_count() or 1))

K = TypeVar("K")
T = TypeVar("T")


def chunks(items: Sequence[K], size: int) -> Iterator[list[K]]:
    """``items`` a slice of ``size`` at a time, each a list."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def read_in_parts(engine: Engine, items: Sequence[K], read: Callable[[Connection, list[K]], T], size: int) -> list[T]:
    """``read(conn, part)`` for each part of ``size`` items, in order, up to :data:`READERS` at
    once, each part on a connection of its own from ``engine``'s pool (so a part must not rely on
    what another wrote in its transaction)."""
    parts = list(chunks(items, size))

    def run(part: list[K]) -> T:
        with engine.connect() as conn:
            return read(conn, part)

    if len(parts) < 2 or READERS < 2:
        return [run(part) for part in parts]
    with ThreadPoolExecutor(max_workers=min(READERS, len(parts)), thread_name_prefix="circuitkb-read") as pool:
        return list(pool.map(run, parts))


def started(read: Callable[..., T], *args: Any) -> Future[T]:
    """``read(*args)`` begun on a thread of its own; its ``result()`` waits for it (and raises
    what it raised). A question that fails before asking leaves it to finish alone."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="circuitkb-read")
    try:
        return pool.submit(read, *args)
    finally:
        pool.shutdown(wait=False)
