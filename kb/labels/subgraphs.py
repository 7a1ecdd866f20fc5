"""Saved subgraphs: named views of one graph, as Neuronpedia saves them.

A subgraph has pinned node ids, supernodes (``[name, node_id, ...]``), custom clerps
(``[node_id, clerp]``), thresholds (``pruningThreshold``, ``densityThreshold``) and the rest of
the viewer's state (``linkType``, ``clickedId``, ``sg_pos``). The ``qParams`` of an ingested
file become the subgraph :data:`FILE_VIEW` of its graph *lazily*, the first time the graph's
subgraphs are read (ingest is not touched); when a newer file replaces the graph, its view
replaces the old one at the next read.

:func:`viewer_json` writes a graph with one subgraph as its ``qParams`` and the team's labels as
node clerps: the file loads in circuit-tracer's and Neuronpedia's viewers.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from kb import registry
from kb.errors import CircuitKBError, EditConflict, NotFoundError
from kb.labels import audit
from kb.labels.accounts import Actor, authorize
from kb.export import graph_json
from kb.labels.labels import clean_text, rank
from schema.sql import LABELLER, REJECTED, graph_link_extra, labels, subgraphs

if TYPE_CHECKING:
    from kb.core import Core

FILE_VIEW = "saved in file"
FILE_AUTHOR = "graph file"
_THRESHOLDS = ("pruningThreshold", "densityThreshold")
_VIEW_KEYS = ("linkType", "clickedId", "sg_pos")


def from_qparams(qparams: dict[str, Any]) -> dict[str, Any]:
    """The parts of a subgraph in a file's ``qParams`` (ids as strings, unknown keys dropped)."""
    qparams = qparams or {}
    clerps = qparams.get("clerps") or []
    return {
        "pinned_ids": [str(i) for i in qparams.get("pinnedIds") or []],
        "supernodes": [[str(x) for x in group] for group in qparams.get("supernodes") or [] if group],
        "clerps": [[str(pair[0]), str(pair[1])] for pair in clerps if isinstance(pair, (list, tuple)) and len(pair) == 2],
        "thresholds": {k: float(qparams[k]) for k in _THRESHOLDS if isinstance(qparams.get(k), (int, float))},
        "view": {k: qparams[k] for k in _VIEW_KEYS if isinstance(qparams.get(k), str)},
    }


def to_qparams(sub: dict[str, Any]) -> dict[str, Any]:
    """A subgraph as the ``qParams`` of a graph file."""
    view = sub.get("view") or {}
    out: dict[str, Any] = {
        "pinnedIds": list(sub["pinned_ids"]),
        "supernodes": [list(g) for g in sub["supernodes"]],
        "linkType": view.get("linkType", "both"),
        "clickedId": view.get("clickedId", ""),
        "sg_pos": view.get("sg_pos", ""),
    }
    if sub.get("clerps"):
        out["clerps"] = [list(p) for p in sub["clerps"]]
    out.update(sub.get("thresholds") or {})
    return out


def save(
    core: "Core",
    actor: Actor,
    graph_slug: str,
    name: str,
    *,
    pinned_ids: list[str] | None = None,
    supernodes: list[list[str]] | None = None,
    clerps: list[list[str]] | None = None,
    thresholds: dict[str, float] | None = None,
    view: dict[str, str] | None = None,
    base_version: int | None = None,
) -> dict[str, Any]:
    """Save a new subgraph (``base_version`` None) or a new version of one (compare-and-set on
    ``base_version``: EditConflict when someone saved since); needs the labeller role."""
    name = clean_text(name, "subgraph name", 200)
    core.graph_row(graph_slug)
    parts = _check_parts(pinned_ids, supernodes, clerps, thresholds, view)
    try:
        return _save(core, actor, graph_slug, name, parts, base_version)
    except IntegrityError:  # someone saved that name at the same moment
        raise CircuitKBError(f"graph {graph_slug!r} already has a subgraph named {name!r}; edit it with its version, or pick another name") from None


def _save(core: "Core", actor: Actor, graph_slug: str, name: str, parts: dict[str, Any], base_version: int | None) -> dict[str, Any]:
    stamp = registry.now()
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        if base_version is None:
            if _row(conn, graph_slug, name) is not None:
                raise CircuitKBError(f"graph {graph_slug!r} already has a subgraph named {name!r}; edit it with its version, or pick another name")
            conn.execute(
                insert(subgraphs).values(
                    uuid=str(uuidlib.uuid4()), graph_slug=graph_slug, name=name, author=actor.name, **parts,
                    version=1, created_at=stamp, updated_at=stamp,
                )
            )
        else:
            changed = conn.execute(
                update(subgraphs)
                .where(subgraphs.c.graph_slug == graph_slug, subgraphs.c.name == name, subgraphs.c.version == base_version)
                .values(**parts, version=subgraphs.c.version + 1, updated_at=stamp)
            ).rowcount
            if changed != 1:
                current = _row(conn, graph_slug, name)
                if current is None:
                    raise NotFoundError(f"graph {graph_slug!r} has no subgraph named {name!r}")
                raise EditConflict(
                    f"subgraph {name!r} of {graph_slug!r} was saved again (now version {current.version}) since version {base_version}",
                    current.version,
                    str(to_qparams(_sub_dict(current))),
                    current.author,
                )
        saved = _sub_dict(_row(conn, graph_slug, name))
        audit.record(conn, actor.name, "subgraph.save", f"{graph_slug}/{name}", {"version": saved["version"]})
    return saved


def subgraphs_of(core: "Core", graph_slug: str) -> list[dict[str, Any]]:
    """A graph's saved subgraphs by name, the view saved in its file first (made on first read)."""
    _ensure_file_view(core, graph_slug)
    with core.engine.connect() as conn:
        rows = conn.execute(select(subgraphs).where(subgraphs.c.graph_slug == graph_slug).order_by(subgraphs.c.name)).all()
    found = [_sub_dict(r) for r in rows]
    return sorted(found, key=lambda s: (s["name"] != FILE_VIEW, s["name"]))


def subgraph(core: "Core", graph_slug: str, name: str) -> dict[str, Any]:
    _ensure_file_view(core, graph_slug)
    with core.engine.connect() as conn:
        row = _row(conn, graph_slug, name)
    if row is None:
        raise NotFoundError(f"graph {graph_slug!r} has no subgraph named {name!r}")
    return _sub_dict(row)


def _ensure_file_view(core: "Core", graph_slug: str) -> None:
    graph = core.graph_row(graph_slug)
    origin = f"qParams:{graph.content_hash}"[:100]
    parts = from_qparams(graph.qparams or {})
    with core.engine.connect() as conn:
        current = _row(conn, graph_slug, FILE_VIEW)
    if current is not None and current.origin == origin:
        return
    stamp = registry.now()
    with core.engine.begin() as conn:
        if current is None:
            stmt = registry.dialect_insert(conn, subgraphs).values(
                uuid=str(uuidlib.uuid4()), graph_slug=graph_slug, name=FILE_VIEW, author=FILE_AUTHOR, origin=origin, **parts,
                version=1, created_at=stamp, updated_at=stamp,
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[subgraphs.c.graph_slug, subgraphs.c.name]))
        else:  # a newer file took the slug
            conn.execute(
                update(subgraphs)
                .where(subgraphs.c.id == current.id, subgraphs.c.origin == current.origin)
                .values(**parts, origin=origin, version=subgraphs.c.version + 1, updated_at=stamp)
            )


def _row(conn: Connection, graph_slug: str, name: str) -> Any:
    return conn.execute(select(subgraphs).where(subgraphs.c.graph_slug == graph_slug, subgraphs.c.name == name)).first()


def _sub_dict(row: Any) -> dict[str, Any]:
    return {
        "uuid": row.uuid,
        "graph_slug": row.graph_slug,
        "name": row.name,
        "author": row.author,
        "pinned_ids": list(row.pinned_ids),
        "supernodes": [list(g) for g in row.supernodes],
        "clerps": [list(p) for p in row.clerps],
        "thresholds": dict(row.thresholds),
        "view": dict(row.view),
        "origin": row.origin,
        "version": row.version,
        "created_at": registry.iso(row.created_at),
        "updated_at": registry.iso(row.updated_at),
    }


def _check_parts(pinned_ids, supernodes, clerps, thresholds, view) -> dict[str, Any]:  # noqa: ANN001
    pinned = [str(i) for i in pinned_ids or []]
    groups = []
    for group in supernodes or []:
        if not isinstance(group, (list, tuple)) or len(group) < 2:
            raise CircuitKBError(f"a supernode is [name, node_id, ...] with at least one node; got {group!r}")
        groups.append([str(x) for x in group])
    pairs = []
    for pair in clerps or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise CircuitKBError(f"a custom clerp is [node_id, text]; got {pair!r}")
        pairs.append([str(pair[0]), str(pair[1])])
    limits = {}
    for key, value in (thresholds or {}).items():
        if key not in _THRESHOLDS:
            raise CircuitKBError(f"thresholds are {' and '.join(_THRESHOLDS)}; got {key!r}")
        if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise CircuitKBError(f"{key} is a number from 0 to 1; got {value!r}")
        limits[key] = float(value)
    extra = {k: str(v) for k, v in (view or {}).items() if k in _VIEW_KEYS}
    return {"pinned_ids": pinned, "supernodes": groups, "clerps": pairs, "thresholds": limits, "view": extra}


# --- the viewer file --------------------------------------------------------------------------------------


def viewer_json(core: "Core", graph_slug: str, subgraph_name: str | None = FILE_VIEW, team_labels: bool = True) -> dict[str, Any]:
    """The graph as graph JSON with ``subgraph_name`` as its ``qParams`` and, with
    ``team_labels``, each feature node's clerp replaced by the team's best label for it (a
    node's own label, else one for the feature in this graph, else everywhere; accepted before
    proposed, most up-voted first; rejected labels never). A subgraph's custom clerps win."""

    row = core.graph_row(graph_slug)
    stored = core.store.load_graph(row.id)
    with core.engine.connect() as conn:
        extra = conn.execute(select(graph_link_extra.c.extra).where(graph_link_extra.c.graph_id == row.id)).scalar()
    doc = graph_json(row, stored, extra)
    sub = subgraph(core, graph_slug, subgraph_name) if subgraph_name else None
    if sub is not None:
        doc["qParams"] = to_qparams(sub)
        if "pruningThreshold" in sub["thresholds"]:
            doc["metadata"] = {**doc["metadata"], "node_threshold": sub["thresholds"]["pruningThreshold"]}
    clerps = team_clerps(core, graph_slug, stored.nodes) if team_labels else {}
    clerps.update({node_id: text for node_id, text in (sub["clerps"] if sub else [])})
    for node in doc["nodes"]:
        if node.get("node_id") in clerps:
            node["clerp"] = clerps[node["node_id"]]
    return doc


def team_clerps(core: "Core", graph_slug: str, nodes: list[dict[str, Any]]) -> dict[str, str]:
    """node_id -> the team's best label, for the feature nodes of one graph."""
    fids = sorted({n["feature_id"] for n in nodes if n.get("feature_id") is not None})
    if not fids:
        return {}
    by_feature: dict[int, list[dict[str, Any]]] = {}
    with core.engine.connect() as conn:
        for start in range(0, len(fids), 900):
            query = select(labels).where(labels.c.feature_id.in_(fids[start : start + 900]), labels.c.status != REJECTED)
            for r in conn.execute(query):
                if r.graph_slug in (None, graph_slug):
                    by_feature.setdefault(r.feature_id, []).append(
                        {"id": r.id, "text": r.text, "node_id": r.node_id, "graph_slug": r.graph_slug, "status": r.status,
                         "up_votes": r.up_votes, "down_votes": r.down_votes, "created_at": registry.iso(r.created_at)}
                    )
    out: dict[str, str] = {}
    for node in nodes:
        found = by_feature.get(node.get("feature_id"))
        if not found:
            continue
        scoped = [r for r in found if r["node_id"] == node["node_id"]] or [r for r in found if r["graph_slug"] and not r["node_id"]] or [
            r for r in found if r["graph_slug"] is None
        ]
        if scoped:
            out[node["node_id"]] = rank(scoped)[0]["text"]
    return out

