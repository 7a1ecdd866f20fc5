"""The floor of the embedded store's writes on this machine, for comparison with ``bench.ingest``.

    python -m bench.ingest_floor [--graphs 100] [--links 4226] [--edges 1386] [--per-transaction 1]
                                 [--budget CORPUS]

Writes, with nothing but Python's sqlite3 and one transaction per graph, the rows that cost the
most in an ingest into the embedded store (the defaults are the generated corpus's per-graph
means): each link (a table keyed by graph, source, target, place, with an index by target), each
per-graph feature edge (keyed by source, target, graph, with an index by graph) and its totals
(one upsert statement per graph). No nodes, features, path groups or registry, no parsing: an
ingest that writes these rows cannot be faster than this. Prints links/s, with the indexes kept
as rows arrive and built once at the end. ``--per-transaction N`` commits N graphs at a time: the
pages of the edge tables that every graph rewrites are then written once per N graphs.

``--budget CORPUS`` also times each part alone (the link rows; the feature edge rows with their
totals) and parsing the corpus's files with ``read_graph``, as seconds of one core per million links, and
prints the fastest whole ingest those parts allow on this machine's cores even if they ran
perfectly in parallel: cores divided by their summed cost per link. Nodes, features, path groups
and the registry are left out, so the real ceiling is lower.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from ingest.graphfile import read_graph
from ingest.paths import expand_paths

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


PARTS = ("links", "edges")


def floor(
    graphs: int,
    links: int,
    edges: int,
    indexes_after: bool,
    per_transaction: int = 1,
    seed: int = 0,
    parts: tuple[str, ...] = PARTS,
    keep_in: Path | None = None,
) -> float:
    """Seconds to write ``graphs`` graphs of ``links`` links and ``edges`` feature edges each,
    ``per_transaction`` graphs per transaction; ``parts`` says which rows are written (the links,
    the feature edges with their totals), the same rows generated either way. The database is
    thrown away, or kept as ``keep_in``/floor.sqlite."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}: choose among {PARTS}")
    rng = random.Random(seed)
    nodes, features = links // 10 + 1, edges * 5
    per_graph = []
    for g in range(graphs):
        ends = sorted((rng.randrange(nodes), rng.randrange(nodes)) for _ in range(links))
        link_rows = [(g, s, t, i, rng.random()) for i, (s, t) in enumerate(ends)]
        edge_keys = {(rng.randrange(features), rng.randrange(features)) for _ in range(edges)}
        per_graph.append((link_rows, [(s, t, g, rng.random(), 1) for s, t in sorted(edge_keys)]))
    with tempfile.TemporaryDirectory() as scratch:
        db = sqlite3.connect(os.path.join(keep_in or scratch, "floor.sqlite"), isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-262144", "wal_autocheckpoint=16384"):
            db.execute(f"PRAGMA {pragma}")
        for statement in _TABLES + (() if indexes_after else _INDEXES):
            db.execute(statement)
        started = time.perf_counter()
        for g, (link_rows, edge_rows) in enumerate(per_graph):
            if g % per_transaction == 0:
                db.execute("BEGIN")
            if "links" in parts:
                db.executemany("INSERT INTO links VALUES (?, ?, ?, ?, ?)", link_rows)
            if "edges" in parts:
                db.executemany("INSERT INTO edges VALUES (?, ?, ?, ?, ?)", edge_rows)
                db.execute(_ADD_TOTALS, (g,))
            if g % per_transaction == per_transaction - 1 or g == graphs - 1:
                db.execute("COMMIT")
        for statement in _INDEXES if indexes_after else ():
            db.execute(statement)
        seconds = time.perf_counter() - started
        db.close()
    return seconds


def parse_seconds(files: list[Path]) -> tuple[float, int]:
    """Seconds to parse ``files`` with ``read_graph`` in this process, and their links."""
    started, links = time.perf_counter(), 0
    for path in files:
        links += read_graph(path).n_links
    return time.perf_counter() - started, links


def budget(corpus: Path, graphs: int, links: int, edges: int, per_transaction: int, cores: int) -> list[str]:
    """Each part's cost per million links, and the whole-ingest rate the parts allow on ``cores``."""
    files = expand_paths([corpus])[:graphs]  # an error for a folder without graph files
    parse, parsed_links = parse_seconds(files)
    total = graphs * links
    cost = {"parse (read_graph)": parse / parsed_links * 1e6}
    for name, parts in (("link rows", ("links",)), ("feature edge rows and their totals", ("edges",))):
        cost[name] = floor(graphs, links, edges, False, per_transaction, parts=parts) / total * 1e6
    lines = [f"{name}: {seconds:.2f} seconds of one core per million links" for name, seconds in cost.items()]
    summed = sum(cost.values())
    lines.append(
        f"together {summed:.2f} seconds of one core per million links: on {cores} cores, even run perfectly in parallel, "
        f"at most {cores / summed * 1e6:,.0f} links/s whole ingest (nodes, features, path groups and registry not counted)"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=100)
    parser.add_argument("--links", type=int, default=4226, help="links per graph")
    parser.add_argument("--edges", type=int, default=1386, help="feature edges per graph")
    parser.add_argument("--per-transaction", type=int, default=1, help="graphs committed together")
    parser.add_argument("--budget", type=Path, metavar="CORPUS", help="also time each part alone and parsing this corpus's files")
    args = parser.parse_args()
    if min(args.graphs, args.links, args.edges, args.per_transaction) < 1:
        parser.error("every count must be at least 1")
    total = args.graphs * args.links
    print(f"load average {os.getloadavg()[0]:.2f}")
    for indexes_after in (False, True):
        seconds = floor(args.graphs, args.links, args.edges, indexes_after, args.per_transaction)
        how = "indexes built at the end" if indexes_after else "indexes kept as rows arrive"
        print(f"{args.graphs} graphs, {total:,} links, {args.per_transaction} per transaction, {how}: {seconds:.2f} s, {total / seconds:,.0f} links/s")
    if args.budget:
        for line in budget(args.budget, args.graphs, args.links, args.edges, args.per_transaction, os.cpu_count() or 1):
            print(line)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
