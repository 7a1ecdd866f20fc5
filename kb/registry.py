"""The graph registry in SQL: which graphs exist, in which state, and who is writing them.

A graph version moves ``loading`` -> ``ready`` (-> ``replaced`` when a newer file takes its
slug, until the ingest that replaced it purges it). Only ``ready`` graphs are visible to
queries. A ``loading`` row whose writer died (a process of this host that is gone, or another
host's heartbeat gone stale) and a ``replaced`` row left behind are purged by the next ingest,
before it writes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import ARRAY, BigInteger, Connection, Engine, Integer, Select, String, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from ingest.records import FeatureKey, GraphHeader
from schema.sql import LOADING, READY, REPLACED, descriptions, features, graph_link_extra, graph_qk, graph_tags, graphs, kb_meta

# a writer on another host is presumed dead when it has not been heard of for this long
LEASE = timedelta(minutes=30)
_HOST = socket.gethostname()


def now() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: datetime) -> datetime:
    """A stored time with its zone (SQLite gives times back without one; they are UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC, or None."""
    return None if value is None else aware(value).astimezone(timezone.utc).isoformat()


def owner_token() -> str:
    return f"{_HOST}:{os.getpid()}"


def owner_alive(owner: str | None, heartbeat: datetime | None) -> bool:
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host == _HOST and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if heartbeat is None:
        return False
    return now() - aware(heartbeat) < LEASE


def dialect_insert(conn: Connection, table):  # noqa: ANN001, ANN201
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)


def ensure_features(
    conn: Connection, keys: Iterable[FeatureKey], cache: dict[FeatureKey, int] | None = None
) -> dict[FeatureKey, int]:
    """The SQL id of every feature, creating the missing ones (safe under concurrency).

    ``cache`` maps features already known to their ids; ids never change once given, so a
    caller may keep one across graphs and it is filled in here.
    """
    keys = sorted(set(keys))
    if not keys:
        return {}
    known = cache if cache is not None else {}
    found = {k: known[k] for k in keys if k in known}
    unknown = [k for k in keys if k not in found]
    if unknown:
        found.update(lookup_features(conn, unknown))
        missing = [k for k in unknown if k not in found]
        if missing:
            stmt = dialect_insert(conn, features).on_conflict_do_nothing()
            conn.execute(stmt, [{"transcoder_set": k.transcoder_set, "layer": k.layer, "index": k.index} for k in missing])
            found.update(lookup_features(conn, missing))
        known.update(found)
    return found


def lookup_features(conn: Connection, keys: Sequence[FeatureKey]) -> dict[FeatureKey, int]:
    """The SQL ids of the features ``keys`` that exist: one index seek per key."""
    found: dict[FeatureKey, int] = {}
    by_set: dict[str, list[tuple[int, int]]] = {}
    for k in keys:
        by_set.setdefault(k.transcoder_set, []).append((k.layer, k.index))
    postgres = conn.dialect.name == "postgresql"
    query = _feature_lookup(postgres)
    for tset, pairs in by_set.items():
        if postgres:
            params = {"tset": tset, "layers": [p[0] for p in pairs], "indexes": [p[1] for p in pairs]}
        else:
            params = {"tset": tset, "pairs": json.dumps(pairs)}
        for fid, layer, index in conn.execute(query, params):
            found[FeatureKey(tset, layer, index)] = fid
    return found


@lru_cache(maxsize=2)
def _feature_lookup(postgres: bool) -> Select:
    """Features of one set by (layer, index) pairs bound as one parameter (two on PostgreSQL).

    Built once: an ingest looks features up for every graph, and building the statement would
    cost more than running it. An IN list, not a join: SQLite would scan the set's features
    for each pair of a join.
    """
    f = features.c
    if postgres:
        pairs = func.unnest(bindparam("layers", type_=ARRAY(Integer)), bindparam("indexes", type_=ARRAY(BigInteger)))
        wanted = pairs.table_valued("layer", "index").render_derived(name="k")
    else:
        listed = func.json_each(bindparam("pairs", type_=String)).table_valued("value")
        wanted = select(func.json_extract(listed.c.value, "$[0]").label("layer"), func.json_extract(listed.c.value, "$[1]").label("index")).subquery("k")
    return select(f.id, f.layer, f["index"]).where(
        f.transcoder_set == bindparam("tset"), tuple_(f.layer, f["index"]).in_(select(wanted.c.layer, wanted.c["index"]))
    )


@dataclass(frozen=True)
class Claim:
    """What an ingest may do with one file."""

    action: str  # "write" | "unchanged" | "busy" | "conflict"
    graph_id: int | None
    takeover: bool = False
    previous_id: int | None = None
    reason: str = ""


def claim(engine: Engine, header: GraphHeader, digest: str, source: str, store: str, on_change: str) -> Claim:
    """Decide whether to write this graph, and register it as ``loading`` if so."""
    with engine.begin() as conn:
        return claim_in(conn, header, digest, source, store, on_change)


def claim_in(conn: Connection, header: GraphHeader, digest: str, source: str, store: str, on_change: str) -> Claim:
    """:func:`claim` in the caller's transaction."""
    rows = conn.execute(
        select(graphs.c.id, graphs.c.status, graphs.c.content_hash, graphs.c.owner, graphs.c.heartbeat_at, graphs.c.store)
        .where(graphs.c.slug == header.slug, graphs.c.status.in_([LOADING, READY]))
    ).all()
    ready = next((r for r in rows if r.status == READY), None)
    same = next((r for r in rows if r.content_hash == digest), None)
    if same is not None and same.status == READY:
        return Claim("unchanged", same.id, reason="same content already stored")
    if ready is not None and on_change != "replace":
        if on_change == "skip":
            return Claim("unchanged", ready.id, reason="slug exists with other content (kept, --on-change skip)")
        return Claim(
            "conflict",
            ready.id,
            reason=f"slug {header.slug!r} is already stored with other content; use --on-change replace",
        )
    if same is not None:  # loading
        if owner_alive(same.owner, same.heartbeat_at) and same.owner != owner_token():
            return Claim("busy", same.id, reason=f"being ingested by another process ({same.owner})")
        conn.execute(
            update(graphs).where(graphs.c.id == same.id).values(owner=owner_token(), heartbeat_at=now(), store=store)
        )
        return Claim("write", same.id, takeover=True, previous_id=ready.id if ready else None)
    values = _registry_values(header, digest, source, store)
    # a refused insert aborts a PostgreSQL transaction unless it ran in a savepoint; SQLite
    # undoes only the statement (and a savepoint is two more round trips per graph)
    try:
        with conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext():
            gid = conn.execute(insert(graphs).returning(graphs.c.id), values).scalar_one()
    except IntegrityError:
        return Claim("busy", None, reason="being ingested by another process")
    return Claim("write", gid, previous_id=ready.id if ready else None)


def _registry_values(header: GraphHeader, digest: str, source: str, store: str) -> dict[str, Any]:
    return {
        "slug": header.slug,
        "status": LOADING,
        "store": store,
        "content_hash": digest,
        "source": source,
        "prompt": header.prompt,
        "prompt_tokens": header.prompt_tokens,
        "model": header.model,
        "scan": header.scan,
        "transcoder_set": header.transcoder_set,
        "schema_version": header.schema_version,
        "metadata": header.metadata,
        "qparams": header.qparams,
        "extra": header.extra,
        "owner": owner_token(),
        "heartbeat_at": now(),
        "created_at": now(),
    }


def ready_hashes(conn: Connection) -> dict[str, str]:
    """Content hash -> slug of every visible graph."""
    return dict(conn.execute(select(graphs.c.content_hash, graphs.c.slug).where(graphs.c.status == READY)).all())


def heartbeat(engine: Engine, gid: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(graphs).where(graphs.c.id == gid).values(heartbeat_at=now()))


@dataclass
class Finish:
    n_nodes: int
    n_links: int
    n_features: int
    language: str | None
    family: str | None
    tags: list[str]
    clerps: list[tuple[int, str]]  # (feature id, clerp)
    link_extra: dict[str, Any] | None


def finish(conn: Connection, gid: int, slug: str, previous_id: int | None, done: Finish) -> None:
    """Make graph ``gid`` the visible version of its slug (inside the caller's transaction).

    ``gid`` is still ``loading``, so it has no tags, descriptions or link extras: they are
    written only here, in the transaction that publishes it (an id taken over from a dead
    writer had its data in the graph store only).
    A new version of a graph keeps the family of the version it replaces unless its manifest
    names one: a family a person accepted survives a re-ingest of the changed file.
    """
    family = done.family
    if previous_id is not None and previous_id != gid:
        if family is None:
            family = conn.execute(select(graphs.c.family).where(graphs.c.id == previous_id)).scalar_one_or_none()
        conn.execute(update(graphs).where(graphs.c.id == previous_id).values(status=REPLACED))
        conn.execute(delete(descriptions).where(descriptions.c.graph_id == previous_id))
    if done.tags:
        conn.execute(insert(graph_tags), [{"graph_id": gid, "tag": t} for t in sorted(set(done.tags))])
    if done.link_extra:
        conn.execute(insert(graph_link_extra).values(graph_id=gid, extra=done.link_extra))
    clerp_rows = _clerp_rows(gid, done.clerps)
    if clerp_rows:
        conn.execute(insert(descriptions), clerp_rows)
    conn.execute(
        update(graphs)
        .where(graphs.c.id == gid)
        .values(
            status=READY,
            n_nodes=done.n_nodes,
            n_links=done.n_links,
            n_features=done.n_features,
            language=done.language,
            family=family,
            ready_at=now(),
            owner=None,
        )
    )


def _clerp_rows(gid: int, clerps: list[tuple[int, str]]) -> list[dict[str, Any]]:
    seen: set[tuple[int, str]] = set()
    rows = []
    stamp = now()
    for fid, text in clerps:
        text = text.strip()
        if not text or (fid, text) in seen:
            continue
        seen.add((fid, text))
        rows.append(
            {
                "feature_id": fid,
                "source": "clerp",
                "kind": "",
                "author": "",
                "text": text,
                "text_hash": text_hash(text),
                "graph_id": gid,
                "created_at": stamp,
            }
        )
    return rows


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ready_graph(conn: Connection, slug: str):  # noqa: ANN201
    return conn.execute(select(graphs).where(graphs.c.slug == slug, graphs.c.status == READY)).first()


def stale_versions(conn: Connection) -> list[tuple[int, str]]:
    """(graph id, store) of replaced versions whose data may still be in a store."""
    return [tuple(r) for r in conn.execute(select(graphs.c.id, graphs.c.store).where(graphs.c.status == REPLACED))]


def forget(conn: Connection, gid: int) -> None:
    conn.execute(delete(graph_qk).where(graph_qk.c.graph_id == gid))
    conn.execute(delete(graph_tags).where(graph_tags.c.graph_id == gid))
    conn.execute(delete(graph_link_extra).where(graph_link_extra.c.graph_id == gid))
    conn.execute(delete(descriptions).where(descriptions.c.graph_id == gid))
    conn.execute(delete(graphs).where(graphs.c.id == gid))


def counts(conn: Connection) -> dict[str, int]:
    """Visible graphs, with their nodes and links as counted when each was published; features
    and descriptions known."""
    visible = conn.execute(
        select(func.count(), func.coalesce(func.sum(graphs.c.n_nodes), 0), func.coalesce(func.sum(graphs.c.n_links), 0)).where(graphs.c.status == READY)
    ).one()
    return {
        "graphs": int(visible[0]),
        "nodes": int(visible[1]),
        "links": int(visible[2]),
        "features": conn.execute(select(func.count()).select_from(features)).scalar_one(),
        "descriptions": conn.execute(select(func.count()).select_from(descriptions)).scalar_one(),
    }


# the key in kb_meta whose value changes with every change of graphs' families (kb_version reads it)
FAMILIES_CHANGED = "families.changed"


def mark_families_changed(conn: Connection) -> None:
    """Record, in the caller's transaction, that some graph's family changed."""
    stamp = uuid.uuid4().hex
    stmt = dialect_insert(conn, kb_meta).values(key=FAMILIES_CHANGED, value=stamp)
    conn.execute(stmt.on_conflict_do_update(index_elements=[kb_meta.c.key], set_={"value": stamp}))


def instance_id(engine: Engine) -> str:
    """This knowledge base's id, made once: a graph store is paired with one SQL database."""
    with engine.begin() as conn:
        stmt = dialect_insert(conn, kb_meta).values(key="instance", value=uuid.uuid4().hex).on_conflict_do_nothing()
        conn.execute(stmt)
        return conn.execute(select(kb_meta.c.value).where(kb_meta.c.key == "instance")).scalar_one()
