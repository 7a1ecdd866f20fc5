"""Which graphs form which family: the list, and the changes a person makes to it.

A graph's family is the ``family`` column of the registry: an ingest manifest sets it, and the
functions here change it on the visible graphs (accept a proposal, add graphs, take them out,
rename a family, clear one), so that every question that chooses graphs by family (``--family``,
the languages measure, a family's core) sees the change at once. The rules:

- Every change needs the labeller role once the knowledge base has accounts, checked in the
  change's own transaction, and is written to the audit log in that transaction.
- A graph that already belongs to another family (declared in a manifest, or accepted before)
  keeps it unless the change says ``replace=True``; :class:`~kb.errors.FamilyConflict` names them.
- A family holds graphs of one model and transcoder set (features of others never match).
- Doing the same thing twice changes nothing the second time, and logs nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import ColumnElement, Connection, select, update

from kb import registry, sqlqueries
from kb.core import Core
from kb.errors import CircuitKBError, FamilyConflict, NotFoundError
from kb.families.proposals import FamilyProposal, comparable_key
from kb.labels import audit
from kb.labels.accounts import Actor, authorize
from kb.selection import GraphInfo, Selection, checked_name
from schema.sql import LABELLER, READY, graphs


@dataclass(frozen=True)
class Family:
    """A family and its visible graphs."""

    name: str
    slugs: tuple[str, ...]
    languages: tuple[str, ...]
    transcoder_sets: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "slugs": list(self.slugs), "languages": list(self.languages), "transcoder_sets": list(self.transcoder_sets)}


@dataclass(frozen=True)
class Move:
    """One graph's family before and after a change (None: no family)."""

    slug: str
    before: str | None
    after: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"slug": self.slug, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class FamilyChange:
    """What a change did: the graphs it moved, and those already as asked."""

    action: str
    family: str | None
    moved: tuple[Move, ...]
    unchanged: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.moved)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "family": self.family,
            "moved": [m.as_dict() for m in self.moved],
            "unchanged": list(self.unchanged),
        }


def list_families(core: Core, selection: Selection | None = None) -> list[Family]:
    """Every family among the chosen graphs (all visible graphs by default), by name."""
    members: dict[str, list[GraphInfo]] = defaultdict(list)
    for g in core.select(selection):
        if g.family:
            members[g.family].append(g)
    return [
        Family(
            name,
            tuple(g.slug for g in found),
            tuple(sorted({g.language for g in found if g.language})),
            tuple(sorted({g.transcoder_set for g in found})),
        )
        for name, found in sorted(members.items())
    ]


def family_name(text: str) -> str:
    """A family name as typed, checked: 1 to 200 characters after trimming, no control characters."""
    return checked_name(text, "a family name")


def accept_proposal(core: Core, actor: Actor, proposal: FamilyProposal, name: str | None = None, *, replace: bool = False) -> FamilyChange:
    """Make a proposal's graphs one family, called ``name`` (default: the suggested name)."""
    return _put(core, actor, "accept", name or proposal.name, proposal.slugs, replace)


def add_to_family(core: Core, actor: Actor, name: str, slugs: Sequence[str], *, replace: bool = False) -> FamilyChange:
    """Put the graphs ``slugs`` in family ``name`` (made if new) beside the graphs already in it."""
    return _put(core, actor, "add", name, slugs, replace)


def remove_from_family(core: Core, actor: Actor, slugs: Sequence[str]) -> FamilyChange:
    """Take the graphs ``slugs`` out of whatever family they are in."""
    wanted = _slugs(slugs)
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        rows = _rows_of(conn, wanted)
        moved = [Move(r.slug, r.family, None) for r in rows if r.family is not None]
        if moved:
            _write(conn, [r.id for r in rows if r.family is not None], None, was=_ANY)
            _log(conn, actor, "remove", None, moved)
    return FamilyChange("remove", None, tuple(moved), tuple(r.slug for r in rows if r.family is None))


def rename_family(core: Core, actor: Actor, old: str, new: str) -> FamilyChange:
    """Call family ``old`` ``new`` (on every graph of it); refused when ``new`` has graphs already."""
    new = family_name(new)
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        rows = _members(conn, old)
        if new == old:
            return FamilyChange("rename", new, (), tuple(r.slug for r in rows))
        if _members(conn, new, missing_ok=True):
            raise CircuitKBError(f"a family called {new!r} exists already; move graphs into it with `circuitkb families add {new} SLUG...`")
        moved = [Move(r.slug, old, new) for r in rows]
        _write(conn, [r.id for r in rows], new, was=old)
        _log(conn, actor, "rename", new, moved, {"from": old})
    return FamilyChange("rename", new, tuple(moved), ())


def clear_family(core: Core, actor: Actor, name: str) -> FamilyChange:
    """Take every graph out of family ``name``: the family is gone."""
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        rows = _members(conn, name)
        moved = [Move(r.slug, name, None) for r in rows]
        _write(conn, [r.id for r in rows], None, was=name)
        _log(conn, actor, "clear", name, moved)
    return FamilyChange("clear", name, tuple(moved), ())


# --- helpers -----------------------------------------------------------------------------------------


def _put(core: Core, actor: Actor, action: str, name: str, slugs: Sequence[str], replace: bool) -> FamilyChange:
    name = family_name(name)
    wanted = _slugs(slugs)
    with core.engine.begin() as conn:
        authorize(conn, actor, LABELLER)
        rows = _rows_of(conn, wanted)
        kinds = {comparable_key(r) for r in [*rows, *_members(conn, name, missing_ok=True)]}
        if len(kinds) > 1:
            described = "; ".join(f"{model or '?'} with {tset}" for model, tset in sorted(kinds))
            raise CircuitKBError(f"a family holds graphs of one model and transcoder set, and these would mix {described}: features of different transcoder sets cannot be compared")
        taken = {r.slug: r.family for r in rows if r.family is not None and r.family != name}
        if taken and not replace:
            listed = ", ".join(f"{slug} (in {family!r})" for slug, family in sorted(taken.items()))
            raise FamilyConflict(
                f"already in another family (declared in a manifest or accepted before): {listed}; "
                f"nothing was changed: replace their family (--replace) to move them into {name!r}",
                taken,
            )
        moving = [r for r in rows if r.family != name]
        moved = [Move(r.slug, r.family, name) for r in moving]
        if moving:
            _write(conn, [r.id for r in moving], name, was=_ANY if replace else None)
            _log(conn, actor, action, name, moved)
    return FamilyChange(action, name, tuple(moved), tuple(r.slug for r in rows if r.family == name))


def _slugs(slugs: Iterable[str]) -> list[str]:
    wanted = sorted({s.strip() for s in slugs if s and s.strip()})
    if not wanted:
        raise CircuitKBError("name at least one graph (its slug)")
    return wanted


def _visible(conn: Connection, condition: ColumnElement[bool]) -> list[Any]:
    """The visible graphs that meet ``condition``, by slug: what a change reads of them."""
    g = graphs.c
    return conn.execute(select(g.id, g.slug, g.family, g.model, g.transcoder_set).where(g.status == READY, condition).order_by(g.slug)).all()


def _rows_of(conn: Connection, slugs: Sequence[str]) -> list[Any]:
    rows = _visible(conn, graphs.c.slug.in_(slugs))
    missing = sorted(set(slugs) - {r.slug for r in rows})
    if missing:
        raise NotFoundError(f"no stored graph with slug {', '.join(repr(s) for s in missing)}")
    return rows


def _members(conn: Connection, name: str, *, missing_ok: bool = False) -> list[Any]:
    rows = _visible(conn, graphs.c.family == name)
    if not rows and not missing_ok:
        raise NotFoundError(f"no family called {name!r}; `circuitkb families list` shows them")
    return rows


_ANY = object()  # _write's ``was`` when the graphs' family before does not matter


def _write(conn: Connection, gids: list[int], family: str | None, *, was: object) -> None:
    """Set the family of ``gids`` where it still is ``was`` (None: no family; _ANY: whatever it
    is): a concurrent change since they were read makes the whole change fail, not half of it."""
    g = graphs.c
    stmt = update(graphs).where(sqlqueries.among(conn, g.id, gids), g.status == READY)
    if was is None:
        stmt = stmt.where(g.family.is_(None))
    elif was is not _ANY:
        stmt = stmt.where(g.family == was)
    written = conn.execute(stmt.values(family=family)).rowcount
    if written != len(gids):
        raise CircuitKBError("someone changed these graphs meanwhile (a family or a new version); nothing was changed, try again")
    registry.mark_families_changed(conn)


def _log(conn: Connection, actor: Actor, action: str, family: str | None, moved: list[Move], extra: dict[str, Any] | None = None) -> None:
    detail = {"moved": [m.as_dict() for m in moved], **(extra or {})}
    audit.record(conn, actor.name, f"family.{action}", family or "", detail)
