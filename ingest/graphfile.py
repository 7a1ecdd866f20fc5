"""Reading and validating one graph file (circuit-tracer / Neuronpedia JSON, plain or gzip).

Small files are parsed whole; large ones are streamed with ijson so that memory stays well
below the file's size: node dicts are kept (thousands), links go straight into compact arrays.
Every problem raises :class:`GraphFormatError` naming the file, the JSON path and the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
import unicodedata
from array import array
from dataclasses import replace
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np
import orjson

from ingest.causal import causal_span, may_feed, sublayer_name
from ingest.featureid import MAX_FEATURE_ID, decode_feature, lorsa_set_of, transcoder_set_of
from ingest.records import (
    EMBEDDING_KIND,
    FEATURE_KIND,
    FEATURE_TYPES,
    INT_LAYER,
    LORSA,
    OTHER_KIND,
    PROMOTED_NODE_FIELDS,
    QK_LISTS,
    FeatureKey,
    GraphHeader,
    Node,
    ParsedGraph,
    QKContribution,
)
from ingest.textfile import not_utf8
from kb.errors import GraphFormatError

log = logging.getLogger(__name__)

STREAM_THRESHOLD_BYTES = 64 * 1024 * 1024
KNOWN_TOP_LEVEL = ("metadata", "qParams", "nodes", "links")
_HASH_CHUNK = 4 * 1024 * 1024
_PROMOTED = frozenset(PROMOTED_NODE_FIELDS)
_SOURCE, _TARGET, _WEIGHT = itemgetter("source"), itemgetter("target"), itemgetter("weight")


def open_binary(path: Path) -> BinaryIO:
    """Open a graph file for reading, decompressing gzip whatever the file is called."""
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def content_hash(path: Path) -> str:
    """sha256 of the file's (decompressed) bytes: two files with the same content share it."""
    digest = hashlib.sha256()
    try:
        with open_binary(path) as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError) as exc:
        raise GraphFormatError(str(path), "", f"cannot read file: {exc}") from exc
    return digest.hexdigest()


def read_graph(path: Path, digest: str | None = None, stream: bool | None = None, quiet: bool = False) -> ParsedGraph:
    """Parse and validate a whole graph file.

    What was kept aside or told apart is in the graph's ``warnings`` and logged, unless
    ``quiet`` (the caller then logs them with :func:`log_warnings`).
    """
    path = Path(path)
    if digest is None:
        digest = content_hash(path)
    if stream is None:
        stream = os.path.getsize(path) > STREAM_THRESHOLD_BYTES
    builder = _GraphBuilder(str(path), digest)
    if stream:
        _feed_streaming(path, builder)
    else:
        _feed_whole(path, builder)
    graph = builder.finish()
    if not quiet:
        log_warnings(graph)
    return graph


def log_warnings(graph: ParsedGraph) -> None:
    for message in graph.warnings:
        log.warning(message)


# --- feeding the builder ---------------------------------------------------------------------


LINK_CHUNK = 100_000


def decode_json(data: bytes) -> Any:
    """A JSON document from bytes: orjson, and the standard library for what orjson refuses.

    orjson is several times faster, but stricter: NaN and Infinity, integers beyond 64 bits,
    lone surrogates and a byte-order mark make it fail where Python's json reads them. Those
    files are read again by json, which either accepts them or says where they are broken.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _gzip_hint(path: Path) -> str:
    """What to add when a file named .gz turns out not to be gzip (it is then read as plain JSON)."""
    if not path.name.lower().endswith(".gz"):
        return ""
    with open(path, "rb") as fh:
        return "" if fh.read(2) == b"\x1f\x8b" else "; the file is not gzip-compressed, though its name ends .gz"


def _feed_whole(path: Path, builder: "_GraphBuilder") -> None:
    try:
        with open_binary(path) as fh:
            doc = decode_json(fh.read())
    except json.JSONDecodeError as exc:
        raise GraphFormatError(
            str(path), "", f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}){_gzip_hint(path)}"
        ) from exc
    except RecursionError as exc:
        raise GraphFormatError(str(path), "", "invalid JSON: arrays or objects nested too deeply to read") from exc
    except UnicodeDecodeError as exc:
        raise GraphFormatError(str(path), "", f"{not_utf8(exc)}: save the file as UTF-8") from exc
    except (OSError, EOFError) as exc:
        raise GraphFormatError(str(path), "", f"cannot read file: {exc}") from exc
    if not isinstance(doc, dict):
        raise GraphFormatError(str(path), "", _not_a_graph(_type_name(doc)))
    _require_top_level(str(path), doc.keys())
    builder.set_header(doc["metadata"], doc.get("qParams"), {k: v for k, v in doc.items() if k not in KNOWN_TOP_LEVEL})
    _require_array(str(path), "nodes", doc["nodes"])
    _require_array(str(path), "links", doc["links"])
    for node in doc["nodes"]:
        builder.add_node(node)
    builder.nodes_done()
    links = doc["links"]
    for start in range(0, len(links), LINK_CHUNK):
        builder.add_links(links[start : start + LINK_CHUNK])


def _feed_streaming(path: Path, builder: "_GraphBuilder") -> None:
    """Several passes over the file, none of which holds more than one node or a chunk of links.

    The first pass only notes the top-level keys (and checks the JSON); later passes let ijson's
    C backend build the metadata, each node, and each link.
    """
    kinds = _top_level_kinds(path, builder)
    _require_top_level(str(path), kinds)
    for name in ("nodes", "links"):
        if kinds[name] != "start_array":
            raise GraphFormatError(str(path), name, f"expected an array, got {_EVENT_TYPES.get(kinds[name], kinds[name])}")
    extras = {k: _first_item(path, k) for k in kinds if k not in KNOWN_TOP_LEVEL}
    qparams = _first_item(path, "qParams") if "qParams" in kinds else None
    builder.set_header(_first_item(path, "metadata"), qparams, extras)
    for node in _items(path, "nodes.item", builder):
        builder.add_node(node)
    builder.nodes_done()
    chunk: list[Any] = []
    for link in _items(path, "links.item", builder):
        chunk.append(link)
        if len(chunk) == LINK_CHUNK:
            builder.add_links(chunk)
            chunk = []
    builder.add_links(chunk)


_EVENT_TYPES = {"start_map": "object", "start_array": "array", "string": "string", "number": "number", "boolean": "boolean", "null": "null"}


def _top_level_kinds(path: Path, builder: "_GraphBuilder") -> dict[str, str]:
    """Top-level key -> the parse event that starts its value; raises on invalid JSON."""
    import ijson

    kinds: dict[str, str] = {}
    pending: str | None = None
    try:
        with open_binary(path) as fh:
            events = ijson.parse(fh, use_float=True)
            first = next(events, None)
            if first is None or first[1] != "start_map":
                kind = "an empty file" if first is None else _EVENT_TYPES.get(first[1], first[1])
                raise GraphFormatError(str(path), "", _not_a_graph(kind))
            for prefix, event, value in events:
                if pending is not None:
                    kinds[pending] = event
                    pending = None
                elif event == "map_key" and prefix == "":
                    pending = value
    except ijson.common.JSONError as exc:
        raise GraphFormatError(str(path), _locate_stream_error(path), _stream_reason(exc)) from exc
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise GraphFormatError(str(path), "", f"cannot read file: {exc}") from exc
    return kinds


def _locate_stream_error(path: Path) -> str:
    """Find the JSON path of a syntax error by walking the events again (only on failure)."""
    import ijson

    where = ""
    counts: dict[str, int] = {}
    try:
        with open_binary(path) as fh:
            for prefix, event, _value in ijson.parse(fh, use_float=True):
                top, _, rest = prefix.partition(".")
                if rest == "item" and event in ("start_map", "start_array", "string", "number", "boolean", "null"):
                    counts[top] = counts.get(top, 0) + 1
                if top:
                    where = f"{top}[{counts[top] - 1}]" if top in counts else top
    except ijson.common.JSONError:
        return where
    except (OSError, EOFError):
        return where
    return where


def _first_item(path: Path, prefix: str) -> Any:
    for item in _items(path, prefix, None):
        return item
    return None


def _items(path: Path, prefix: str, builder: "_GraphBuilder | None") -> Iterator[Any]:
    import ijson

    try:
        with open_binary(path) as fh:
            yield from ijson.items(fh, prefix, use_float=True)
    except ijson.common.JSONError as exc:  # the first pass checked the syntax; numbers may still overflow
        where = prefix if builder is None else _stream_location(prefix, builder)
        raise GraphFormatError(str(path), where, _stream_reason(exc)) from exc


def _stream_location(prefix: str, builder: "_GraphBuilder") -> str:
    """The array item being read when a streamed pass stopped."""
    if prefix == "nodes.item":
        return f"nodes[{len(builder.nodes)}]"
    if prefix == "links.item":
        return f"links[{builder.n_links_seen}]"
    return prefix


def _stream_reason(exc: Exception) -> str:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "integer overflow" in first_line:
        return "a number does not fit in 64 bits (feature ids reach about 1.3e10)"
    return f"invalid JSON: {first_line}"


def _not_a_graph(kind: str) -> str:
    return f"not a graph file: the top level is {kind}, expected an object with metadata, nodes and links"


def _require_top_level(path: str, keys: Iterable[str]) -> None:
    keys = set(keys)
    missing = [k for k in ("metadata", "nodes", "links") if k not in keys]
    if missing:
        raise GraphFormatError(
            path, "", f"not a graph file: missing {', '.join(missing)} (a graph has metadata, qParams, nodes and links)"
        )


def _require_array(path: str, where: str, value: Any) -> None:
    if not isinstance(value, list):
        raise GraphFormatError(path, where, f"expected an array, got {_type_name(value)}")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or (
        isinstance(value, float) and value.is_integer()
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _not_finite(value: int | float) -> str | None:
    """Why a number cannot be stored as a float (JSON has no NaN or Infinity, though Python's
    reader takes them), or None when it can."""
    try:
        if math.isfinite(value):
            return None
    except OverflowError:
        return "a number too large for a float"
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


class _GraphBuilder:
    """Collects validated nodes and links; raises GraphFormatError at the first problem."""

    def __init__(self, path: str, digest: str) -> None:
        self.path = path
        self.digest = digest
        self.header: GraphHeader | None = None
        self.nodes: list[Node] = []
        self.by_node_id: dict[str, list[int]] = {}
        self.seen_pairs: dict[tuple[str, str | None], int] = {}
        self.ready_for_links = False
        self.has_shared_ids = False
        self.unique_index: dict[str, int] = {}
        self.src = array("i")
        self.tgt = array("i")
        self.weight = array("d")
        self.link_extra: dict[int, dict[str, Any]] = {}
        self.ambiguous: list[dict[str, Any]] = []
        self.n_links_seen = 0
        self.warnings: list[str] = []
        self.n_prompt_tokens: int | None = None
        self.n_against_order = 0
        self.against_order: list[str] = []
        self.unknown_types: dict[str, int] = {}
        self.qk_only: dict[str, Node] = {}
        # (QK row, JSON path of its q contributor, of its k contributor), resolved once every node is read
        self.pending_qk: list[tuple[QKContribution, str | None, str | None]] = []
        self.spans: list[tuple[float, float]] = []
        self.earliest = self.latest = self.ctx = np.zeros(0)

    def fail(self, where: str, reason: str) -> GraphFormatError:
        return GraphFormatError(self.path, where, reason)

    # header

    def set_header(self, metadata: Any, qparams: Any, extra: dict[str, Any]) -> None:
        if not isinstance(metadata, dict):
            raise self.fail("metadata", f"expected an object, got {_type_name(metadata)}")
        if qparams is None:
            qparams = {}
        if not isinstance(qparams, dict):
            raise self.fail("qParams", f"expected an object, got {_type_name(qparams)}")
        slug = metadata.get("slug")
        if slug is not None and not isinstance(slug, str):
            raise self.fail("metadata.slug", f"expected a string, got {_type_name(slug)} {slug!r}")
        if not slug or not slug.strip():
            raise self.fail("metadata.slug", "missing or empty: every graph needs a slug (its id)")
        if any(unicodedata.category(ch) == "Cc" for ch in slug):
            # a slug is typed in commands and addresses to name the graph again
            raise self.fail("metadata.slug", f"{slug!r} holds a control character (a line break, a tab, NUL ...): a slug names the graph in commands and addresses")
        tokens = metadata.get("prompt_tokens", [])
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise self.fail("metadata.prompt_tokens", "expected an array of strings")
        prompt = metadata.get("prompt", "")
        if not isinstance(prompt, str):
            raise self.fail("metadata.prompt", f"expected a string, got {_type_name(prompt)}")
        version = metadata.get("schema_version", 0)
        if version is None:
            version = 0
        if not _is_int(version) or int(version) not in (0, 1):
            raise self.fail("metadata.schema_version", f"unsupported schema version {version!r} (known: 0, 1)")
        scan = metadata.get("scan")
        if scan is not None and not isinstance(scan, str):
            raise self.fail("metadata.scan", f"expected a string, got {_type_name(scan)}")
        tset = transcoder_set_of(metadata)
        if tset is None:
            raise self.fail(
                "metadata", "cannot tell the transcoder set: give info.transcoder_set, a neuronpedia_source_set, transcoder_list or scan"
            )
        self.header = GraphHeader(
            slug=slug.strip(),
            scan=scan,
            prompt=prompt,
            prompt_tokens=tokens,
            schema_version=int(version),
            transcoder_set=tset,
            model=scan if scan and "/" not in scan else None,
            metadata=metadata,
            qparams=qparams,
            extra=dict(extra),
            lorsa_set=lorsa_set_of(metadata, tset),
        )
        if "prompt_tokens" in metadata:
            self.n_prompt_tokens = len(tokens)
        if "qk_only_nodes" in extra:
            self._read_qk_only_nodes(extra["qk_only_nodes"])

    def _read_qk_only_nodes(self, entries: Any) -> None:
        """The top-level ``qk_only_nodes``: {node_id: node} of QK contributors pruned out of ``nodes``."""
        if not isinstance(entries, dict):
            raise self.fail("qk_only_nodes", f"expected an object keyed by node_id, got {_type_name(entries)}")
        for key, raw in entries.items():
            where = f"qk_only_nodes[{json.dumps(key, ensure_ascii=False)}]"
            node = self.parse_node(raw, where, -1)
            if node.node_id != key:
                raise self.fail(f"{where}.node_id", f"is {node.node_id!r}, but the entry is keyed {key!r}")
            self.qk_only[key] = node

    # nodes

    def add_node(self, raw: Any) -> None:
        idx = len(self.nodes)
        where = f"nodes[{idx}]"
        node = self.parse_node(raw, where, idx)
        pair = (node.node_id, node.js_node_id)
        if pair in self.seen_pairs:
            raise self.fail(
                where,
                f"the same node twice: node_id {node.node_id!r} and jsNodeId {node.js_node_id!r} already at nodes[{self.seen_pairs[pair]}]",
            )
        self.seen_pairs[pair] = idx
        qk = node.extra.get("qk_tracing_results")
        if qk is not None:
            self.pending_qk.extend(_qk_rows(self, idx, qk, f"{where}.qk_tracing_results"))
        self.nodes.append(node)
        self.by_node_id.setdefault(node.node_id, []).append(idx)

    def parse_node(self, raw: Any, where: str, idx: int) -> Node:
        """One node object of ``nodes`` (or of ``qk_only_nodes``, with ``idx`` -1), validated.

        Runs once per node of every file: the common types are checked first with ``type(x) is``,
        and only a value that fails them goes through the general checks (the same rules).
        """
        assert self.header is not None
        if type(raw) is not dict:
            if not isinstance(raw, dict):
                raise self.fail(where, f"expected an object, got {_type_name(raw)}")
        get = raw.get
        node_id = get("node_id")
        if type(node_id) is not str or not node_id:
            raise self.fail(f"{where}.node_id", "missing or not a string")
        ftype = get("feature_type")
        if type(ftype) is not str or not ftype:
            raise self.fail(f"{where}.feature_type", f"expected a feature type like 'cross layer transcoder', got {_type_name(ftype)}")
        kind = FEATURE_TYPES.get(ftype)
        if kind is None:
            # a type newer than this code: kept (and exported) as it is, never taken for a feature
            kind = OTHER_KIND
            self.unknown_types[ftype] = self.unknown_types.get(ftype, 0) + 1
        layer = get("layer")
        layer_is_int = type(layer) is not str and _is_int(layer)
        if layer_is_int:
            layer = str(int(layer))
        if type(layer) is not str or not layer:
            raise self.fail(f"{where}.layer", f"expected a string like \"12\" or \"E\", got {_type_name(layer)}")
        if kind == EMBEDDING_KIND:
            layer_num = -1
        elif layer.isdigit():
            layer_num = int(layer)
        elif kind == OTHER_KIND:
            layer_num = -1
        else:
            raise self.fail(f"{where}.layer", f"expected a layer number, got {layer!r}")
        ctx = get("ctx_idx")
        if type(ctx) is not int or ctx < 0:
            if not _is_int(ctx) or int(ctx) < 0:
                raise self.fail(f"{where}.ctx_idx", f"expected a non-negative integer, got {_type_name(ctx)} {ctx!r}")
            ctx = int(ctx)
        n_tokens = self.n_prompt_tokens
        if n_tokens is not None and ctx >= n_tokens:
            raise self.fail(
                f"{where}.ctx_idx",
                f"position {ctx} lies past the prompt, which has {n_tokens} tokens (metadata.prompt_tokens: positions 0 to {n_tokens - 1})",
            )
        js_id = get("jsNodeId")
        if js_id is not None and type(js_id) is not str:
            raise self.fail(f"{where}.jsNodeId", f"expected a string, got {_type_name(js_id)}")
        feature = written = get("feature")
        if feature is not None:
            if type(feature) is not int:
                if not _is_int(feature):
                    raise self.fail(f"{where}.feature", f"expected an integer, got {_type_name(feature)} {feature!r}")
                feature = int(feature)
            if abs(feature) > MAX_FEATURE_ID:
                raise self.fail(f"{where}.feature", f"feature id {written!r} does not fit in 64 bits")
        key = None
        if kind == FEATURE_KIND:
            if feature is not None and feature < 0:  # other nodes often carry -1
                raise self.fail(f"{where}.feature", f"expected a feature id of 0 or more, got {written!r}")
            try:
                f_layer, f_index = decode_feature(feature, node_id, layer_num, self.header.schema_version)
            except ValueError as exc:
                raise self.fail(f"{where}.feature", str(exc)) from None
            feature_set = self.header.lorsa_set if ftype == LORSA else self.header.transcoder_set
            key = FeatureKey(feature_set or self.header.transcoder_set, f_layer, f_index)
        influence = self._float_or_none(get("influence"), where, "influence")
        activation = self._float_or_none(get("activation"), where, "activation")
        token_prob = self._float_or_none(get("token_prob"), where, "token_prob")
        target = get("is_target_logit")
        if target is not None and type(target) is not bool:
            raise self.fail(f"{where}.is_target_logit", f"expected true or false, got {_type_name(target)}")
        clerp = get("clerp")
        if clerp is not None and type(clerp) is not str:
            raise self.fail(f"{where}.clerp", f"expected a string, got {_type_name(clerp)}")
        extra = {k: v for k, v in raw.items() if k not in _PROMOTED}
        if not _PROMOTED <= raw.keys():
            extra["__absent__"] = [k for k in PROMOTED_NODE_FIELDS if k not in raw]
        if layer_is_int:
            extra[INT_LAYER] = True
        return Node(
            idx,
            node_id,
            js_id,
            kind,
            ftype,
            layer,
            layer_num,
            ctx,
            feature,
            key,
            clerp,
            influence,
            activation,
            token_prob,
            target,
            extra,
        )

    def _float_or_none(self, value: Any, where: str, name: str) -> float | None:
        if value is None or (type(value) is float and math.isfinite(value)):
            return value
        if not _is_number(value):
            raise self.fail(f"{where}.{name}", f"expected a number or null, got {_type_name(value)}")
        problem = _not_finite(value)
        if problem:
            raise self.fail(f"{where}.{name}", f"expected a finite number or null, got {problem}")
        return float(value)

    def nodes_done(self) -> None:
        if not self.nodes:
            raise self.fail("nodes", "the graph has no nodes")
        self.ready_for_links = True
        self.has_shared_ids = any(len(v) > 1 for v in self.by_node_id.values())
        self.unique_index = {k: v[0] for k, v in self.by_node_id.items()}
        self.spans = [causal_span(n, n.layer.isdigit()) for n in self.nodes]
        # the same rule as ingest.causal.may_feed, vectorised for whole chunks of links
        self.earliest = np.array([s[0] for s in self.spans])
        self.latest = np.array([s[1] for s in self.spans])
        self.ctx = np.array([n.ctx_idx for n in self.nodes], dtype=np.int64)

    # links

    def add_links(self, raws: list[Any]) -> None:
        """Add a chunk of links; well-formed chunks take a vectorised path, others one by one."""
        resolved = self._resolve_plain(raws)
        if resolved is None:
            for raw in raws:
                self.add_link(raw)
            return
        src, tgt, weight = resolved
        self.src.frombytes(src.tobytes())
        self.tgt.frombytes(tgt.tobytes())
        self.weight.frombytes(weight.tobytes())
        self.n_links_seen += len(raws)

    def _resolve_plain(self, raws: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The chunk's ends (int32) and weights (float64) if every link is a plain, valid,
        unambiguous one; else None.

        None sends the chunk down the one-by-one path, which finds and names any problem.
        """
        if self.has_shared_ids or not raws:
            return None
        if set(map(type, raws)) != {dict} or set(map(len, raws)) != {3}:
            return None
        try:
            sources = list(map(_SOURCE, raws))
            targets = list(map(_TARGET, raws))
            weights = list(map(_WEIGHT, raws))
        except KeyError:
            return None
        if set(map(type, sources)) | set(map(type, targets)) != {str} or not set(map(type, weights)) <= {float, int}:
            return None
        try:
            weight = np.array(weights, dtype=np.float64)
        except OverflowError:  # an integer beyond a float's range
            return None
        if not np.isfinite(weight).all():
            return None
        find = self.unique_index.__getitem__
        try:
            s = np.fromiter(map(find, sources), dtype=np.int32, count=len(raws))
            t = np.fromiter(map(find, targets), dtype=np.int32, count=len(raws))
        except KeyError:
            return None
        against = ~((self.earliest[s] < self.latest[t]) & (self.ctx[s] <= self.ctx[t]))
        for i in np.flatnonzero(against).tolist():
            self._note_against_order(self.n_links_seen + i, int(s[i]), int(t[i]))
        return s, t, weight

    def add_link(self, raw: Any) -> None:
        i = self.n_links_seen
        self.n_links_seen += 1
        where = f"links[{i}]"
        if not isinstance(raw, dict):
            raise self.fail(where, f"expected an object, got {_type_name(raw)}")
        source, target, weight = raw.get("source"), raw.get("target"), raw.get("weight")
        if not isinstance(source, str):
            raise self.fail(f"{where}.source", f"expected a node_id string, got {_type_name(source)}")
        if not isinstance(target, str):
            raise self.fail(f"{where}.target", f"expected a node_id string, got {_type_name(target)}")
        if not _is_number(weight):
            raise self.fail(f"{where}.weight", f"expected a number, got {_type_name(weight)}")
        problem = _not_finite(weight)
        if problem:
            raise self.fail(f"{where}.weight", f"expected a finite number, got {problem}")
        srcs = self.by_node_id.get(source)
        if srcs is None:
            raise self.fail(f"{where}.source", f"no node {source!r}")
        tgts = self.by_node_id.get(target)
        if tgts is None:
            raise self.fail(f"{where}.target", f"no node {target!r}")
        if len(srcs) > 1 or len(tgts) > 1:
            resolved = self._disambiguate(srcs, tgts)
            if resolved is None:
                self.ambiguous.append({"index": i, "link": dict(raw)})
                return
            s, t = resolved
        else:
            s, t = srcs[0], tgts[0]
            if not self._may_feed(s, t):
                self._note_against_order(i, s, t)
        if len(raw) > 3:
            self.link_extra[len(self.src)] = {k: v for k, v in raw.items() if k not in ("source", "target", "weight")}
        self.src.append(s)
        self.tgt.append(t)
        self.weight.append(float(weight))

    def _disambiguate(self, srcs: list[int], tgts: list[int]) -> tuple[int, int] | None:
        """Keep only (source, target) pairs that respect the model's causal order
        (:mod:`ingest.causal`); when exactly one pair does, the link is resolved without doubt."""
        options = [(s, t) for s in srcs for t in tgts if self._may_feed(s, t)]
        return options[0] if len(options) == 1 else None

    def _may_feed(self, s: int, t: int) -> bool:
        return may_feed(self.spans[s], self.nodes[s].ctx_idx, self.spans[t], self.nodes[t].ctx_idx)

    def _note_against_order(self, i: int, s: int, t: int) -> None:
        """Keep a link that runs against the causal order, and say so (a few are named in the warning)."""
        self.n_against_order += 1
        if len(self.against_order) < 3:
            self.against_order.append(f"links[{i}]: {self._against_order(s, t)}")

    def _against_order(self, s: int, t: int) -> str:
        source, target = self.nodes[s], self.nodes[t]
        if source.ctx_idx > target.ctx_idx:
            return (
                f"runs backwards in the context: {source.node_id!r} at position {source.ctx_idx} "
                f"cannot feed {target.node_id!r} at position {target.ctx_idx}"
            )
        return (
            f"runs against the model's order: {source.node_id!r} ({sublayer_name(source)}) "
            f"cannot feed {target.node_id!r} ({sublayer_name(target)})"
        )

    # QK tracing

    def _contributor(self, node_id: str | None, where: str | None) -> FeatureKey | None:
        """The feature a QK contributor is, if any; it must be a node of ``nodes`` or ``qk_only_nodes``."""
        if node_id is None:
            return None
        found = [self.nodes[i] for i in self.by_node_id.get(node_id, ())]
        if not found and node_id in self.qk_only:
            found = [self.qk_only[node_id]]
        if not found:
            raise self.fail(where or "", f"no node {node_id!r} in nodes or qk_only_nodes")
        keys = {n.feature_key for n in found if n.feature_key is not None}
        return keys.pop() if len(keys) == 1 else None

    def _resolve_qk(self) -> list[QKContribution]:
        out = []
        for row, q_where, k_where in self.pending_qk:
            q_feature = self._contributor(row.q_node_id, q_where)
            k_feature = self._contributor(row.k_node_id, k_where)
            out.append(replace(row, q_feature=q_feature, k_feature=k_feature))
        return out

    def finish(self) -> ParsedGraph:
        assert self.header is not None
        if not self.ready_for_links:
            raise self.fail("nodes", "missing")
        qk = self._resolve_qk()
        warnings = list(self.warnings)
        if self.n_against_order:
            warnings.append(
                f"{self.path}: {self.n_against_order} links run against the model's causal order "
                f"({'; '.join(self.against_order)}); they are kept as the file has them"
            )
        if self.unknown_types:
            named = ", ".join(f"{t!r} ({n})" for t, n in sorted(self.unknown_types.items()))
            warnings.append(
                f"{self.path}: nodes of feature types this version does not know: {named}; they are kept "
                f"and exported as they are, but are not features (known: {', '.join(sorted(FEATURE_TYPES))})"
            )
        dupes = {k: v for k, v in self.by_node_id.items() if len(v) > 1}
        if dupes:
            sample = ", ".join(sorted(dupes)[:5])
            warnings.append(
                f"{self.path}: {len(dupes)} node_ids are shared by several nodes ({sample}); "
                f"they are kept as distinct nodes (told apart by jsNodeId and feature_type)"
            )
        if self.ambiguous:
            sample = ", ".join(f"{a['link']['source']}->{a['link']['target']}" for a in self.ambiguous[:5])
            warnings.append(
                f"{self.path}: {len(self.ambiguous)} links name a node_id shared by several nodes and "
                f"cannot be resolved without doubt ({sample}); they are kept aside, not attached to any node"
            )
        return ParsedGraph(
            path=self.path,
            content_hash=self.digest,
            header=self.header,
            nodes=self.nodes,
            # views of the arrays' own memory: no copy of what may be millions of links
            link_src=np.frombuffer(self.src, dtype=np.int32) if len(self.src) else np.zeros(0, np.int32),
            link_tgt=np.frombuffer(self.tgt, dtype=np.int32) if len(self.tgt) else np.zeros(0, np.int32),
            link_weight=np.frombuffer(self.weight, dtype=np.float64) if len(self.weight) else np.zeros(0),
            link_extra=self.link_extra,
            ambiguous_links=self.ambiguous,
            warnings=warnings,
            qk=qk,
            qk_only_nodes=list(self.qk_only.values()),
        )


def _qk_rows(builder: _GraphBuilder, idx: int, results: Any, where: str) -> Iterator[tuple[QKContribution, str | None, str | None]]:
    """The rows of one node's ``qk_tracing_results``, checked for shape (contributors are resolved later)."""
    if not isinstance(results, dict):
        raise builder.fail(where, f"expected an object with {', '.join(QK_LISTS)}, got {_type_name(results)}")
    for name, role in QK_LISTS.items():
        rows = results.get(name, [])
        if not isinstance(rows, list):
            raise builder.fail(f"{where}.{name}", f"expected an array, got {_type_name(rows)}")
        width = 3 if role == "pair" else 2
        for rank, item in enumerate(rows):
            here = f"{where}.{name}[{rank}]"
            shape = "[q node_id, k node_id, attribution]" if role == "pair" else "[node_id, attribution]"
            if (
                not isinstance(item, list)
                or len(item) != width
                or not all(isinstance(v, str) for v in item[:-1])
                or not _is_number(item[-1])
            ):
                raise builder.fail(here, f"expected {shape}, got {json.dumps(item, ensure_ascii=False)[:80]}")
            q_id = item[0] if role in ("pair", "q") else None
            k_id = item[1] if role == "pair" else item[0] if role == "k" else None
            row = QKContribution(idx, role, rank, q_id, k_id, float(item[-1]))
            yield row, f"{here}[0]" if q_id is not None else None, f"{here}[{1 if role == 'pair' else 0}]" if k_id is not None else None
