"""Ingesting graph files: parse, claim in the registry, write to the graph store, publish.

Each graph lands whole or not at all: its registry row stays ``loading`` (invisible) until
the store has every node and link, and a row left ``loading`` by a dead writer is purged by
the next ingest. The transaction that publishes a graph also adds it to the aggregates over the
visible graphs (:mod:`kb.aggregates`) and takes away the version it replaces. Re-ingesting the same content is a no-op (content hash). A changed file under
a slug that exists replaces the old version by default (``on_change="replace"``); ``"skip"``
keeps the old one and ``"fail"`` reports a conflict.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, select

from ingest.graphfile import content_hash, read_graph
from ingest.language import detect_language
from ingest.manifest import Manifest
from ingest.paths import expand_paths
from ingest.records import ParsedGraph
from kb import registry
from kb.aggregates import keep as aggregates
from kb.aggregates.values import of_parsed_graph
from kb.core import Core
from kb.errors import CircuitKBError
from kb.qk_store import qk_rows, write_qk
from schema.sql import LOADING, READY, REMOVED, REPLACED, graphs

log = logging.getLogger(__name__)

ON_CHANGE = ("replace", "skip", "fail")


@dataclass
class IngestReport:
    ingested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def links(self) -> int:
        return sum(item["links"] for item in self.ingested)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ingested": self.ingested,
            "skipped": self.skipped,
            "failed": self.failed,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class IngestProgress:
    """Callbacks the CLI uses to draw a progress bar during an ingest; both optional.

    ``on_links(n)`` is called after each batch of ``n`` more links is written (the graph
    store's own link-progress callback); ``on_graph(path, outcome)`` after each file, with
    ``ingested``, ``unchanged``, ``busy``, ``conflict`` or ``failed``.
    """

    on_links: Callable[[int], None] | None = None
    on_graph: Callable[[str, str], None] | None = None


def recover(core: Core) -> int:
    """Purge graphs left half-written by dead writers, replaced versions and removed graphs
    whose data is still stored; returns how many."""
    with core.engine.connect() as conn:
        rows = conn.execute(
            select(graphs.c.id, graphs.c.status, graphs.c.store, graphs.c.owner, graphs.c.heartbeat_at).where(
                graphs.c.status.in_([LOADING, REPLACED, REMOVED])
            )
        ).all()
    cleaned = 0
    for row in rows:
        if row.status == LOADING and registry.owner_alive(row.owner, row.heartbeat_at):
            continue
        if row.store != core.store.name:
            log.warning("graph %s was left in the %s store, which is not configured now; not purged", row.id, row.store)
            continue
        core.store.purge(row.id)
        with core.engine.begin() as conn:
            registry.forget(conn, row.id)
        cleaned += 1
    if cleaned:
        log.info("purged %d half-written or replaced graph versions", cleaned)
    return cleaned


def ingest_paths(
    core: Core,
    paths: Iterable[str | Path],
    manifest: Manifest | None = None,
    on_change: str = "replace",
    progress: IngestProgress | None = None,
) -> IngestReport:
    if on_change not in ON_CHANGE:
        raise CircuitKBError(f"on_change must be one of {', '.join(ON_CHANGE)}, got {on_change!r}")
    started = time.perf_counter()
    report = IngestReport()
    files = expand_paths(paths)
    recover(core)
    for path in files:
        try:
            outcome = ingest_file(core, path, manifest, on_change, progress)
        except CircuitKBError as exc:
            report.failed.append({"path": str(path), "error": str(exc)})
            outcome = {"outcome": "failed"}
        else:
            report.warnings.extend(outcome.pop("warnings", []))
            if outcome["outcome"] == "ingested":
                report.ingested.append(outcome)
            elif outcome["outcome"] == "conflict":
                report.failed.append({"path": str(path), "error": outcome["reason"]})
            else:
                report.skipped.append(outcome)
        if progress and progress.on_graph:
            progress.on_graph(str(path), outcome["outcome"])
    report.seconds = time.perf_counter() - started
    return report


def ingest_file(
    core: Core, path: Path, manifest: Manifest | None, on_change: str, progress: IngestProgress | None
) -> dict[str, Any]:
    digest = content_hash(path)
    with core.engine.connect() as conn:
        known = conn.execute(
            select(graphs.c.slug).where(graphs.c.content_hash == digest, graphs.c.status == READY)
        ).first()
    if known is not None:
        return {"path": str(path), "slug": known.slug, "outcome": "unchanged", "reason": "same content already stored"}
    parse_started = time.perf_counter()
    graph = read_graph(path, digest=digest)
    parse_seconds = time.perf_counter() - parse_started
    header = graph.header
    claim = registry.claim(core.engine, header, digest, str(path), core.store.name, on_change)
    if claim.action != "write":
        outcome = "conflict" if claim.action == "conflict" else claim.action
        return {"path": str(path), "slug": header.slug, "outcome": outcome, "reason": claim.reason}
    gid = claim.graph_id
    assert gid is not None
    write_started = time.perf_counter()
    try:
        _write(core, path, graph, gid, claim.previous_id, manifest, progress)
    except BaseException:
        _abandon(core, gid)
        raise
    write_seconds = time.perf_counter() - write_started
    if claim.previous_id is not None:
        core.store.purge(claim.previous_id)
        with core.engine.begin() as conn:
            registry.forget(conn, claim.previous_id)
    return {
        "path": str(path),
        "slug": header.slug,
        "outcome": "ingested",
        "graph_id": gid,
        "nodes": len(graph.nodes),
        "links": graph.n_links,
        "features": len(graph.features()),
        "replaced": claim.previous_id is not None,
        "parse_seconds": round(parse_seconds, 4),
        "write_seconds": round(write_seconds, 4),
        "warnings": graph.warnings,
    }


def _write(
    core: Core,
    path: Path,
    graph: ParsedGraph,
    gid: int,
    previous_id: int | None,
    manifest: Manifest | None,
    progress: IngestProgress | None,
) -> None:
    tagging = manifest.lookup(path, graph.header.slug) if manifest else None
    language = (tagging.language if tagging and tagging.language else None) or detect_language(graph.header.prompt)
    keys = graph.features()
    with core.engine.begin() as conn:
        # QK tracing may name features that were pruned out of the graph's nodes: known, not used
        all_ids = registry.ensure_features(conn, keys | graph.qk_features(), core.feature_id_cache)
    feature_ids = {k: all_ids[k] for k in keys}
    qk = qk_rows(gid, graph.qk, graph.nodes, all_ids)
    clerps = [
        (feature_ids[n.feature_key], n.clerp)
        for n in graph.nodes
        if n.feature_key is not None and n.clerp and n.clerp != f"F{n.feature}"  # the CRM converter's placeholder
    ]
    link_extra: dict[str, Any] = {}
    if graph.link_extra:
        link_extra["fields"] = {str(k): v for k, v in graph.link_extra.items()}
    if graph.ambiguous_links:
        link_extra["ambiguous"] = graph.ambiguous_links
    done = registry.Finish(
        n_nodes=len(graph.nodes),
        n_links=graph.n_links,
        n_features=len(keys),
        language=language,
        family=tagging.family if tagging else None,
        tags=list(tagging.tags) if tagging else [],
        clerps=clerps,
        link_extra=link_extra or None,
    )

    def finalize(conn: Connection) -> None:
        # folded here, once the store has let go of its own fold of a big graph's links
        values = of_parsed_graph(gid, graph, feature_ids)
        aggregates.lock(conn)  # first, before any row of the registry is locked
        registry.finish(conn, gid, graph.header.slug, previous_id, done)
        if previous_id is not None and previous_id != gid:
            aggregates.unpublish(conn, previous_id)
        aggregates.publish(conn, values)
        write_qk(conn, gid, qk)

    core.store.write_graph(gid, graph, feature_ids, finalize, progress.on_links if progress else None)


def _abandon(core: Core, gid: int) -> None:
    """Undo a failed write; if even that fails, the row stays 'loading' for the next run."""
    try:
        core.store.purge(gid)
        with core.engine.begin() as conn:
            registry.forget(conn, gid)
    except Exception:  # the original error matters more; recovery will finish the job
        log.exception("could not clean up graph %s after a failed ingest; the next ingest will", gid)
