"""Saved sets of graphs: the graphs a selection matches, frozen under a name that every question
then takes (``Selection(saved_set=...)``, ``--set NAME``, ``set=`` in the app's addresses).

Others choose graphs by a set's name, so saving one (or replacing it) is a labeller's act once the
knowledge base has accounts, checked and written to the audit log in the save's transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, insert

from kb.errors import CircuitKBError
from kb.labels import audit
from kb.labels.accounts import Actor, authorize
from kb.registry import now
from kb.selection import Selection, select_graphs
from schema.sql import LABELLER, graph_sets

if TYPE_CHECKING:
    from kb.core import Core


def save_set(core: "Core", name: str, selection: Selection, actor: Actor) -> list[str]:
    """Save the slugs that ``selection`` matches now under ``name`` (replacing an older set of
    that name); returns them. Raises PermissionDenied when ``actor`` may not."""
    name = name.strip()
    if not name:
        raise CircuitKBError("a saved set needs a name")
    chosen = [g.slug for g in select_graphs(core.engine, selection)]
    if not chosen:
        raise CircuitKBError("the selection matches no graph; nothing saved")
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        conn.execute(delete(graph_sets).where(graph_sets.c.name == name))
        conn.execute(insert(graph_sets).values(name=name, slugs=chosen, created_at=now()))
        audit.record(conn, actor.name, "set.save", name, {"graphs": len(chosen)})
    return chosen
