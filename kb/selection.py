"""Choosing graphs: by slugs, tags, family, language, model, prompt text, or a saved set.

Every cross-graph question starts here; the SQL registry is the one place that knows which
graph versions are visible, so stores are always handed explicit graph ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select

from kb.errors import CircuitKBError, NotFoundError
from schema.sql import READY, graph_sets, graph_tags, graphs


@dataclass(frozen=True)
class Selection:
    """A filter over stored graphs; empty fields do not filter. All given fields must hold."""

    slugs: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # every tag must be present
    family: str | None = None
    language: str | None = None
    languages: tuple[str, ...] = ()  # any of these
    model: str | None = None  # model id (scan) or transcoder set
    prompt_contains: str | None = None
    saved_set: str | None = None

    def is_empty(self) -> bool:
        return self == Selection()


@dataclass(frozen=True)
class GraphInfo:
    gid: int
    slug: str
    prompt: str
    prompt_tokens: tuple[str, ...]
    model: str | None
    transcoder_set: str
    language: str | None
    family: str | None
    tags: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "prompt": self.prompt,
            "model": self.model,
            "transcoder_set": self.transcoder_set,
            "language": self.language,
            "family": self.family,
            "tags": list(self.tags),
        }


def select_graphs(engine: Engine, selection: Selection) -> list[GraphInfo]:
    """The visible graphs matching ``selection``, ordered by slug.

    Slugs that are named but not stored are an error (a typo should not silently shrink the
    set); the graphs of a saved set that were removed since it was saved are skipped; a
    selection that matches nothing returns an empty list.
    """
    g = graphs.c
    # only what a GraphInfo holds: decoding every graph's metadata JSON cost more than the query
    query = select(g.id, g.slug, g.prompt, g.prompt_tokens, g.model, g.transcoder_set, g.language, g.family).where(g.status == READY)
    with engine.connect() as conn:
        slugs = list(selection.slugs)
        if selection.saved_set:
            slugs += saved_set_slugs(conn, selection.saved_set)
        if slugs:
            query = query.where(g.slug.in_(slugs))
        for tag in selection.tags:
            # the graphs of a tag from its index, rather than every graph probed for the tag
            query = query.where(g.id.in_(select(graph_tags.c.graph_id).where(graph_tags.c.tag == tag)))
        if selection.family:
            query = query.where(g.family == selection.family)
        if selection.language:
            query = query.where(g.language == selection.language.lower())
        if selection.languages:
            query = query.where(g.language.in_([lang.lower() for lang in selection.languages]))
        if selection.model:
            query = query.where((g.model == selection.model) | (g.scan == selection.model) | (g.transcoder_set == selection.model))
        if selection.prompt_contains:
            needle = selection.prompt_contains.lower()
            query = query.where(func.lower(g.prompt).contains(needle, autoescape=True))
        # plain tuples from the driver: a question over every graph reads ten thousand rows
        rows = conn.execute(query.order_by(g.slug)).cursor.fetchall()
        tags = _tags_of(conn, query.with_only_columns(g.id))
    if selection.slugs:
        # a saved set's graphs removed since are skipped (`circuitkb sets show` marks them); a slug
        # named here is a typo or a mistake, and said
        missing = sorted(set(selection.slugs) - {r[1] for r in rows})
        if missing and not _other_filters(selection):
            raise NotFoundError(f"no stored graph with slug {', '.join(repr(s) for s in missing)}")
    return [
        GraphInfo(gid, slug, prompt, _tokens(tokens), model, tset, language, family, tuple(tags.get(gid, ())))
        for gid, slug, prompt, tokens, model, tset, language, family in rows
    ]


def _tokens(stored: Any) -> tuple[str, ...]:
    """A graph's prompt tokens as the driver gives the JSON column (text on SQLite, decoded on
    PostgreSQL)."""
    if isinstance(stored, (str, bytes)):
        stored = json.loads(stored)
    return tuple(stored or ())


def _other_filters(selection: Selection) -> bool:
    return bool(
        selection.tags or selection.family or selection.language or selection.languages or selection.model or selection.prompt_contains
    )


def _tags_of(conn: Connection, gids: Select) -> dict[int, list[str]]:
    """The tags of the graphs whose ids ``gids`` selects, each graph's sorted."""
    out: dict[int, list[str]] = {}
    t = graph_tags.c
    for gid, tag in conn.execute(select(t.graph_id, t.tag).where(t.graph_id.in_(gids)).order_by(t.tag)).cursor.fetchall():
        out.setdefault(gid, []).append(tag)
    return out


def saved_set_slugs(conn: Connection, name: str) -> list[str]:
    slugs = conn.execute(select(graph_sets.c.slugs).where(graph_sets.c.name == name)).scalar()
    if slugs is None:
        raise NotFoundError(f"no saved set of graphs called {name!r}")
    return list(slugs)


MAX_NAME = 200  # graphs.family and graph_sets.name are String(200)


def checked_name(text: str, what: str) -> str:
    """A name that chooses graphs (a family's, a saved set's) as typed, checked: 1 to 200
    characters after trimming, no control characters (it is typed again in commands and addresses)."""
    name = text.strip() if isinstance(text, str) else ""
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise CircuitKBError(f"{what} is 1 to {MAX_NAME} characters without control characters; got {text!r}")
    return name
