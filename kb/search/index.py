"""One model's vectors of the catalog's texts, on disk, and an approximate-nearest-neighbour index.

Folder ``<home>/search/<model-slug>/``:

- ``vectors.f32``: row ``i`` is the unit vector of catalog text ``i``, float32, appended as texts
  arrive; memory-mapped;
- ``meta.json``: model name, dimension and the number of complete rows (written after the rows,
  so a crash mid-append leaves a longer file whose tail is ignored and overwritten);
- ``index.faiss`` + ``index.json`` (large collections only): the faiss index and how many rows it
  holds. A process that finds the index behind the vectors adds the missing rows from the file;
  nothing is re-embedded.

The search follows the size (see docs/search.md and bench/results/search.md for the numbers):
below :data:`IVF_MIN` vectors it is exact, numpy over the mapped file (no faiss to import and no
index to load: a cold search starts at once); above, faiss's ``IndexIVFScalarQuantizer`` (8-bit,
inner product) with ``nlist`` about 4*sqrt(n) lists and :data:`NPROBE` probed; its scores are
within 0.002 of the exact cosine, and any row's vector is decoded from the index in memory (a
direct map), so a query reads nothing from disk. It is retrained from scratch when the
collection has grown 4 times past the size it was trained on. Writers hold the caller's lock.

:class:`kb.search.neo4j_index.Neo4jIndex` keeps the same vectors in Neo4j instead, with the
same methods (:class:`Vectors`); both rank with :func:`best_first`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from kb.errors import CircuitKBError

log = logging.getLogger(__name__)

IVF_MIN = 50_000
NPROBE = 48
TRAIN_PER_LIST = 40
SAVE_EVERY = 2_000
_FLAT, _IVF = "flat", "ivf-sq8"


class SearchIndexError(CircuitKBError):
    """The on-disk search index is unreadable or belongs to another model."""


class Vectors(Protocol):
    """Where one model's vectors of the catalog's texts live, and how they are searched:
    :class:`VectorIndex` (files in the home) or :class:`kb.search.neo4j_index.Neo4jIndex`.

    Texts are named by their catalog id; ``count`` texts (ids ``0 .. count - 1``) have vectors.
    Scores are inner products with the query (a cosine when the query has unit length).
    """

    count: int

    def load(self) -> None: ...

    def refresh(self) -> None: ...

    def add_texts(self, start: int, items: Sequence[tuple[bytes, str]], embed: Callable[[list[str]], np.ndarray]) -> int: ...

    def save(self) -> None: ...

    def search(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]: ...

    def search_within(self, query: np.ndarray, ids: Sequence[int], n: int) -> tuple[np.ndarray, np.ndarray]: ...

    def rows(self, ids: Sequence[int]) -> np.ndarray: ...

    def scores(self, query: np.ndarray, ids: Sequence[int]) -> dict[int, float]: ...


def no_hits() -> tuple[np.ndarray, np.ndarray]:
    """No ids and no scores: what a search that finds nothing returns."""
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)


def best_first(ids: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best of ``ids`` by ``values`` (ids, float32 scores), best first; ties go to the lower id."""
    if n <= 0 or not len(ids):
        return no_hits()
    if n < len(values):
        keep = np.argpartition(-values, n - 1)[:n]
        # every row tied with the n-th best, so that ties go to the lower ids
        keep = np.flatnonzero(values >= values[keep].min())
    else:
        keep = np.arange(len(values))
    order = keep[np.lexsort((ids[keep], -values[keep]))][:n]
    return ids[order].astype(np.int64), values[order].astype(np.float32)


def _faiss():  # noqa: ANN202
    import faiss

    return faiss


def ivf_lists(n: int) -> int:
    """Number of inverted lists for ``n`` vectors: a power of two near 4*sqrt(n)."""
    return int(2 ** round(math.log2(max(4 * math.sqrt(n), 64))))


def build_ann(vectors: np.ndarray, seed: int = 0) -> Any:
    """The faiss IVF index over ``vectors`` (unit rows; :data:`IVF_MIN` or more: fewer are
    searched exactly, without faiss)."""
    faiss = _faiss()
    n, dim = vectors.shape
    nlist = ivf_lists(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    n_train = min(n, TRAIN_PER_LIST * nlist)
    sample = np.sort(rng.choice(n, size=n_train, replace=False))
    index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    for start in range(0, n, 100_000):
        index.add(np.ascontiguousarray(vectors[start : start + 100_000], dtype=np.float32))
    index.nprobe = NPROBE
    index.make_direct_map()  # decode any row from memory (VectorIndex.scores)
    return index


def index_kind(index: Any) -> str:
    return _FLAT if index.__class__.__name__.startswith("IndexFlat") else _IVF


class VectorIndex:
    """The vectors and ANN index of one model. Not thread-safe for writers; readers may share."""

    def __init__(self, folder: Path, model: str) -> None:
        self.folder = folder
        self.model = model
        self.dim: int | None = None
        self.count = 0
        self._vectors: np.ndarray | None = None
        self._ann: Any = None
        self._ann_count = 0
        self._trained_on = 0
        self._saved_count = 0

    # --- loading ---------------------------------------------------------------------------

    @property
    def _meta_path(self) -> Path:
        return self.folder / "meta.json"

    @property
    def _vector_path(self) -> Path:
        return self.folder / "vectors.f32"

    def disk_count(self) -> int:
        """Complete rows on disk now (another process may have added some)."""
        meta = self._read_meta()
        return int(meta["count"]) if meta else 0

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads(self._meta_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SearchIndexError(f"{self._meta_path} is unreadable ({exc}); delete {self.folder} to rebuild it") from exc
        if meta.get("model") != self.model:
            raise SearchIndexError(f"{self.folder} holds vectors of {meta.get('model')!r}, not {self.model!r}")
        return meta

    def load(self) -> None:
        """Map the vectors on disk and load (or build) the index over them."""
        meta = self._read_meta()
        if meta is None:
            return
        self.dim = int(meta["dim"])
        self.count = int(meta["count"])
        self._map()
        if self.count >= IVF_MIN:
            self._load_ann()

    def _map(self) -> None:
        if self.count and self.dim:
            self._vectors = np.memmap(self._vector_path, dtype=np.float32, mode="r", shape=(self.count, self.dim))
        else:
            self._vectors = None

    def _load_ann(self) -> None:
        faiss = _faiss()
        path = self.folder / "index.faiss"
        info_path = self.folder / "index.json"
        ann = None
        if path.exists() and info_path.exists():
            try:
                info = json.loads(info_path.read_text())
                ann = faiss.read_index(str(path))
                if ann.ntotal != info["ntotal"] or ann.ntotal > self.count or ann.d != self.dim:
                    ann = None
                else:
                    self._trained_on = int(info.get("trained_on", ann.ntotal))
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                log.warning("search index %s is unreadable (%s); rebuilding it from the vectors", path, exc)
                ann = None
        if ann is None:
            self._rebuild_ann()
            return
        self._ann = ann
        self._ann_count = self._saved_count = ann.ntotal
        if index_kind(ann) == _IVF:
            ann.nprobe = NPROBE
            if ann.direct_map.no():
                ann.make_direct_map()
        self._catch_up()

    def _rebuild_ann(self) -> None:
        assert self._vectors is not None  # only called with IVF_MIN rows or more
        log.info("building the search index over %d vectors", len(self._vectors))
        self._ann = build_ann(self._vectors)
        self._ann_count = self._trained_on = len(self._vectors)
        self._saved_count = -1  # unsaved
        self.save()

    def _catch_up(self) -> None:
        """Add to the ANN index the rows it lacks, or rebuild it when it outgrew its training
        (below IVF_MIN rows there is no ANN index: the mapped file is searched exactly)."""
        if self.count < IVF_MIN:
            return
        if self._ann is None:
            self._load_ann()
            return
        if self._ann_count >= self.count:
            return
        grown_past_kind = index_kind(self._ann) == _FLAT  # a flat index file written by an older circuitkb
        outgrown = index_kind(self._ann) == _IVF and self.count >= 4 * self._trained_on
        if grown_past_kind or outgrown:
            self._rebuild_ann()
            return
        assert self._vectors is not None
        for start in range(self._ann_count, self.count, 100_000):
            stop = min(start + 100_000, self.count)
            self._ann.add(np.ascontiguousarray(self._vectors[start:stop]))
        self._ann_count = self.count
        if self._ann_count - self._saved_count >= SAVE_EVERY:
            self.save()

    # --- writing (the caller holds the lock) ---------------------------------------------------

    def refresh(self) -> None:
        """Take in rows that another process appended since we loaded."""
        meta = self._read_meta()
        if meta is None or int(meta["count"]) <= self.count:
            return
        if self.dim is None:
            self.load()
            return
        self.count = int(meta["count"])
        self._map()
        self._catch_up()

    def append(self, vectors: np.ndarray) -> None:
        """Append rows for the next texts (ids ``count``, ``count + 1``, ...)."""
        if not len(vectors):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.dim is None:
            self.dim = int(vectors.shape[1])
        elif vectors.shape[1] != self.dim:
            raise SearchIndexError(f"vectors of dimension {vectors.shape[1]} do not fit the index of dimension {self.dim}")
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self._vector_path, "ab") as fh:
            fh.truncate(self.count * self.dim * 4)  # drop the tail of an append that crashed
            fh.seek(self.count * self.dim * 4)
            fh.write(vectors.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        self.count += len(vectors)
        self._write_json(self._meta_path, {"model": self.model, "dim": self.dim, "count": self.count})
        self._map()
        self._catch_up()

    def add_texts(self, start: int, items: Sequence[tuple[bytes, str]], embed: Callable[[list[str]], np.ndarray]) -> int:
        """Give catalog texts ``start, start + 1, ...`` (``(hash, text)`` pairs) their vectors,
        embedding them with ``embed``; returns how many were embedded (all of them: the rows
        of this file are embedded here)."""
        if start != self.count:
            raise SearchIndexError(f"{self.folder} holds {self.count} vectors; cannot add texts from {start}")
        self.append(embed([text for _, text in items]))
        return len(items)

    def save(self) -> None:
        if self._ann is None or self._saved_count == self._ann_count:
            return
        faiss = _faiss()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"index.faiss.{os.getpid()}.tmp"
        faiss.write_index(self._ann, str(tmp))
        os.replace(tmp, self.folder / "index.faiss")
        info = {"ntotal": self._ann.ntotal, "trained_on": self._trained_on, "kind": index_kind(self._ann)}
        self._write_json(self.folder / "index.json", info)
        self._saved_count = self._ann_count

    def _write_json(self, path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    # --- reading ---------------------------------------------------------------------------

    @property
    def kind(self) -> str | None:
        if self._ann is not None:
            return index_kind(self._ann)
        return _FLAT if self.count else None

    def search(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` rows nearest to ``query`` (ids, cosine), best first (ties: lower id first)."""
        if self._ann is None:
            return self._exact(query, np.arange(self.count, dtype=np.int64), n)
        if self._ann_count == 0 or n <= 0:
            return no_hits()
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self._ann.search(q, min(self._ann_count, n))
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def search_within(self, query: np.ndarray, ids: Sequence[int], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact search among the rows ``ids`` (read from the vector file)."""
        return self._exact(query, np.unique(np.asarray([i for i in ids if 0 <= i < self.count], dtype=np.int64)), n)

    def _exact(self, query: np.ndarray, wanted: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` of rows ``wanted`` (ascending) nearest to ``query``, best first, ties by id."""
        if self._vectors is None or not len(wanted) or n <= 0:
            return no_hits()
        rows = self._vectors if len(wanted) == self.count else self._vectors[wanted]
        return best_first(wanted, np.asarray(rows @ query.astype(np.float32), dtype=np.float32), n)

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of rows ``ids`` (those that exist), read from the vector file."""
        wanted = np.asarray([i for i in ids if 0 <= i < self.count], dtype=np.int64)
        if self._vectors is None or not len(wanted):
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        return np.asarray(self._vectors[wanted], dtype=np.float32)

    def scores(self, query: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of ``query`` with rows ``ids``: from the ANN index in memory (rows not indexed
        are left out), or the mapped file when there is none."""
        limit = self._ann_count if self._ann is not None else self.count
        wanted = np.asarray(sorted({i for i in ids if 0 <= i < limit}), dtype=np.int64)
        if not len(wanted) or (self._ann is None and self._vectors is None):
            return {}
        rows = self._ann.reconstruct_batch(wanted) if self._ann is not None else np.asarray(self._vectors[wanted])
        values = rows @ query.astype(np.float32)
        return dict(zip(wanted.tolist(), values.tolist()))
