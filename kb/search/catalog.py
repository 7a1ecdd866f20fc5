"""The search catalog: every distinct description text, its keyword index, and who it describes.

One SQLite file, ``<home>/search/catalog.sqlite``, whatever the knowledge base's own database:

- ``texts``: each distinct text once, keyed by its SHA-256. A text's ``id`` (0, 1, 2, ...) is
  also its row in every model's vector file, so a text is embedded once per model, ever.
- ``texts_fts``: an FTS5 index of the texts (Porter stemming, accents folded) for the keyword
  half of the search.
- ``docs``: one row per description or label of the knowledge base, naming its feature (with
  the feature's set and layer, for filters), its text, source, author and graph. It mirrors the
  SQL tables ``descriptions`` and ``labels``; :mod:`kb.search.sync` keeps it up to date.
- ``state``: what has been mirrored so far (watermarks and fingerprints).

The file is derived from the SQL tables, except that ``texts`` numbers the rows of the vector
files: delete the whole ``search`` folder, not this file alone, to start afresh. FTS5 virtual tables are why this is plain ``sqlite3`` with
constant SQL and parameters rather than SQLAlchemy.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS texts (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, text TEXT NOT NULL)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS texts_fts USING fts5("
    "text, content='texts', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS docs ("
    " kind TEXT NOT NULL, ref INTEGER NOT NULL, feature_id INTEGER NOT NULL,"
    ' transcoder_set TEXT NOT NULL, layer INTEGER NOT NULL, "index" INTEGER NOT NULL,'
    " text_id INTEGER NOT NULL, source TEXT NOT NULL, author TEXT NOT NULL, graph_id INTEGER,"
    " PRIMARY KEY (kind, ref)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS docs_text ON docs (text_id)",
    # a text's distinct features, read from the index alone (Catalog.feature_counts)
    "CREATE INDEX IF NOT EXISTS docs_text_feature ON docs (text_id, feature_id)",
    "CREATE INDEX IF NOT EXISTS docs_feature ON docs (feature_id)",
    "CREATE INDEX IF NOT EXISTS docs_graph ON docs (graph_id) WHERE graph_id IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

DESCRIPTION, LABEL = "d", "l"
# document frequencies are counted up to this; a word in more texts is "common" and not looked up
# in the keyword index (the semantic candidates still get credit for it). At 1M descriptions,
# 1,000 rather than 2,000 cut a search's p95 from about 19 to 15 ms, and left 196 of 200 queries'
# top 20 the same (the other 4 shared 85-95%); the relevance set's answers did not change.
DF_CAP = 1_000
_CHUNK = 900
# texts kept in memory by Catalog.texts_of (a search reads a few hundred)
_TEXTS_KEPT = 200_000
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Doc:
    """One description or label, as the catalog knows it."""

    kind: str  # DESCRIPTION | LABEL
    ref: int  # descriptions.id or labels.id
    feature_id: int
    transcoder_set: str
    layer: int
    index: int
    text_id: int
    source: str
    author: str
    graph_id: int | None


@dataclass(frozen=True)
class DocFilter:
    """Conditions on docs; empty fields do not filter."""

    transcoder_sets: tuple[str, ...] = ()  # exact set names
    set_prefixes: tuple[str, ...] = ()  # "gemma-2-2b/" (a model id)
    set_suffixes: tuple[str, ...] = ()  # "/clt-hp" (a Neuronpedia source set)
    min_layer: int | None = None
    max_layer: int | None = None
    sources: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return self == DocFilter()

    def sql(self) -> tuple[str, list]:
        """A WHERE fragment (starting with AND, or empty) and its parameters."""
        parts: list[str] = []
        params: list = []
        sets: list[str] = []
        if self.transcoder_sets:
            sets.append(f"transcoder_set IN ({_marks(len(self.transcoder_sets))})")
            params.extend(self.transcoder_sets)
        for prefix in self.set_prefixes:
            sets.append("substr(transcoder_set, 1, ?) = ?")
            params.extend([len(prefix), prefix])
        for suffix in self.set_suffixes:
            sets.append("substr(transcoder_set, -?) = ?")
            params.extend([len(suffix), suffix])
        if sets:
            parts.append("(" + " OR ".join(sets) + ")")
        if self.min_layer is not None:
            parts.append("layer >= ?")
            params.append(self.min_layer)
        if self.max_layer is not None:
            parts.append("layer <= ?")
            params.append(self.max_layer)
        if self.sources:
            parts.append(f"source IN ({_marks(len(self.sources))})")
            params.extend(self.sources)
        if self.authors:
            parts.append(f"author IN ({_marks(len(self.authors))})")
            params.extend(self.authors)
        return ("".join(f" AND {p}" for p in parts), params)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class Catalog:
    """The catalog file; one connection per instance (not shared across threads)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self.conn.execute(statement)
        self._texts: dict[int, str] = {}

    def close(self) -> None:
        self.conn.close()

    # --- state -----------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    # --- texts -----------------------------------------------------------------------------

    def n_texts(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM texts").fetchone()[0]

    def text_ids(self, items: Sequence[tuple[bytes, str]]) -> list[int]:
        """The id of each (hash, text), adding the texts not seen before (inside a transaction)."""
        known = self.ids_of_hashes(h for h, _ in items)
        next_id = self.n_texts()
        new_rows = []
        for digest, text in items:
            if digest not in known:
                known[digest] = next_id
                new_rows.append((next_id, digest, text))
                next_id += 1
        if new_rows:
            self.conn.executemany("INSERT INTO texts (id, hash, text) VALUES (?, ?, ?)", new_rows)
            self.conn.executemany("INSERT INTO texts_fts (rowid, text) VALUES (?, ?)", [(i, t) for i, _, t in new_rows])
        return [known[digest] for digest, _ in items]

    def items_between(self, start: int, stop: int) -> list[tuple[bytes, str]]:
        """(hash, text) of texts ``start`` to ``stop - 1``, in id order."""
        rows = self.conn.execute("SELECT id, hash, text FROM texts WHERE id >= ? AND id < ? ORDER BY id", (start, stop)).fetchall()
        if len(rows) != stop - start or (rows and (rows[0][0] != start or rows[-1][0] != stop - 1)):
            raise RuntimeError(f"search catalog {self.path} is missing texts between {start} and {stop}; delete it to rebuild")
        return [(bytes(digest), text) for _, digest, text in rows]

    def hashes_of(self, ids: Iterable[int]) -> dict[int, bytes]:
        return {i: bytes(h) for i, h in self._rows_in("SELECT id, hash FROM texts WHERE id IN ({marks})", ids)}

    def ids_of_hashes(self, hashes: Iterable[bytes]) -> dict[bytes, int]:
        return {bytes(h): i for h, i in self._rows_in("SELECT hash, id FROM texts WHERE hash IN ({marks})", hashes)}

    def texts_of(self, ids: Iterable[int]) -> dict[int, str]:
        """The texts of ``ids``; those read before come from memory (a text's id never changes)."""
        wanted = set(ids)
        unknown = wanted.difference(self._texts)
        if unknown:
            if len(self._texts) > _TEXTS_KEPT:
                self._texts.clear()
            self._texts.update(self._rows_in("SELECT id, text FROM texts WHERE id IN ({marks})", unknown))
        return {i: self._texts[i] for i in wanted if i in self._texts}

    def _rows_in(self, query: str, values: Iterable, first: Sequence = ()) -> Iterator[tuple]:
        """The rows of ``query`` for the distinct ``values``, which fill its ``IN ({marks})`` a
        chunk at a time (SQLite caps the parameters of one statement); ``first`` are the
        parameters that come before them."""
        wanted = sorted(set(values))
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            yield from self.conn.execute(query.format(marks=_marks(len(chunk))), [*first, *chunk])

    # --- keyword search ----------------------------------------------------------------------

    def keyword_search(self, words: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """(text id, BM25 score: higher is better) of texts containing any of ``words``."""
        terms = [w for w in words if w]
        if not terms:
            return []
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in terms)
        try:
            rows = self.conn.execute(
                "SELECT rowid, bm25(texts_fts) FROM texts_fts WHERE texts_fts MATCH ? ORDER BY rank LIMIT ?",
                (match, limit),
            ).fetchall()
        except sqlite3.OperationalError:  # a term the tokenizer reduces to nothing
            return []
        return [(rowid, -score) for rowid, score in rows]

    def doc_freq(self, word: str, cap: int = DF_CAP) -> int:
        """How many texts contain ``word`` (counted up to ``cap``)."""
        match = '"' + word.replace('"', '""') + '"'
        try:
            return self.conn.execute(
                "SELECT COUNT(*) FROM (SELECT rowid FROM texts_fts WHERE texts_fts MATCH ? LIMIT ?)", (match, cap)
            ).fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    # --- docs ------------------------------------------------------------------------------

    def add_docs(self, docs: Iterable[Doc]) -> int:
        rows = [
            (d.kind, d.ref, d.feature_id, d.transcoder_set, d.layer, d.index, d.text_id, d.source, d.author, d.graph_id)
            for d in docs
        ]
        self.conn.executemany(
            'INSERT OR REPLACE INTO docs (kind, ref, feature_id, transcoder_set, layer, "index", text_id, source, author,'
            " graph_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def delete_docs(self, kind: str) -> None:
        self.conn.execute("DELETE FROM docs WHERE kind = ?", (kind,))

    def keep_graphs(self, gids: Iterable[int]) -> int:
        """Drop descriptions of graphs not in ``gids`` (replaced or deleted ones); returns how many."""
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep_gids (gid INTEGER PRIMARY KEY)")
        self.conn.execute("DELETE FROM keep_gids")
        self.conn.executemany("INSERT INTO keep_gids (gid) VALUES (?)", [(g,) for g in set(gids)])
        cursor = self.conn.execute(
            "DELETE FROM docs WHERE graph_id IS NOT NULL AND graph_id NOT IN (SELECT gid FROM keep_gids)"
        )
        return cursor.rowcount

    def n_docs(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0]

    def features_of_text(self, text_id: int, where: DocFilter, limit: int) -> list[tuple[int, str, int, int, bool]]:
        """(feature id, set, layer, index, labelled) of the docs with this text that pass ``where``:
        features that carry the text as a label first, then by feature id."""
        clause, params = where.sql()
        rows = self.conn.execute(
            f'SELECT feature_id, transcoder_set, layer, "index", MAX(kind = ?) AS labelled FROM docs WHERE text_id = ?{clause} '
            "GROUP BY feature_id ORDER BY labelled DESC, feature_id LIMIT ?",
            [LABEL, text_id, *params, limit],
        ).fetchall()
        return [(fid, tset, layer, index, bool(labelled)) for fid, tset, layer, index, labelled in rows]

    def labelled_texts(self) -> frozenset[int]:
        """The texts that are some feature's label."""
        return frozenset(r[0] for r in self.conn.execute("SELECT DISTINCT text_id FROM docs WHERE kind = ?", (LABEL,)))

    def feature_counts(self, text_ids: Iterable[int], cap: int) -> dict[int, int]:
        """How many distinct features each text describes, counted up to ``cap``."""
        return {
            tid: self.conn.execute(
                "SELECT COUNT(*) FROM (SELECT DISTINCT feature_id FROM docs WHERE text_id = ? LIMIT ?)", (tid, cap)
            ).fetchone()[0]
            for tid in set(text_ids)
        }

    def docs_of_features(self, feature_ids: Sequence[int]) -> Iterator[Doc]:
        query = 'SELECT kind, ref, feature_id, transcoder_set, layer, "index", text_id, source, author, graph_id FROM docs WHERE feature_id IN ({marks})'
        for row in self._rows_in(query, feature_ids):
            yield Doc(*row)

    def filtered_text_ids(self, where: DocFilter, limit: int) -> list[int] | None:
        """Text ids of the docs that pass ``where``, or None if there are more than ``limit``."""
        clause, params = where.sql()
        rows = self.conn.execute(f"SELECT DISTINCT text_id FROM docs WHERE 1 = 1{clause} LIMIT ?", [*params, limit + 1])
        ids = [r[0] for r in rows]
        return None if len(ids) > limit else ids


def words(text: str) -> list[str]:
    """The words of a text, lower-cased, as the keyword search sees them."""
    return [w.lower() for w in _WORD.findall(text)]
