"""Feature metadata in SQL: Neuronpedia explanations, circuit-tracer feature pages, labels.

``import_feature_metadata`` reads each file whole (see :mod:`ingest.featurefiles` for the
formats), then writes it in one transaction: explanations go to ``descriptions`` (source
``neuronpedia``, no graph), feature pages to ``feature_details`` (one row per feature, updated
when the content changed), labels to ``labels``. Re-importing a file adds nothing.

The unique constraints of ``descriptions`` and ``labels`` include a nullable column
(``graph_id``, ``graph_slug``), and SQL treats NULLs as distinct, so they cannot stop a
duplicate on their own. Writers therefore check what exists first, while holding the
database's write lock (SQLite: taken by the first INSERT of the transaction; PostgreSQL: a
transaction-scoped advisory lock), so that concurrent imports cannot both add one row.

Labels live only in ``labels`` (the source of truth for what people write);
:func:`kb.descriptions.descriptions_of` shows them next to explanations and graph clerps as source ``label``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pathlib import Path
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, insert, null, select, update

from ingest.featurefiles import (
    MAX_AUTHOR,
    MAX_SET,
    MAX_SLUG,
    Description,
    Details,
    Label,
    MetadataFile,
    ReadOptions,
    expand_metadata_paths,
    read_metadata_file,
)
from ingest.records import FeatureKey
from kb import registry
from kb.core import Core
from kb.descriptions import NEURONPEDIA_SOURCE
from kb.errors import CircuitKBError, PermissionDenied
from kb.labels.accounts import Actor, authorize, has_accounts, local_actor
from kb.labels.labels import insert_label
from schema.sql import ADMIN, descriptions, feature_details, labels

# serialises writers of graph-less descriptions and of labels on PostgreSQL
_PG_LOCK_KEY = 715518
_CHUNK = 900
_DETAIL_COLUMNS = ("examples_quantiles", "top_logits", "bottom_logits", "act_min", "act_max", "activation_frequency", "extra")


@dataclass
class FeatureImportReport:
    """What an import did: per imported file its format and counts, and the files that failed."""

    files: list[dict[str, Any]] = field(default_factory=list)
    descriptions_added: int = 0
    details_added: int = 0
    details_updated: int = 0
    labels_added: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "descriptions_added": self.descriptions_added,
            "details_added": self.details_added,
            "details_updated": self.details_updated,
            "labels_added": self.labels_added,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Added:
    descriptions: int = 0
    details: int = 0
    details_updated: int = 0
    labels: int = 0


# --- import ------------------------------------------------------------------------------------


def import_feature_metadata(
    core: Core,
    paths: Sequence[Path | str],
    *,
    model: str | None = None,
    source: str | None = None,
    transcoder_set: str | None = None,
    schema: int = 1,
    author: str | None = None,
    kind: str | None = None,
    layer: int | None = None,
    actor: Actor | None = None,
) -> FeatureImportReport:
    """Import feature-metadata files and folders; a bad file is reported and the others imported.

    ``model`` / ``source`` name the features of Neuronpedia explanation maps whose file name
    does not; ``transcoder_set`` and ``schema`` (1 = Cantor, 0 = ``layer*10^k+index``, whose
    layer comes from ``layer``, ``source`` or a ``{layer}_...json`` file name) decode
    circuit-tracer feature files; ``author`` is the default author of labels, ``kind`` the
    default explanation type; ``actor`` is who imports (an admin once the knowledge base has
    accounts; by default the local user, who is refused then). Raises ConfigError for bad
    options, CircuitKBError for a path that does not exist and PermissionDenied, before anything
    is written.
    """
    with core.engine.begin() as conn:
        authorize(conn, actor or local_actor(), ADMIN)
    started = time.perf_counter()
    options = ReadOptions(
        model=model, source=source, transcoder_set=transcoder_set, schema=schema, layer=layer, author=author, kind=kind
    )
    report = FeatureImportReport()
    for path in expand_metadata_paths(paths):
        try:
            parsed = read_metadata_file(path, options)
            added = _write_file(core, parsed)
        except CircuitKBError as exc:
            report.failed.append({"path": str(path), "error": str(exc)})
            continue
        _count(report, parsed, added)
    report.seconds = time.perf_counter() - started
    return report


def _count(report: FeatureImportReport, parsed: MetadataFile, added: _Added) -> None:
    report.files.append(
        {
            "path": parsed.path,
            "format": parsed.format,
            "records": parsed.n_records,
            "features": len(parsed.features()),
            "added": added.descriptions + added.details + added.labels,
            "updated": added.details_updated,
        }
    )
    report.descriptions_added += added.descriptions
    report.details_added += added.details
    report.details_updated += added.details_updated
    report.labels_added += added.labels


def _write_file(core: Core, parsed: MetadataFile) -> _Added:
    keys = parsed.features()
    if not keys:
        return _Added()
    with core.engine.begin() as conn:
        feature_ids = _lock_and_ensure(conn, keys)
        origin = parsed.path
        added = _Added(descriptions=_add_descriptions(conn, parsed.descriptions, feature_ids, origin))
        added.details, added.details_updated = _upsert_details(conn, parsed.details, feature_ids, origin)
        added.labels = _add_labels(conn, parsed.labels, feature_ids)
    return added


def _lock_and_ensure(conn: Connection, keys: Iterable[FeatureKey]) -> dict[FeatureKey, int]:
    """Feature ids, with the write lock held for the rest of the transaction.

    PostgreSQL: an advisory lock, taken first. SQLite: the INSERT of ``ensure_features`` is the
    transaction's first statement and takes the database's write lock before anything is read.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
    return registry.ensure_features(conn, keys)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


# --- descriptions ---------------------------------------------------------------------------------


def _add_descriptions(conn: Connection, records: list[Description], feature_ids: dict[FeatureKey, int], origin: str) -> int:
    wanted: dict[tuple[int, str, str, str], Description] = {}
    for rec in records:
        wanted.setdefault((feature_ids[rec.feature], rec.kind, rec.author, registry.text_hash(rec.text)), rec)
    existing = _existing_descriptions(conn, sorted({key[0] for key in wanted}))
    stamp = registry.now()
    rows = [
        {
            "feature_id": key[0],
            "source": NEURONPEDIA_SOURCE,
            "kind": key[1],
            "author": key[2],
            "text": rec.text,
            "text_hash": key[3],
            "origin": origin,
            "created_at": stamp,
            **({"scores": rec.scores} if rec.scores is not None else {}),
        }
        for key, rec in wanted.items()
        if key not in existing
    ]
    # a row without scores leaves the column SQL NULL (not JSON null); executemany needs equal keys
    for has_scores in (True, False):
        group = [row for row in rows if ("scores" in row) == has_scores]
        if group:
            conn.execute(insert(descriptions), group)
    return len(rows)


def _existing_descriptions(conn: Connection, fids: list[int]) -> set[tuple[int, str, str, str]]:
    c = descriptions.c
    found: set[tuple[int, str, str, str]] = set()
    for chunk in _chunks(fids):
        query = select(c.feature_id, c.kind, c.author, c.text_hash).where(
            c.source == NEURONPEDIA_SOURCE, c.graph_id.is_(None), c.feature_id.in_(chunk)
        )
        found.update(tuple(row) for row in conn.execute(query))
    return found


# --- feature details -------------------------------------------------------------------------------


def _upsert_details(
    conn: Connection, records: list[Details], feature_ids: dict[FeatureKey, int], origin: str
) -> tuple[int, int]:
    """Insert new feature pages and update changed ones; returns (added, updated)."""
    if not records:
        return 0, 0
    existing = _existing_details(conn, sorted({feature_ids[r.feature] for r in records}))
    stamp = registry.now()
    added = updated = 0
    for rec in records:
        fid = feature_ids[rec.feature]
        content = {col: getattr(rec, col) for col in _DETAIL_COLUMNS}
        values = {col: null() if v is None else v for col, v in content.items()}  # SQL NULL, not JSON null
        if fid not in existing:
            conn.execute(insert(feature_details).values(feature_id=fid, origin=origin, updated_at=stamp, **values))
            added += 1
        elif existing[fid] != content:
            conn.execute(
                update(feature_details)
                .where(feature_details.c.feature_id == fid)
                .values(origin=origin, updated_at=stamp, **values)
            )
            updated += 1
    return added, updated


def _existing_details(conn: Connection, fids: list[int]) -> dict[int, dict[str, Any]]:
    columns = [feature_details.c[col] for col in _DETAIL_COLUMNS]
    found: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(fids):
        query = select(feature_details.c.feature_id, *columns).where(feature_details.c.feature_id.in_(chunk))
        for row in conn.execute(query):
            found[row.feature_id] = {col: row._mapping[col] for col in _DETAIL_COLUMNS}
    return found


# --- labels ------------------------------------------------------------------------------------------


def _add_labels(conn: Connection, records: list[Label], feature_ids: dict[FeatureKey, int]) -> int:
    """Insert the labels that do not exist yet, each with its first version; returns how many."""
    wanted = {(feature_ids[r.feature], r.author, r.graph_slug, r.text) for r in records}
    existing = _existing_labels(conn, sorted({key[0] for key in wanted}))
    added = sorted(wanted - existing.keys(), key=_label_order)
    for fid, author, slug, text in added:
        insert_label(conn, fid, author, text, graph_slug=slug)
    return len(added)


def _label_order(key: tuple) -> tuple:
    fid, author, slug, text = key
    return fid, author, slug or "", text


def _existing_labels(conn: Connection, fids: list[int]) -> dict[tuple, int]:
    c = labels.c
    found: dict[tuple, int] = {}
    for chunk in _chunks(fids):
        query = select(c.id, c.feature_id, c.author, c.graph_slug, c.text).where(c.feature_id.in_(chunk))
        for row in conn.execute(query):
            found[(row.feature_id, row.author, row.graph_slug, row.text)] = row.id
    return found


def add_label(core: Core, feature: FeatureKey, text: str, author: str, graph_slug: str | None = None) -> int:
    """Label a feature (optionally as seen in one graph) in a single-user knowledge base; returns
    the label's id.

    Adding the same label again (same feature, author, graph and text) returns the existing id.
    Once the knowledge base has accounts, labels are written by a signed-in user through
    :func:`kb.labels.add` (this raises PermissionDenied).
    """
    if not isinstance(feature, FeatureKey):
        raise CircuitKBError(f"feature must be a FeatureKey, got {type(feature).__name__}")
    _required(feature.transcoder_set, "transcoder set", MAX_SET)
    text = _required(text, "label text")
    author = _required(author, "author", MAX_AUTHOR)
    slug = _required(graph_slug, "graph slug", MAX_SLUG) if graph_slug is not None else None
    if has_accounts(core):
        raise PermissionDenied("this knowledge base has accounts: sign in and label with kb.labels.add (circuitkb labels add --as NAME)")
    with core.engine.begin() as conn:
        fid = _lock_and_ensure(conn, [feature])[feature]
        existing = _existing_labels(conn, [fid]).get((fid, author, slug, text))
        if existing is not None:
            return existing
        return insert_label(conn, fid, author, text, graph_slug=slug).id


def _required(value: Any, what: str, max_length: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CircuitKBError(f"{what} is required and must not be empty")
    value = value.strip()
    if max_length is not None and len(value) > max_length:
        raise CircuitKBError(f"{what} is longer than {max_length} characters")
    return value
