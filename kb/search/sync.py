"""Keeping the search catalog and vectors in step with the knowledge base's SQL tables.

Before each search, a few aggregate queries tell whether anything changed:

- ``descriptions`` only grows by id (imports and graph ingests append; a replaced graph's
  clerps are deleted in the transaction that hides the graph), so new rows are read past a
  watermark. The watermark row's hash is checked too: a missing or different row means the
  database was recreated or rows were deleted, and the descriptions are read again whole.
- the set of visible graphs: when it changes, descriptions of graphs no longer visible go.
- ``labels`` are few and may be edited or deleted: when their count, largest id or latest
  update changes, they are read again whole.

New texts are embedded in batches (only texts no model run has seen: the catalog keys them by
hash) and appended to the vector file and the ANN index. One process at a time syncs: the
others wait on a lock file, then find the work done.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, func, select, true

from kb.config import redact_url
from kb.search.catalog import DESCRIPTION, LABEL, Catalog, Doc
from kb.search.embedder import Embedder
from kb.search.index import Vectors
from schema.sql import READY, descriptions, features, graphs, labels

log = logging.getLogger(__name__)

_PAGE = 20_000
EMBED_CHUNK = 4_096


@dataclass
class SyncReport:
    descriptions_added: int = 0
    descriptions_reloaded: bool = False
    labels_reloaded: int | None = None
    docs_dropped: int = 0
    texts_embedded: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(
            self.descriptions_added or self.descriptions_reloaded or self.labels_reloaded is not None or self.docs_dropped or self.texts_embedded
        )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def fingerprint(engine: Engine) -> tuple:
    """A cheap summary that changes whenever descriptions, labels or visible graphs change
    (one statement, each table read once: it is read before every search)."""
    d, lab, g = descriptions.c, labels.c, graphs.c
    label_row = select(func.count().label("n"), func.max(lab.id).label("last"), func.max(lab.updated_at).label("changed")).subquery()
    graph_row = (
        select(func.count().label("n"), func.max(g.id).label("last"), func.max(g.ready_at).label("changed")).where(g.status == READY).subquery()
    )
    query = select(select(func.max(d.id)).scalar_subquery(), *label_row.c, *graph_row.c).select_from(label_row.join(graph_row, true()))
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return (row[0], *(str(v) for v in row[1:]))


def sync_catalog(engine: Engine, sql_url: str, catalog: Catalog, report: SyncReport) -> None:
    """Bring the catalog's docs up to date with the database at ``sql_url`` (the caller holds the lock)."""
    catalog.begin()
    try:
        _check_database(sql_url, catalog)
        _sync_graphs(engine, catalog, report)
        _sync_descriptions(engine, catalog, report)
        _sync_labels(engine, catalog, report)
        catalog.commit()
    except BaseException:
        catalog.rollback()
        raise


def embed_missing(catalog: Catalog, vectors: Vectors, embedder: Embedder, report: SyncReport) -> None:
    """Give every catalog text a vector of this model, embedding only those that have none
    (the caller holds the lock)."""
    vectors.refresh()
    total = catalog.n_texts()
    while vectors.count < total:
        stop = min(vectors.count + EMBED_CHUNK, total)
        report.texts_embedded += vectors.add_texts(vectors.count, catalog.items_between(vectors.count, stop), embedder.embed)
        log.info("%d of %d texts have vectors of %s", vectors.count, total, embedder.name)
    vectors.save()


def _database_id(sql_url: str) -> str:
    return hashlib.sha256(redact_url(sql_url).encode("utf-8")).hexdigest()[:16]


def _check_database(sql_url: str, catalog: Catalog) -> None:
    """Forget the docs of another database that used this home before."""
    current = _database_id(sql_url)
    if catalog.get_state("database") != current:
        catalog.delete_docs(DESCRIPTION)
        catalog.delete_docs(LABEL)
        for key in ("desc_watermark", "desc_watermark_hash", "labels", "graphs"):
            catalog.set_state(key, "")
        catalog.set_state("database", current)


def _ready_gids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(select(graphs.c.id).where(graphs.c.status == READY)).scalars())


def _sync_graphs(engine: Engine, catalog: Catalog, report: SyncReport) -> None:
    g = graphs.c
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), func.max(g.id), func.max(g.ready_at)).where(g.status == READY)).one()
    state = "|".join(str(v) for v in row)
    if catalog.get_state("graphs") == state:
        return
    report.docs_dropped += catalog.keep_graphs(_ready_gids(engine))
    catalog.set_state("graphs", state)


def _sync_descriptions(engine: Engine, catalog: Catalog, report: SyncReport) -> None:
    d = descriptions.c
    watermark = int(catalog.get_state("desc_watermark") or 0)
    if watermark:
        with engine.connect() as conn:
            found = conn.execute(select(d.text_hash).where(d.id == watermark)).scalar()
        if found != catalog.get_state("desc_watermark_hash"):
            log.info("descriptions were deleted or the database recreated; reading them again")
            catalog.delete_docs(DESCRIPTION)
            watermark = 0
            report.descriptions_reloaded = True
    ready: set[int] | None = None  # read once, and only when there are descriptions to add
    f = features.c
    query = (
        select(d.id, d.feature_id, f.transcoder_set, f.layer, f["index"], d.source, d.author, d.text, d.text_hash, d.graph_id)
        .select_from(descriptions.join(features, features.c.id == d.feature_id))
        .order_by(d.id)
        .limit(_PAGE)
    )
    last_hash = catalog.get_state("desc_watermark_hash") or ""
    with engine.connect() as conn:
        while True:
            rows = conn.execute(query.where(d.id > watermark)).all()
            if not rows:
                break
            if ready is None:
                ready = _ready_gids(engine)
            visible = [r for r in rows if r.graph_id is None or r.graph_id in ready]
            ids = catalog.text_ids([(bytes.fromhex(r.text_hash), r.text) for r in visible])
            report.descriptions_added += catalog.add_docs(
                Doc(DESCRIPTION, r.id, r.feature_id, r.transcoder_set, r.layer, r.index, tid, r.source, r.author, r.graph_id)
                for r, tid in zip(visible, ids)
            )
            watermark, last_hash = rows[-1].id, rows[-1].text_hash
    catalog.set_state("desc_watermark", str(watermark))
    catalog.set_state("desc_watermark_hash", last_hash)


def _sync_labels(engine: Engine, catalog: Catalog, report: SyncReport) -> None:
    lab, f = labels.c, features.c
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), func.max(lab.id), func.max(lab.updated_at))).one()
        state = "|".join(str(v) for v in row)
        if catalog.get_state("labels") == state:
            return
        rows = conn.execute(
            select(lab.id, lab.feature_id, f.transcoder_set, f.layer, f["index"], lab.author, lab.text)
            .select_from(labels.join(features, features.c.id == lab.feature_id))
            .order_by(lab.id)
        ).all()
    catalog.delete_docs(LABEL)
    ids = catalog.text_ids([(_hash(r.text), r.text) for r in rows])
    catalog.add_docs(
        Doc(LABEL, r.id, r.feature_id, r.transcoder_set, r.layer, r.index, tid, "label", r.author, None)
        for r, tid in zip(rows, ids)
    )
    catalog.set_state("labels", state)
    report.labels_reloaded = len(rows)


def _hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()

