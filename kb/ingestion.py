"""Ingesting graph files: parse, claim in the registry, write to the graph store, publish.

Each graph lands whole or not at all: its registry row stays ``loading`` (invisible) until
the store has every node and link, and a row left ``loading`` by a dead writer is purged by
the next ingest. The transaction that publishes a graph also adds it to the aggregates over the
visible graphs (:mod:`kb.aggregates`) and takes away the version it replaces. On the embedded
store with SQLite, ordinary graphs are claimed, written and published several at a time in one
transaction, each in a savepoint (see ``BATCH_GRAPHS``). Re-ingesting the same content is a no-op (content hash). A changed file under
a slug that exists replaces the old version by default (``on_change="replace"``); ``"skip"``
keeps the old one and ``"fail"`` reports a conflict.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import Connection, select

from ingest.graphfile import STREAM_THRESHOLD_BYTES, content_hash, read_graph
from ingest.language import detect_language
from ingest.manifest import Manifest
from ingest.paths import expand_paths
from ingest.readahead import ReadAhead
from ingest.records import FeatureKey, ParsedGraph
from kb import registry
from kb.aggregates import keep as aggregates
from kb.aggregates.values import of_parsed_graph
from kb.core import Core
from kb.errors import CircuitKBError
from kb.labels.accounts import Actor, authorize, local_actor
from kb.qk_store import qk_rows, write_qk
from kb.stores.embedded import EmbeddedStore
from schema.sql import ADMIN, LOADING, REMOVED, REPLACED, graphs

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
    store's own link-progress callback), from the writing thread: several at once on a store
    that writes several graphs at once; ``on_graph(path, outcome)`` after each file, in file
    order, from the caller's thread, with ``ingested``, ``unchanged``, ``busy``, ``conflict``
    or ``failed``.
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


# Several files are parsed in a child process ahead of the writer (ingest.readahead) when an
# ingest has at least this many; a single file is parsed where it is written.
READ_AHEAD_MIN_FILES = 3
# files parsed ahead, per writer: enough that a writer never waits for the parser
READ_AHEAD = 2


def ingest_paths(
    core: Core,
    paths: Iterable[str | Path],
    manifest: Manifest | None = None,
    on_change: str = "replace",
    progress: IngestProgress | None = None,
    actor: Actor | None = None,
) -> IngestReport:
    """Ingest graph files, reporting each in the order given; ``actor`` is who adds them (an admin
    once the knowledge base has accounts; by default the local user, who is refused then).

    Files are parsed ahead of the writer in a child process, and a store that takes several
    graphs at once (``GraphStore.concurrent_writes``) gets them from as many threads; each graph
    is still claimed, written and published on its own, as with one file at a time. Claims and
    feature ids are taken here, in file order, so graph and feature ids do not depend on which
    write ends first.
    """
    if on_change not in ON_CHANGE:
        raise CircuitKBError(f"on_change must be one of {', '.join(ON_CHANGE)}, got {on_change!r}")
    with core.engine.begin() as conn:
        authorize(conn, actor or local_actor(), ADMIN)
    started = time.perf_counter()
    report = IngestReport()
    files = expand_paths(paths)
    recover(core)
    writers = max(1, core.store.concurrent_writes) if len(files) > 1 else 1
    with ExitStack() as stack:
        reader = _read_ahead(stack) if len(files) >= READ_AHEAD_MIN_FILES else None
        pool = stack.enter_context(ThreadPoolExecutor(writers, thread_name_prefix="circuitkb-write")) if writers > 1 else None
        parsed = _parsed(core, files, reader, READ_AHEAD * writers)

        def claim(item: _Parsed, conn: Connection | None = None) -> _Job | dict[str, Any]:
            return _claim(core, item, manifest, on_change, conn)

        def write(job: _Job, conn: Connection | None = None) -> dict[str, Any]:
            return _store(core, job, progress, conn)

        batched = _batching_store(core) if pool is None else None
        outcomes = _written_in_batches(core, batched, parsed, claim, write) if batched else _written(parsed, claim, write, pool, writers)
        first_of_slug: dict[str, Path] = {}
        for path, result in outcomes:
            if isinstance(result, CircuitKBError):
                report.failed.append({"path": str(path), "error": str(result)})
                outcome = "failed"
            else:
                outcome = result["outcome"]
                report.warnings.extend(result.pop("warnings", []))
                if outcome == "ingested":
                    report.ingested.append(result)
                    earlier = first_of_slug.setdefault(result["slug"], path)
                    if earlier != path:
                        report.warnings.append(
                            f"{path}: slug {result['slug']!r} was also in {earlier}, ingested earlier in this run; this file's graph replaced it"
                        )
                elif outcome == "conflict":
                    report.failed.append({"path": str(path), "error": f"{path}: {result['reason']}"})
                else:
                    report.skipped.append(result)
            if progress and progress.on_graph:
                progress.on_graph(str(path), outcome)
    report.seconds = time.perf_counter() - started
    return report


def _read_ahead(stack: ExitStack) -> ReadAhead | None:
    """A parsing process, or None (files are then parsed where they are written) when this
    system cannot start one."""
    try:
        return stack.enter_context(ReadAhead())
    except (OSError, ValueError) as exc:
        log.warning("files are parsed one by one in this process: no parsing process (%s)", exc)
        return None


@dataclass
class _Parsed:
    """A file on its way to the store: its digest, and its graph or why it needs no write."""

    path: Path
    digest: str = ""
    graph: ParsedGraph | None = None
    parse_seconds: float = 0.0
    language: str | None = None
    """The prompt's language, when the reader detected it (None: not detected yet, or unknown)."""
    detected: bool = False
    done: dict[str, Any] | CircuitKBError | None = None


def _parsed(core: Core, files: list[Path], reader: ReadAhead | None, ahead: int) -> Iterator[_Parsed]:
    """Each file parsed, in order; a file already stored comes back done, unparsed.

    With a reader, up to ``ahead`` files are being parsed in its process while the caller works;
    a file big enough to be streamed is parsed here, where its memory is counted once.
    """
    with core.engine.connect() as conn:
        stored = registry.ready_hashes(conn)
    queue: deque[tuple[_Parsed, bool]] = deque()
    remaining = iter(files)
    while True:
        while (reader.pending if reader else 0) < ahead:
            path = next(remaining, None)
            if path is None:
                break
            item = _unless_stored(path, stored)
            sent = item.done is None and reader is not None and os.path.getsize(path) <= STREAM_THRESHOLD_BYTES
            if sent:
                assert reader is not None
                reader.submit(path, item.digest)
            queue.append((item, sent))
        if not queue:
            return
        item, sent = queue.popleft()
        if item.done is None:
            try:
                if sent:
                    assert reader is not None
                    item.graph, item.parse_seconds, item.language = reader.take()
                    item.detected = True
                else:
                    parse_started = time.perf_counter()
                    item.graph = read_graph(item.path, digest=item.digest)
                    item.parse_seconds = time.perf_counter() - parse_started
            except CircuitKBError as exc:
                item.done = exc
        yield item


def _unless_stored(path: Path, stored: dict[str, str]) -> _Parsed:
    """The file's digest; done already when a visible graph had the same content when the
    ingest began (a graph published since is found by the claim, which has the last word)."""
    try:
        digest = content_hash(path)
    except CircuitKBError as exc:
        return _Parsed(path, done=exc)
    if digest in stored:
        return _Parsed(path, digest, done={"path": str(path), "slug": stored[digest], "outcome": "unchanged", "reason": "same content already stored"})
    return _Parsed(path, digest)


def _written(
    parsed: Iterator[_Parsed],
    claim: Callable[[_Parsed], _Job | dict[str, Any]],
    write: Callable[[_Job], dict[str, Any]],
    pool: ThreadPoolExecutor | None,
    writers: int,
) -> Iterator[tuple[Path, dict[str, Any] | CircuitKBError]]:
    """Each file's outcome in order: a dict, or the error that failed it. Files are claimed
    here, one after another, and written here or in the pool. Errors that are not circuitkb's
    propagate (after the writes in flight end)."""
    in_flight: deque[tuple[Path, Future[dict[str, Any]] | dict[str, Any] | CircuitKBError]] = deque()

    def settle(result: Future[dict[str, Any]] | dict[str, Any] | CircuitKBError) -> dict[str, Any] | CircuitKBError:
        if not isinstance(result, Future):
            return result
        try:
            return result.result()
        except CircuitKBError as exc:
            return exc

    for item in parsed:
        result: Future[dict[str, Any]] | dict[str, Any] | CircuitKBError
        if item.done is not None:
            result = item.done
        else:
            try:
                job = claim(item)
                if isinstance(job, dict):
                    result = job
                elif pool is None:
                    result = write(job)
                else:
                    result = pool.submit(write, job)
            except CircuitKBError as exc:
                result = exc
        in_flight.append((item.path, result))
        # hand back the finished head; wait for it when every writer is busy
        while in_flight and (not _running(in_flight[0][1]) or sum(_running(r) for _, r in in_flight) >= writers):
            path, done = in_flight.popleft()
            yield path, settle(done)
    while in_flight:
        path, done = in_flight.popleft()
        yield path, settle(done)


def _running(result: object) -> bool:
    return isinstance(result, Future) and not result.done()


# SQLite has one writer at a time, and every graph rewrites pages all over the aggregates'
# tables, which each commit writes out whole: ordinary graphs are claimed, written and published
# this many at a time in one transaction, each in a savepoint of its own, so that a graph that
# fails is undone alone. A batch ends sooner once it holds this many links or has taken this
# long, so that other writers (another ingest, a label saved in the app) wait no longer than that
# and the report follows along
BATCH_GRAPHS = 64
BATCH_LINKS = 1_600_000
BATCH_SECONDS = 2.0


def _batching_store(core: Core) -> EmbeddedStore | None:
    """The store, when graphs are written in batches (the embedded store on SQLite)."""
    store = core.store
    return store if isinstance(store, EmbeddedStore) and core.engine.dialect.name == "sqlite" else None


def _embedded(core: Core) -> EmbeddedStore:
    store = _batching_store(core)
    assert store is not None, "graphs are written in a caller's transaction only in the embedded store on SQLite"
    return store


def _written_in_batches(
    core: Core,
    store: EmbeddedStore,
    parsed: Iterator[_Parsed],
    claim: Callable[..., _Job | dict[str, Any]],
    write: Callable[..., dict[str, Any]],
) -> Iterator[tuple[Path, dict[str, Any] | CircuitKBError]]:
    """Each file's outcome in order, as :func:`_written` gives them; ordinary graphs are
    claimed, written and published up to ``BATCH_GRAPHS`` at a time in one transaction, and their
    outcomes handed back once it has committed. A graph too big for one transaction is written
    alone, as without batches. An error that is not circuitkb's undoes the whole batch.
    ``claim(item, conn=None)`` and ``write(job, conn=None)`` work in ``conn``'s transaction
    when given one, else in their own."""
    conn: Connection | None = None
    waiting: list[tuple[Path, dict[str, Any] | CircuitKBError]] = []
    links = 0
    began = 0.0

    def committed() -> list[tuple[Path, dict[str, Any] | CircuitKBError]]:
        nonlocal conn, links
        if conn is not None:
            started = time.perf_counter()
            conn.commit()
            conn.close()
            conn = None
            _share_commit(waiting, time.perf_counter() - started)
        links = 0
        done = list(waiting)
        waiting.clear()
        return done

    try:
        for item in parsed:
            if item.done is not None:
                if conn is None:
                    yield item.path, item.done
                else:
                    waiting.append((item.path, item.done))
                continue
            assert item.graph is not None
            if not store.in_one_transaction(item.graph):
                yield from committed()
                yield from _written(iter([item]), claim, write, None, 1)
                continue
            if conn is None:
                conn = store.engine.connect()
                conn.begin()
                # the driver opens a transaction only before a write: open it here, so that
                # each graph's savepoint nests inside it rather than committing when released
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                began = time.perf_counter()
            waiting.append((item.path, _in_savepoint(core, conn, item, claim, write)))
            links += item.graph.n_links
            if len(waiting) >= BATCH_GRAPHS or links >= BATCH_LINKS or time.perf_counter() - began >= BATCH_SECONDS:
                yield from committed()
        yield from committed()
    except BaseException:
        if conn is not None:
            conn.rollback()
            conn.close()
        core.feature_id_cache.clear()  # ids given in the batch are gone with it
        raise


def _share_commit(outcomes: list[tuple[Path, dict[str, Any] | CircuitKBError]], seconds: float) -> None:
    """A batch's commit time added to the write times of the graphs it published, by their
    links, so that the write times still add up to the time spent writing."""
    written = [r for _, r in outcomes if isinstance(r, dict) and r.get("outcome") == "ingested"]
    links = sum(r["links"] for r in written)
    for r in written:
        r["write_seconds"] = round(r["write_seconds"] + seconds * (r["links"] / links if links else 1 / len(written)), 4)


def _in_savepoint(
    core: Core,
    conn: Connection,
    item: _Parsed,
    claim: Callable[..., _Job | dict[str, Any]],
    write: Callable[..., dict[str, Any]],
) -> dict[str, Any] | CircuitKBError:
    """One graph claimed, written and published in a savepoint of ``conn``'s transaction; its
    outcome, or the error that undid it."""
    savepoint = conn.begin_nested()
    try:
        job = claim(item, conn)
        result = job if isinstance(job, dict) else write(job, conn)
    except CircuitKBError as exc:
        savepoint.rollback()
        core.feature_id_cache.clear()  # ids given in the savepoint are gone with it
        return exc
    savepoint.commit()
    return result


@dataclass
class _Job:
    """A claimed graph, ready to be written: its id, its feature ids and what publishing records."""

    item: _Parsed
    claim: registry.Claim
    feature_ids: dict[FeatureKey, int]
    finish: registry.Finish
    qk: list[dict[str, Any]]

    @property
    def gid(self) -> int:
        assert self.claim.graph_id is not None
        return self.claim.graph_id


def _claim(core: Core, item: _Parsed, manifest: Manifest | None, on_change: str, conn: Connection | None = None) -> _Job | dict[str, Any]:
    """Register the graph as loading and give its features ids; the outcome instead when it is
    not to be written (unchanged, busy, conflict). A failure after the claim undoes it. With
    ``conn``, in the caller's transaction, which undoes it instead."""
    graph, path = item.graph, item.path
    assert graph is not None
    header, source, store = graph.header, str(path), core.store.name
    if conn is None:
        claim = registry.claim(core.engine, header, item.digest, source, store, on_change)
    else:
        claim = registry.claim_in(conn, header, item.digest, source, store, on_change)
    if claim.action != "write":
        outcome = "conflict" if claim.action == "conflict" else claim.action
        return {"path": str(path), "slug": graph.header.slug, "outcome": outcome, "reason": claim.reason}
    assert claim.graph_id is not None
    try:
        return _job(core, item, claim, manifest, conn)
    except BaseException:
        if conn is None:
            _abandon(core, claim.graph_id)
        raise


def _store(core: Core, job: _Job, progress: IngestProgress | None, conn: Connection | None = None) -> dict[str, Any]:
    """Write and publish one claimed graph; its outcome. A failed write is undone (with
    ``conn``, an embedded store's connection, by the caller, whose transaction it joins)."""
    graph, claim, gid = job.item.graph, job.claim, job.gid
    assert graph is not None
    write_started = time.perf_counter()
    try:
        _write(core, job, progress, conn)
    except BaseException:
        if conn is None:
            _abandon(core, gid)
        raise
    write_seconds = time.perf_counter() - write_started
    if claim.previous_id is not None:
        if conn is None:
            core.store.purge(claim.previous_id)
            with core.engine.begin() as forgetting:
                registry.forget(forgetting, claim.previous_id)
        else:
            _embedded(core).purge_in(conn, claim.previous_id)
            registry.forget(conn, claim.previous_id)
    return {
        "path": str(job.item.path),
        "slug": graph.header.slug,
        "outcome": "ingested",
        "graph_id": gid,
        "nodes": len(graph.nodes),
        "links": graph.n_links,
        "features": len(job.feature_ids),
        "replaced": claim.previous_id is not None,
        "parse_seconds": round(job.item.parse_seconds, 4),
        "write_seconds": round(write_seconds, 4),
        "warnings": graph.warnings,
    }


def _job(core: Core, item: _Parsed, claim: registry.Claim, manifest: Manifest | None, conn: Connection | None = None) -> _Job:
    """What writing and publishing a claimed graph needs: its feature ids (created if new), its
    tags and language, its clerps, QK rows and link extras."""
    graph, gid = item.graph, claim.graph_id
    assert graph is not None and gid is not None
    tagging = manifest.lookup(item.path, graph.header.slug) if manifest else None
    language = tagging.language if tagging and tagging.language else None
    if language is None:
        language = item.language if item.detected else detect_language(graph.header.prompt)
    keys = graph.features()
    with core.engine.begin() if conn is None else nullcontext(conn) as writing:
        # QK tracing may name features that were pruned out of the graph's nodes: known, not used
        all_ids = registry.ensure_features(writing, keys | graph.qk_features(), core.feature_id_cache)
    feature_ids = {k: all_ids[k] for k in keys}
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
    finish = registry.Finish(
        n_nodes=len(graph.nodes),
        n_links=graph.n_links,
        n_features=len(keys),
        language=language,
        family=tagging.family if tagging else None,
        tags=list(tagging.tags) if tagging else [],
        clerps=clerps,
        link_extra=link_extra or None,
    )
    return _Job(item, claim, feature_ids, finish, qk_rows(gid, graph.qk, graph.nodes, all_ids))


def _write(core: Core, job: _Job, progress: IngestProgress | None, conn: Connection | None = None) -> None:
    graph, gid = job.item.graph, job.gid
    assert graph is not None
    # an id taken over from a dead writer may have half a graph in the store (its SQL rows come
    # only with the transaction that publishes it); a new id has nothing anywhere
    fresh = not job.claim.takeover
    # the graph's feature edges, folded once: the store writes them and publishing adds them
    values = of_parsed_graph(gid, graph, job.feature_ids)

    def finalize(conn: Connection) -> None:
        aggregates.lock(conn)  # first, before any row of the registry is locked
        registry.finish(conn, gid, graph.header.slug, job.claim.previous_id, job.finish)
        if job.claim.previous_id is not None and job.claim.previous_id != gid:
            aggregates.unpublish(conn, job.claim.previous_id)
        aggregates.publish(conn, values)
        write_qk(conn, gid, job.qk)

    on_links = progress.on_links if progress else None
    if conn is None:
        core.store.write_graph(gid, graph, job.feature_ids, values.edges, finalize, on_links, fresh=fresh)
    else:
        _embedded(core).write_graph_in(conn, gid, graph, job.feature_ids, values.edges, finalize, on_links, fresh=fresh)


def _abandon(core: Core, gid: int) -> None:
    """Undo a failed write; if even that fails, the row stays 'loading' for the next run."""
    try:
        core.store.purge(gid)
        with core.engine.begin() as conn:
            registry.forget(conn, gid)
    except Exception:  # the original error matters more; recovery will finish the job
        log.exception("could not clean up graph %s after a failed ingest; the next ingest will", gid)
