"""Taking graphs out of the knowledge base (``circuitkb remove SLUG...``).

The graphs leave sight together in one SQL transaction: their registry rows become ``removed``,
they are taken away from the aggregates over the visible graphs, their clerps leave the
descriptions, and the audit log says who removed them. When a slug names no visible graph, or
the actor may not remove graphs (an admin's act once accounts exist), nothing is removed. Their
nodes and links are then purged from the graph store and their rows dropped; a remove
interrupted between the two steps is finished by the next ingest or remove
(:func:`kb.ingestion.recover`), and removing a graph that is gone is an error that changes
nothing. Labels, saved subgraphs and saved sets that name a removed slug are kept: they apply
again if a graph of that slug is ingested later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import delete, update

from kb.aggregates import keep as aggregates
from kb.core import Core
from kb.errors import CircuitKBError, NotFoundError
from kb.ingestion import recover
from kb.labels import audit
from kb.labels.accounts import Actor, authorize
from schema.sql import ADMIN, READY, REMOVED, descriptions, graphs


@dataclass
class RemoveReport:
    """The slugs removed, in the order given."""

    removed: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"removed": self.removed}


def remove_graphs(core: Core, slugs: Sequence[str], actor: Actor) -> RemoveReport:
    """Remove the visible graphs ``slugs``: all of them, or none (NotFoundError naming the
    unknown slugs, PermissionDenied when ``actor`` is not an admin of a KB with accounts)."""
    wanted = list(dict.fromkeys(s.strip() for s in slugs if s.strip()))
    if not wanted:
        raise CircuitKBError("name at least one graph slug to remove")
    with core.engine.begin() as conn:
        aggregates.lock(conn)
        authorize(conn, actor, ADMIN)
        g = graphs.c
        taken = conn.execute(
            update(graphs).where(g.slug.in_(wanted), g.status == READY).values(status=REMOVED).returning(g.id, g.slug)
        ).all()
        missing = sorted(set(wanted) - {slug for _gid, slug in taken})
        if missing:
            raise NotFoundError(f"no stored graph with slug {', '.join(repr(s) for s in missing)}; nothing was removed")
        for gid, slug in taken:
            aggregates.unpublish(conn, gid)
            conn.execute(delete(descriptions).where(descriptions.c.graph_id == gid))
            audit.record(conn, actor.name, "graph.remove", slug, {"graph_id": gid})
    recover(core)
    return RemoveReport(wanted)
