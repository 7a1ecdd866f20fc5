"""Saved sets of graphs: the graphs a selection matches, frozen under a name that every question
then takes (``Selection(saved_set=...)``, ``--set NAME``, ``set=`` in the app's addresses).

Others choose graphs by a set's name, so saving one (or replacing or deleting it) is a labeller's
act once the knowledge base has accounts, checked and written to the audit log in the same
transaction. Reading the sets is for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from kb.errors import CircuitKBError, NotFoundError
from kb.labels import audit
from kb.labels.accounts import Actor, authorize
from kb.parallel_reads import chunks
from kb.registry import aware, now
from kb.selection import Selection, checked_name, select_graphs
from schema.sql import LABELLER, READY, graph_sets, graphs

if TYPE_CHECKING:
    from kb.core import Core


def save_set(core: "Core", name: str, selection: Selection, actor: Actor) -> list[str]:
    """Save the slugs that ``selection`` matches now under ``name`` (replacing an older set of
    that name); returns them. Raises PermissionDenied when ``actor`` may not."""
    name = checked_name(name, "a saved set's name")
    chosen = [g.slug for g in select_graphs(core.engine, selection)]
    if not chosen:
        raise CircuitKBError("the selection matches no graph; nothing saved")
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        conn.execute(delete(graph_sets).where(graph_sets.c.name == name))
        conn.execute(insert(graph_sets).values(name=name, slugs=chosen, created_at=now()))
        audit.record(conn, actor.name, "set.save", name, {"graphs": len(chosen)})
    return chosen


@dataclass(frozen=True)
class SavedSet:
    """A saved set: its name, the slugs it was saved with, when, and which of them are stored now
    (a graph removed since is kept in the set, and the questions skip it)."""

    name: str
    slugs: tuple[str, ...]
    created_at: datetime
    stored: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        stored = set(self.stored)
        return tuple(s for s in self.slugs if s not in stored)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slugs": list(self.slugs),
            "created_at": self.created_at.isoformat(),
            "missing": list(self.missing),
        }


def saved_sets(core: "Core", name: str | None = None) -> list[SavedSet]:
    """The saved sets ordered by name (only the one called ``name`` when given: NotFoundError
    when there is none)."""
    query = select(graph_sets.c.name, graph_sets.c.slugs, graph_sets.c.created_at).order_by(graph_sets.c.name)
    if name is not None:
        query = query.where(graph_sets.c.name == name)
    with core.engine.connect() as conn:
        rows = conn.execute(query).all()
        named = sorted({slug for row in rows for slug in row.slugs})
        stored = {
            slug
            for part in chunks(named, 500)  # sets of thousands of graphs: within any driver's bound parameters
            for slug in conn.execute(select(graphs.c.slug).where(graphs.c.status == READY, graphs.c.slug.in_(part))).scalars()
        }
    if name is not None and not rows:
        raise NotFoundError(f"no saved set of graphs called {name!r}")
    return [SavedSet(r.name, tuple(r.slugs), aware(r.created_at), tuple(s for s in r.slugs if s in stored)) for r in rows]


def saved_set_names(core: "Core") -> list[str]:
    """The names of the saved sets, sorted (what a picker offers; no slugs read)."""
    with core.engine.connect() as conn:
        return list(conn.execute(select(graph_sets.c.name).order_by(graph_sets.c.name)).scalars())


def delete_set(core: "Core", name: str, actor: Actor) -> None:
    """Forget the saved set ``name`` (its graphs stay). A labeller's act once the knowledge base
    has accounts, audited as "set.delete". Raises NotFoundError when there is no such set."""
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        gone = conn.execute(delete(graph_sets).where(graph_sets.c.name == name)).rowcount
        if not gone:
            raise NotFoundError(f"no saved set of graphs called {name!r}")
        audit.record(conn, actor.name, "set.delete", name, {})
