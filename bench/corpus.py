"""The generated corpus and the knowledge bases that the analysis benchmarks share.

Everything lives in a work folder: ``corpus-SIZE`` (graphs and manifest), ``kb-NAME-STORE``
(the knowledge base home), ``neo4j-NAME`` (a development Neo4j server of our own) and
``ingest-NAME-STORE.json`` (the ingest figures, kept for later reports).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from kb.aggregates.check import rebuild
from kb.aggregates.reads import paths_stale_reason
from kb.api import KB
from kb.config import Config

log = logging.getLogger("bench.corpus")


def corpus(work: Path, size: int) -> Path:
    """The folder of the seeded synthetic corpus of ``size`` graphs, generated if missing."""
    folder = work / f"corpus-{size}"
    if not (folder / "manifest.csv").exists():
        from synth import generate_corpus

        log.info("generating %d graphs in %s", size, folder)
        generate_corpus(folder, size, seed=0, workers=os.cpu_count() or 1)
    return folder


def open_bench_kb(work: Path, name: str, store: str, port: int, heap: str, pagecache: str) -> KB:
    """The knowledge base ``name`` on ``store``; for Neo4j, its own server is started first."""
    env = {"CIRCUITKB_HOME": str(work / f"kb-{name}-{store}")}
    if store == "neo4j":
        from devserver import neo4j as neo4j_dev

        home = work / f"neo4j-{name}"
        info = neo4j_dev.start(home, port=port, heap=heap, pagecache=pagecache)
        env.update(CIRCUITKB_NEO4J_URI=info.uri, CIRCUITKB_NEO4J_USER=info.user, CIRCUITKB_NEO4J_PASSWORD=(home / "password").read_text().strip())
    kb = KB.open(Config.load(env=env))
    with kb.engine.connect() as conn:
        stale = paths_stale_reason(conn)  # any of the aggregates, the path groups among them
    if stale is not None:  # a knowledge base ingested before the aggregates existed
        log.info("rebuilding the aggregates of %s (%s)", name, stale)
        rebuild(kb)
    return kb


def ingest_once(kb: KB, work: Path, name: str, store: str, folder: Path, expected: int) -> dict[str, Any]:
    """Ingest ``folder`` unless the KB already holds ``expected`` graphs; the ingest figures
    (an ingest interrupted and finished later keeps both parts)."""
    stamp = work / f"ingest-{name}-{store}.json"
    if kb.stats()["graphs"] < expected:
        log.info("ingesting %s into the %s store", folder, store)
        manifest = folder / "manifest.csv"
        report = kb.ingest([folder], manifest=manifest if manifest.exists() else None)
        figures: dict[str, Any] = {"graphs": len(report.ingested), "links": report.links, "seconds": round(report.seconds, 1), "failed": len(report.failed)}
        figures["links_per_second"] = round(report.links / report.seconds) if report.seconds else None
        previous = json.loads(stamp.read_text()) if stamp.exists() else None
        if previous and previous.get("graphs"):
            figures = {"parts": [previous, figures]}
        stamp.write_text(json.dumps(figures))
    return json.loads(stamp.read_text()) if stamp.exists() else {}
