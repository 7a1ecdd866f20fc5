"""Sharing labelling work between knowledge bases: one JSON object per line.

The first line is a header ``{"kind": "circuitkb-labels", "format": 1}``; then one line per
label (with every version), vote, comment and saved subgraph, authors and times kept. Records
are matched by natural keys: labels, comments and subgraphs by uuid, versions by (label uuid,
version), votes by (label uuid, voter). Importing the same file twice changes nothing.

A label's ``updated_at`` is when it changed *here* (search notices changed labels by it).
A label known here whose versions went another way (same version number, other text) keeps
the local ones; the import reports it under ``diverged``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

from sqlalchemy import Connection, insert, select, update

from ingest.records import FeatureKey
from kb import registry
from kb.errors import MetadataFormatError
from kb.labels import audit, settings
from kb.labels.accounts import Actor, authorize
from kb.labels.votes import recount
from schema.sql import ADMIN, VIEWER, comments, features, label_versions, label_votes, labels, subgraphs

if TYPE_CHECKING:
    from kb.core import Core

HEADER = {"kind": "circuitkb-labels", "format": 1}


@dataclass
class ImportReport:
    labels_added: int = 0
    versions_added: int = 0
    votes_added: int = 0
    votes_updated: int = 0
    comments_added: int = 0
    subgraphs_added: int = 0
    diverged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def changed(self) -> bool:
        return any((self.labels_added, self.versions_added, self.votes_added, self.votes_updated, self.comments_added, self.subgraphs_added))


# --- export ------------------------------------------------------------------------------------------------


def export_records(core: "Core", actor: Actor) -> Iterator[dict[str, Any]]:
    """Every label (with its versions), vote, comment and subgraph, as exchange records."""
    with core.engine.connect() as conn:
        authorize(conn, actor, VIEWER)
        yield dict(HEADER)
        f = features.c
        versions: dict[int, list[dict[str, Any]]] = {}
        for v in conn.execute(select(label_versions).order_by(label_versions.c.label_id, label_versions.c.version)):
            versions.setdefault(v.label_id, []).append(
                {"version": v.version, "action": v.action, "based_on": v.based_on, "text": v.text, "note": v.note,
                 "confidence": v.confidence, "editor": v.editor, "created_at": registry.iso(v.created_at)}
            )
        uuids: dict[int, str] = {}
        query = select(labels, f.transcoder_set, f.layer, f["index"]).select_from(labels.join(features, f.id == labels.c.feature_id))
        for r in conn.execute(query.order_by(labels.c.id)):
            uuids[r.id] = r.uuid
            yield {
                "kind": "label", "uuid": r.uuid, "feature": _feature(r), "graph_slug": r.graph_slug, "node_id": r.node_id,
                "author": r.author, "status": r.status, "status_by": r.status_by, "created_at": registry.iso(r.created_at),
                "versions": versions.get(r.id, []),
            }
        for v in conn.execute(select(label_votes).order_by(label_votes.c.id)):
            yield {
                "kind": "vote", "label": uuids[v.label_id], "voter": v.voter, "value": v.value, "reason": v.reason,
                "created_at": registry.iso(v.created_at), "updated_at": registry.iso(v.updated_at),
            }
        query = select(comments, f.transcoder_set, f.layer, f["index"]).select_from(comments.join(features, f.id == comments.c.feature_id))
        for c in conn.execute(query.order_by(comments.c.id)):
            yield {"kind": "comment", "uuid": c.uuid, "feature": _feature(c), "author": c.author, "text": c.text, "created_at": registry.iso(c.created_at)}
        for s in conn.execute(select(subgraphs).order_by(subgraphs.c.id)):
            yield {
                "kind": "subgraph", "uuid": s.uuid, "graph_slug": s.graph_slug, "name": s.name, "author": s.author,
                "pinned_ids": s.pinned_ids, "supernodes": s.supernodes, "clerps": s.clerps, "thresholds": s.thresholds,
                "view": s.view, "origin": s.origin, "version": s.version,
                "created_at": registry.iso(s.created_at), "updated_at": registry.iso(s.updated_at),
            }


def export_jsonl(core: "Core", actor: Actor, out: IO[str]) -> int:
    """Write the exchange records to ``out``; returns how many records (header included)."""
    n = 0
    for record in export_records(core, actor):
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n


def _feature(row: Any) -> dict[str, Any]:
    return {"transcoder_set": row.transcoder_set, "layer": row.layer, "index": row.index}


# --- import ------------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of an exchange file; MetadataFormatError naming the line for a bad one."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MetadataFormatError(str(path), f"line {number}", f"not JSON: {exc.msg}") from None
            if not isinstance(record, dict) or "kind" not in record:
                raise MetadataFormatError(str(path), f"line {number}", "each line is a JSON object with a 'kind'")
            records.append(record)
            _check(path, number, record, first=len(records) == 1)
    if not records:
        raise MetadataFormatError(str(path), "", "empty file; an exchange file starts with a circuitkb-labels header line")
    return records


_REQUIRED = {
    "label": ("uuid", "feature", "author", "versions"),
    "vote": ("label", "voter", "value"),
    "comment": ("uuid", "feature", "author", "text"),
    "subgraph": ("uuid", "graph_slug", "name", "author"),
}


def _check(path: Path, number: int, record: dict[str, Any], first: bool) -> None:
    kind = record["kind"]
    if first:
        if kind != HEADER["kind"] or record.get("format") != HEADER["format"]:
            raise MetadataFormatError(str(path), "line 1", f"not a circuitkb labels file (expected the header {json.dumps(HEADER)})")
        return
    if kind not in _REQUIRED:
        raise MetadataFormatError(str(path), f"line {number}", f"unknown kind {kind!r}; expected one of {', '.join(_REQUIRED)}")
    missing = [k for k in _REQUIRED[kind] if record.get(k) in (None, "")]
    if missing:
        raise MetadataFormatError(str(path), f"line {number}", f"a {kind} needs {', '.join(missing)}")
    if kind == "label" and not record["versions"]:
        raise MetadataFormatError(str(path), f"line {number}", "a label needs at least one version")
    if kind == "vote" and record["value"] not in (1, -1):
        raise MetadataFormatError(str(path), f"line {number}", f"a vote's value is 1 or -1, got {record['value']!r}")


def import_jsonl(core: "Core", actor: Actor, path: Path) -> ImportReport:
    """Add what the file holds and this knowledge base lacks, in one transaction (admins only)."""
    records = read_jsonl(Path(path))[1:]
    report = ImportReport()
    needed = settings.get(core, "votes_to_accept")
    with core.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(715518)")  # one labels writer at a time, as kb.featuremeta
        authorize(conn, actor, ADMIN)
        keys = [_key(r["feature"]) for r in records if r["kind"] in ("label", "comment")]
        fids = registry.ensure_features(conn, keys)
        label_ids: dict[str, int] = {}
        touched: set[int] = set()
        for r in (r for r in records if r["kind"] == "label"):
            label_ids[r["uuid"]] = _import_label(conn, r, fids[_key(r["feature"])], report)
        for r in (r for r in records if r["kind"] == "vote"):
            label_id = label_ids.get(r["label"]) or _label_id(conn, r["label"])
            if label_id is not None and _import_vote(conn, r, label_id, report):
                touched.add(label_id)
        for label_id in sorted(touched):
            recount(conn, label_id, needed)
        for r in (r for r in records if r["kind"] == "comment"):
            if conn.execute(select(comments.c.id).where(comments.c.uuid == r["uuid"])).first() is None:
                conn.execute(insert(comments).values(uuid=r["uuid"], feature_id=fids[_key(r["feature"])], author=r["author"], text=r["text"], created_at=_time(r.get("created_at"))))
                report.comments_added += 1
        for r in (r for r in records if r["kind"] == "subgraph"):
            _import_subgraph(conn, r, report)
        if report.changed:
            audit.record(conn, actor.name, "labels.import", Path(path).name, report.as_dict())
    return report


def _import_label(conn: Connection, r: dict[str, Any], fid: int, report: ImportReport) -> int:
    versions = sorted(r["versions"], key=lambda v: v["version"])
    last = versions[-1]
    row = conn.execute(select(labels.c.id, labels.c.version).where(labels.c.uuid == r["uuid"])).first()
    if row is None:
        label_id = conn.execute(
            insert(labels)
            .values(
                uuid=r["uuid"], feature_id=fid, graph_slug=r.get("graph_slug"), node_id=r.get("node_id"), author=r["author"],
                text=last["text"], note=last.get("note"), confidence=last.get("confidence"), status=r.get("status") or "proposed",
                status_by=r.get("status_by"), version=last["version"], edited_by=last["editor"],
                created_at=_time(r.get("created_at")), updated_at=registry.now(),
            )
            .returning(labels.c.id)
        ).scalar_one()
        report.labels_added += 1
        local: dict[int, str] = {}
        current = last["version"]
    else:
        label_id, current = row.id, row.version
        local = dict(conn.execute(select(label_versions.c.version, label_versions.c.text).where(label_versions.c.label_id == label_id)).all())
    diverged = any(v["version"] in local and local[v["version"]] != v["text"] for v in versions)
    if diverged:
        report.diverged.append(r["uuid"])
        return label_id
    new = [v for v in versions if v["version"] not in local]
    if new:
        conn.execute(
            insert(label_versions),
            [
                {"label_id": label_id, "version": v["version"], "action": v.get("action") or "import", "based_on": v.get("based_on"),
                 "text": v["text"], "note": v.get("note"), "confidence": v.get("confidence"), "editor": v["editor"],
                 "created_at": _time(v.get("created_at"))}
                for v in new
            ],
        )
        report.versions_added += len(new)
    if row is not None and last["version"] > current:
        conn.execute(
            update(labels)
            .where(labels.c.id == label_id, labels.c.version == current)
            .values(text=last["text"], note=last.get("note"), confidence=last.get("confidence"), version=last["version"],
                    edited_by=last["editor"], updated_at=registry.now())
        )
    return label_id


def _import_vote(conn: Connection, r: dict[str, Any], label_id: int, report: ImportReport) -> bool:
    c = label_votes.c
    row = conn.execute(select(c.id, c.value, c.reason, c.updated_at).where(c.label_id == label_id, c.voter == r["voter"])).first()
    updated = _time(r.get("updated_at"))
    if row is None:
        conn.execute(insert(label_votes).values(label_id=label_id, voter=r["voter"], value=r["value"], reason=r.get("reason"), created_at=_time(r.get("created_at")), updated_at=updated))
        report.votes_added += 1
        return True
    if (row.value, row.reason) != (r["value"], r.get("reason")) and registry.aware(row.updated_at) < updated:
        conn.execute(update(label_votes).where(c.id == row.id).values(value=r["value"], reason=r.get("reason"), updated_at=updated))
        report.votes_updated += 1
        return True
    return False


def _import_subgraph(conn: Connection, r: dict[str, Any], report: ImportReport) -> None:
    if conn.execute(select(subgraphs.c.id).where(subgraphs.c.uuid == r["uuid"])).first() is not None:
        return
    if conn.execute(select(subgraphs.c.id).where(subgraphs.c.graph_slug == r["graph_slug"], subgraphs.c.name == r["name"])).first() is not None:
        report.diverged.append(r["uuid"])  # another subgraph of that name here
        return
    conn.execute(
        insert(subgraphs).values(
            uuid=r["uuid"], graph_slug=r["graph_slug"], name=r["name"], author=r["author"], pinned_ids=r.get("pinned_ids") or [],
            supernodes=r.get("supernodes") or [], clerps=r.get("clerps") or [], thresholds=r.get("thresholds") or {},
            view=r.get("view") or {}, origin=r.get("origin"), version=r.get("version") or 1,
            created_at=_time(r.get("created_at")), updated_at=_time(r.get("updated_at")),
        )
    )
    report.subgraphs_added += 1


def _label_id(conn: Connection, label_uuid: str) -> int | None:
    return conn.execute(select(labels.c.id).where(labels.c.uuid == label_uuid)).scalar()


def _key(feature: dict[str, Any]) -> FeatureKey:
    return FeatureKey(str(feature["transcoder_set"]), int(feature["layer"]), int(feature["index"]))


def _time(value: str | None) -> datetime:
    return registry.aware(datetime.fromisoformat(value)) if value else registry.now()
