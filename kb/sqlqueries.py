"""Reads of the SQL database that the questions share: features by id, their texts, graphs' metadata.

They belong to the core layer (beside :mod:`kb.registry`), so that analyses and both graph stores
read the same way and no analysis reaches into a store for its SQL.

A list of ids travels as ONE parameter (:func:`among`): a JSON array read with ``json_each`` on
SQLite, an array compared with ``= ANY`` on PostgreSQL, so that ten thousand ids neither hit a
bound-parameter limit nor change the statement's text.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import ARRAY, BigInteger, ColumnElement, Connection, Float, Integer, any_, func, literal, select

from ingest.records import FeatureKey
from schema.sql import READY, descriptions, features, graphs, labels


def among(conn: Connection, column: ColumnElement[Any], ids: Iterable[int], *, lookup: bool = True) -> ColumnElement[bool]:
    """``column IN ids``, with the ids bound as one parameter.

    ``lookup=False`` keeps SQLite from answering the test with an index on ``column``. Without
    statistics, SQLite otherwise drives a query from a long id list through the primary key,
    reading every node of every listed graph, where a lookup by feature reads only a few.
    """
    values = sorted({int(i) for i in ids})
    if conn.dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(Integer)))
    listed = func.json_each(json.dumps(values)).table_valued("value")
    tested = column if lookup else column + 0
    return tested.in_(select(listed.c.value))


def keys_table(conn: Connection, keys: Sequence[tuple[Any, ...]], names: Sequence[str], real: Sequence[str] = ()) -> Any:
    """A table of integer tuples ``keys`` with columns ``names`` (those named in ``real`` hold
    floats), bound as one parameter per column: join it to look rows up by composite key (each
    row one index seek), where a long ``OR`` of conditions costs more to build than to run."""
    kinds = [float if n in real else int for n in names]
    # converted a column at a time: a row at a time took a quarter longer on 100,000 keys
    columns = [list(map(kind, column)) for kind, column in zip(kinds, zip(*keys))]
    if conn.dialect.name == "sqlite" and columns and float not in kinds:
        widths = [max(max(column).bit_length(), 1) for column in columns]
        if min(min(column) for column in columns) >= 0 and sum(widths) <= 63:
            # each key as one integer, its columns side by side in its bits: SQLite reads a
            # list of numbers several times faster than a list of lists taken apart with
            # json_extract (100,000 keys: 0.04 s against 0.1 s, and a join half as long)
            shifts = [sum(widths[i + 1 :]) for i in range(len(widths))]
            packed = np.zeros(len(columns[0]), dtype=np.int64)
            for column, shift in zip(columns, shifts):
                packed |= np.array(column, dtype=np.int64) << shift
            value = func.json_each(json.dumps(np.unique(packed).tolist())).table_valued("value").c.value
            return select(*(value.op(">>")(shift).op("&")((1 << width) - 1).label(n) for n, shift, width in zip(names, shifts, widths))).subquery("k")
    rows = sorted(set(zip(*columns)))
    if conn.dialect.name == "postgresql":
        arrays = [literal([row[i] for row in rows], ARRAY(Float if kind is float else BigInteger)) for i, kind in enumerate(kinds)]
        return func.unnest(*arrays).table_valued(*names).render_derived(name="k")
    listed = func.json_each(json.dumps(rows)).table_valued("value")
    return select(*(func.json_extract(listed.c.value, f"$[{i}]").label(n) for i, n in enumerate(names))).subquery("k")


def ready_graph_count(conn: Connection) -> int:
    """How many graphs are visible."""
    return conn.execute(select(func.count()).select_from(graphs).where(graphs.c.status == READY)).scalar_one()


def feature_keys(conn: Connection, fids: Iterable[int]) -> dict[int, FeatureKey]:
    """The identity (transcoder set, layer, index) of each SQL feature id that exists."""
    wanted = sorted(set(fids))
    if not wanted:
        return {}
    f = features.c
    rows = conn.execute(select(f.id, f.transcoder_set, f.layer, f["index"]).where(among(conn, f.id, wanted)))
    return {fid: FeatureKey(tset, layer, index) for fid, tset, layer, index in rows}


def feature_labels(conn: Connection, fids: Sequence[int]) -> list[tuple[int, str, str | None]]:
    """(feature id, text, graph slug or None) of every label people wrote for ``fids``, oldest first."""
    if not fids:
        return []
    query = select(labels.c.feature_id, labels.c.text, labels.c.graph_slug).where(among(conn, labels.c.feature_id, fids)).order_by(labels.c.id)
    return [tuple(row) for row in conn.execute(query)]


def feature_descriptions(conn: Connection, fids: Sequence[int]) -> list[tuple[int, str, str]]:
    """(feature id, source, text) of the descriptions (clerps, explanations) of ``fids``, each
    distinct triple once, in the order of its oldest description (a clerp repeats in every graph
    that has the feature)."""
    if not fids:
        return []
    d = descriptions.c
    # the same text has the same hash: each distinct text's oldest row is found in the index
    # (feature_id, source, text_hash), and only that row is read
    first = select(func.min(d.id).label("id")).where(among(conn, d.feature_id, fids)).group_by(d.feature_id, d.source, d.text_hash).subquery()
    query = select(d.feature_id, d.source, d.text).join(first, d.id == first.c.id).order_by(d.id)
    return conn.execute(query).cursor.fetchall()  # plain tuples: a question may name tens of thousands


def ready_slugs(conn: Connection, gids: Iterable[int]) -> list[str]:
    """The slugs of the visible graphs among ``gids``."""
    wanted = sorted(set(gids))
    if not wanted:
        return []
    g = graphs.c
    return list(conn.execute(select(g.slug).where(among(conn, g.id, wanted), g.status == READY)).scalars())


def ready_graphs_in(conn: Connection, languages: Sequence[str]) -> list[tuple[int, str, str | None, str | None]]:
    """(id, slug, language, family) of every visible graph in one of ``languages``."""
    g = graphs.c
    return [tuple(row) for row in conn.execute(select(g.id, g.slug, g.language, g.family).where(g.status == READY, g.language.in_(list(languages))))]


def family_names(conn: Connection) -> set[str]:
    """Every family name that a visible graph has."""
    g = graphs.c
    return set(conn.execute(select(g.family).where(g.status == READY, g.family.is_not(None)).distinct()).scalars())


def graph_metadata(conn: Connection, gids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The file metadata of each graph among ``gids`` ({} where it had none)."""
    wanted = sorted(set(gids))
    if not wanted:
        return {}
    g = graphs.c
    return {gid: metadata or {} for gid, metadata in conn.execute(select(g.id, g.metadata).where(among(conn, g.id, wanted)))}
