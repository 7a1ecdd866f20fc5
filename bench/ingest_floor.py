"""The floor of the embedded store's writes on this machine, for comparison with ``bench.ingest``.

    python -m bench.ingest_floor [--graphs 100] [--links 4226] [--edges 1386] [--per-transaction 1]

Writes, with nothing but Python's sqlite3 and one transaction per graph, the rows that cost the
most in an ingest into the embedded store (the defaults are the generated corpus's per-graph
means): each link (a table keyed by graph, source, target, place, with an index by target), each
per-graph feature edge (keyed by source, target, graph, with an index by graph) and its totals
(one upsert statement per graph). No nodes, features, path groups or registry, no parsing: an
ingest that writes these rows cannot be faster than this. Prints links/s, with the indexes kept
as rows arrive and built once at the end. ``--per-transaction N`` commits N graphs at a time: the
pages of the edge tables that every graph rewrites are then written once per N graphs.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time

_TABLES = (
    "CREATE TABLE links (g INT, s INT, t INT, i INT, w REAL, PRIMARY KEY (g, s, t, i)) WITHOUT ROWID",
    "CREATE TABLE edges (s INT, t INT, g INT, w REAL, n INT, PRIMARY KEY (s, t, g)) WITHOUT ROWID",
    "CREATE TABLE totals (s INT, t INT, n INT, w REAL, a REAL, lo REAL, hi REAL, nl INT, PRIMARY KEY (s, t)) WITHOUT ROWID",
)
_INDEXES = ("CREATE INDEX links_by_target ON links (g, t, s)", "CREATE INDEX edges_by_graph ON edges (g, s, t)")
_ADD_TOTALS = (
    "INSERT INTO totals SELECT s, t, 1, w, abs(w), w, w, n FROM edges WHERE g = ? "
    "ON CONFLICT (s, t) DO UPDATE SET n = n + 1, w = w + excluded.w, a = a + excluded.a, "
    "lo = min(lo, excluded.lo), hi = max(hi, excluded.hi), nl = nl + excluded.nl"
)


def floor(graphs: int, links: int, edges: int, indexes_after: bool, per_transaction: int = 1, seed: int = 0) -> float:
    """Seconds to write ``graphs`` graphs of ``links`` links and ``edges`` feature edges each,
    ``per_transaction`` graphs per transaction."""
    rng = random.Random(seed)
    nodes, features = links // 10 + 1, edges * 5
    per_graph = []
    for g in range(graphs):
        ends = sorted((rng.randrange(nodes), rng.randrange(nodes)) for _ in range(links))
        link_rows = [(g, s, t, i, rng.random()) for i, (s, t) in enumerate(ends)]
        edge_keys = {(rng.randrange(features), rng.randrange(features)) for _ in range(edges)}
        per_graph.append((link_rows, [(s, t, g, rng.random(), 1) for s, t in sorted(edge_keys)]))
    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(os.path.join(folder, "floor.sqlite"), isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-262144", "wal_autocheckpoint=16384"):
            db.execute(f"PRAGMA {pragma}")
        for statement in _TABLES + (() if indexes_after else _INDEXES):
            db.execute(statement)
        started = time.perf_counter()
        for g, (link_rows, edge_rows) in enumerate(per_graph):
            if g % per_transaction == 0:
                db.execute("BEGIN")
            db.executemany("INSERT INTO links VALUES (?, ?, ?, ?, ?)", link_rows)
            db.executemany("INSERT INTO edges VALUES (?, ?, ?, ?, ?)", edge_rows)
            db.execute(_ADD_TOTALS, (g,))
            if g % per_transaction == per_transaction - 1 or g == graphs - 1:
                db.execute("COMMIT")
        for statement in _INDEXES if indexes_after else ():
            db.execute(statement)
        seconds = time.perf_counter() - started
        db.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=100)
    parser.add_argument("--links", type=int, default=4226, help="links per graph")
    parser.add_argument("--edges", type=int, default=1386, help="feature edges per graph")
    parser.add_argument("--per-transaction", type=int, default=1, help="graphs committed together")
    args = parser.parse_args()
    if min(args.graphs, args.links, args.edges, args.per_transaction) < 1:
        parser.error("every count must be at least 1")
    total = args.graphs * args.links
    print(f"load average {os.getloadavg()[0]:.2f}")
    for indexes_after in (False, True):
        seconds = floor(args.graphs, args.links, args.edges, indexes_after, args.per_transaction)
        how = "indexes built at the end" if indexes_after else "indexes kept as rows arrive"
        print(f"{args.graphs} graphs, {total:,} links, {args.per_transaction} per transaction, {how}: {seconds:.2f} s, {total / seconds:,.0f} links/s")


if __name__ == "__main__":
    main()
