"""Reading feature-metadata files into records (no database access).

Four formats, told apart by content (a ``.csv`` / ``.csv.gz`` name means a label table); any
file may be gzip-compressed:

- **Neuronpedia explanations map**: ``{"<feature index>": [{"type", "author", "text"}, ...]}``.
  Its model and Neuronpedia source id come from the ``model`` / ``source`` options or, failing
  that, from the file name: ``{anything}_{model}_{layer}-{set}.json`` (e.g.
  ``np_explanations_gemma-2-2b_20-gemmascope-transcoder-16k.json``) or ``{layer}-{set}.json``
  (the model then comes from the option). Extra entry fields (scores, votes) are kept.
- **Neuronpedia export rows**: a JSON array, or JSON Lines, of objects with ``modelId``,
  ``layer`` (a source id like ``"20-clt-hp"``), ``index`` (int or numeric string),
  ``description``, and optional ``typeName`` and ``explanationModelName``; every other field
  (scores, ids, dates) is kept in the record's ``scores``.
- **circuit-tracer feature files**: one object per feature (or an array / JSON Lines of them)
  with ``index`` (the encoded id of graph nodes' ``feature`` field) and some of
  ``examples_quantiles``, ``top_logits``, ``bottom_logits``, ``act_min``, ``act_max``,
  ``activation_frequency``; other fields go to ``extra``. The transcoder set is the
  ``transcoder_set`` option (or the set of the ``source`` option, qualified by ``model``).
  ``schema`` 1 (default) decodes ``index`` as a Cantor pair; schema 0 (``layer * 10**k + i``)
  needs the layer, taken from the ``layer`` option, else the ``source`` option's layer, else a
  file name ``{layer}_{anything}.json`` (e.g. ``20_2001234.json``).
- **Label CSV**: a header naming the feature by ``transcoder_set,layer,index``, by
  ``model,source,index`` (source like ``20-clt-hp``), or by one ``feature`` column written
  ``gemma-2-2b/20-clt-hp/1234`` (or ``gemma-2-2b/clt-hp/L20/1234``, as features print);
  plus ``label`` (or ``text``), optional ``author`` (default: the ``author`` option) and
  optional ``graph`` (a graph slug the label is about).

A Neuronpedia name ``(model, "{layer}-{set}", index)`` becomes
``FeatureKey(canonical_transcoder_set(set, model), layer, index)``, the key graph nodes decode
to. Every problem raises :class:`MetadataFormatError` naming the file, the place (``[12].index``,
``line 7.index``, ``"450"[1].text``, ``line 7, column "index"``) and the reason; a file is read
and validated whole before the caller writes anything.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ingest.featureid import (
    MAX_FEATURE_ID,
    canonical_transcoder_set,
    cantor_unpair,
    decode_schema0,
    parse_neuronpedia_source,
)
from ingest.graphfile import open_binary
from ingest.records import FeatureKey
from ingest.textfile import not_utf8
from kb.errors import CircuitKBError, ConfigError, MetadataFormatError

EXPLANATIONS = "neuronpedia-explanations"
NP_EXPORT = "neuronpedia-export"
FEATURE_FILES = "circuit-tracer-features"
LABEL_CSV = "label-csv"
EMPTY = "empty"

METADATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")
SCHEMAS = (0, 1)

# column widths of the SQL schema, checked here so that a long value is a clear file error
MAX_KIND, MAX_AUTHOR, MAX_SLUG, MAX_SET = 100, 200, 300, 200

_EXPORT_FIELDS = ("modelId", "layer", "index", "description", "typeName", "explanationModelName")
_DETAIL_FIELDS = ("examples_quantiles", "top_logits", "bottom_logits", "act_min", "act_max", "activation_frequency")
_NAMED_SOURCE = re.compile(r"(?:.*_)?(?P<model>[^_]+)_(?P<source>\d+-.+)")
_BARE_SOURCE = re.compile(r"\d+-.+")
_LAYERED_NAME = re.compile(r"(?P<layer>\d+)_.+")
_KEY_LAYER = re.compile(r"L(\d+)")


@dataclass(frozen=True)
class ReadOptions:
    """What the user said about files that do not say it themselves."""

    model: str | None = None
    source: str | None = None
    transcoder_set: str | None = None
    schema: int = 1
    layer: int | None = None
    author: str | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        if self.schema not in SCHEMAS:
            raise ConfigError(f"schema must be 0 (layer*10^k+index) or 1 (Cantor pairing), got {self.schema!r}")
        if self.layer is not None and (not _is_int(self.layer) or self.layer < 0):
            raise ConfigError(f"layer must be a non-negative integer, got {self.layer!r}")
        if self.source is not None:
            try:
                parse_neuronpedia_source(self.source)
            except ValueError as exc:
                raise ConfigError(f"source: {exc}") from exc


@dataclass(frozen=True)
class Description:
    """An explanation of a feature (Neuronpedia's ``description``)."""

    feature: FeatureKey
    kind: str
    author: str
    text: str
    scores: dict[str, Any] | None


@dataclass(frozen=True)
class Details:
    """A feature's page in circuit-tracer's viewer: examples, logits, activation statistics."""

    feature: FeatureKey
    examples_quantiles: list[Any] | None
    top_logits: list[str] | None
    bottom_logits: list[str] | None
    act_min: float | None
    act_max: float | None
    activation_frequency: float | None
    extra: dict[str, Any] | None


@dataclass(frozen=True)
class Label:
    """A label a person wrote, optionally about the feature in one graph."""

    feature: FeatureKey
    text: str
    author: str
    graph_slug: str | None


@dataclass
class MetadataFile:
    """Everything one file holds, validated."""

    path: str
    format: str
    descriptions: list[Description] = field(default_factory=list)
    details: list[Details] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)

    def features(self) -> set[FeatureKey]:
        found = {d.feature for d in self.descriptions}
        found.update(d.feature for d in self.details)
        found.update(lab.feature for lab in self.labels)
        return found

    @property
    def n_records(self) -> int:
        return len(self.descriptions) + len(self.details) + len(self.labels)


class _Bad(Exception):
    """A problem at one place of a file; turned into MetadataFormatError by the reader."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason


# --- paths -----------------------------------------------------------------------------------


def is_metadata_file(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(METADATA_SUFFIXES)


def expand_metadata_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Every metadata file named by ``paths``: files as given, folders searched recursively.

    A folder contributes its ``.json``, ``.jsonl``, ``.ndjson`` and ``.csv`` files (plain or
    ``.gz``); a path that does not exist is an error.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and is_metadata_file(p))
        elif path.is_file():
            matches = [path]
        else:
            raise CircuitKBError(f"{path}: no such file or folder")
        for match in matches:
            key = match.resolve()
            if key not in seen:
                seen.add(key)
                found.append(match)
    return found


# --- reading one file ------------------------------------------------------------------------


def read_metadata_file(path: str | Path, options: ReadOptions | None = None) -> MetadataFile:
    """Read and validate one feature-metadata file, whatever its format."""
    path = Path(path)
    options = options or ReadOptions()
    name = str(path)
    text = _read_text(path)
    try:
        if path.name.lower().removesuffix(".gz").endswith(".csv"):
            return MetadataFile(name, LABEL_CSV, labels=_label_csv(text, options))
        return _read_json_file(path, text, options)
    except _Bad as bad:
        raise MetadataFormatError(name, bad.where, bad.reason) from None


def _read_text(path: Path) -> str:
    try:
        with open_binary(path) as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise MetadataFormatError(str(path), "", f"cannot read file: {exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MetadataFormatError(str(path), "", f"{not_utf8(exc)}: save the file as UTF-8") from exc


def _read_json_file(path: Path, text: str, options: ReadOptions) -> MetadataFile:
    name = str(path)
    items = _json_items(path, text)
    if isinstance(items, dict):
        if _is_explanations_map(items):
            return MetadataFile(name, EXPLANATIONS, descriptions=_explanations(path, items, options))
        items = [("", items)]
    if not items:
        return MetadataFile(name, EMPTY)
    fmt = _record_format(items[0])
    if fmt == NP_EXPORT:
        return MetadataFile(name, fmt, descriptions=[_export_row(where, obj, options) for where, obj in items])
    return MetadataFile(name, fmt, details=_unique_details(_feature_object(path, where, obj, options) for where, obj in items))


def _json_items(path: Path, text: str) -> dict[str, Any] | list[tuple[str, Any]]:
    """The file's one object, or its records with their places (``[i]`` or ``line n``)."""
    if path.name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson")):
        return _json_lines(text)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and _first_line_is_object(text):
            return _json_lines(text)
        raise _Bad(f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    if isinstance(doc, dict):
        return doc
    if isinstance(doc, list):
        return [(f"[{i}]", item) for i, item in enumerate(doc)]
    raise _Bad("", f"expected a JSON object or array, got {_type_name(doc)}")


def _first_line_is_object(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _json_lines(text: str) -> list[tuple[str, Any]]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise _Bad(f"line {number}", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    return items


def _is_explanations_map(doc: dict[str, Any]) -> bool:
    """Feature indexes as keys, or lists of explanation objects as values."""
    if not doc or "index" in doc or "modelId" in doc:
        return False
    return any(k.strip().isdigit() for k in doc) or all(_explanation_list(v) for v in doc.values())


def _explanation_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(e, dict) and "text" in e for e in value)


def _record_format(item: tuple[str, Any]) -> str:
    where, obj = item
    if not isinstance(obj, dict):
        raise _Bad(where, f"expected an object, got {_type_name(obj)}")
    if "modelId" in obj or "description" in obj:
        return NP_EXPORT
    if "index" in obj and any(k in obj for k in _DETAIL_FIELDS):
        return FEATURE_FILES
    raise _Bad(
        where,
        "unrecognised feature metadata: expected a Neuronpedia explanations map {index: [{type, author, text}]}, "
        "Neuronpedia export rows (modelId, layer, index, description), or circuit-tracer feature files "
        "(index, examples_quantiles, top_logits, ...)",
    )


# --- Neuronpedia ------------------------------------------------------------------------------


def neuronpedia_feature(model: str, source_id: str, index: int) -> FeatureKey:
    """The feature Neuronpedia names ``(model, "{layer}-{set}", index)``."""
    layer, source_set = parse_neuronpedia_source(source_id)
    return FeatureKey(canonical_transcoder_set(source_set, model), layer, index)


def _explanations(path: Path, doc: dict[str, Any], options: ReadOptions) -> list[Description]:
    model, source = _map_source(path, options)
    records = []
    for key, entries in doc.items():
        where = json.dumps(key)
        index = _index(where, key)
        feature = _checked_key(where, neuronpedia_feature(model, source, index))
        if not isinstance(entries, list):
            raise _Bad(where, f"expected a list of explanations, got {_type_name(entries)}")
        for i, entry in enumerate(entries):
            records.append(_explanation(f"{where}[{i}]", feature, entry, options))
    return records


def _map_source(path: Path, options: ReadOptions) -> tuple[str, str]:
    stem = path.name.removesuffix(".gz").removesuffix(".json")
    named = _NAMED_SOURCE.fullmatch(stem)
    bare = _BARE_SOURCE.fullmatch(stem)
    model = options.model or (named.group("model") if named else None)
    source = options.source or (named.group("source") if named else stem if bare else None)
    if not model or not source:
        raise _Bad(
            "",
            "cannot tell which features this explanations map is about: pass model and source "
            "(e.g. --model gemma-2-2b --source 20-gemmascope-transcoder-16k) or name the file "
            "like np_explanations_{model}_{layer}-{set}.json",
        )
    try:
        parse_neuronpedia_source(source)
    except ValueError as exc:
        raise _Bad("", str(exc)) from None
    return model, source


def _explanation(where: str, feature: FeatureKey, entry: Any, options: ReadOptions) -> Description:
    if not isinstance(entry, dict):
        raise _Bad(where, f"expected an explanation object {{type, author, text}}, got {_type_name(entry)}")
    text_field = "text" if "text" in entry or "description" not in entry else "description"
    text = _required_text(_at(where, text_field), entry.get(text_field))
    kind = _optional_text(_at(where, "type"), entry.get("type"), MAX_KIND) or options.kind or ""
    author = _optional_text(_at(where, "author"), entry.get("author"), MAX_AUTHOR) or options.author or ""
    extras = {k: v for k, v in entry.items() if k not in ("type", "author", text_field)}
    return Description(feature, kind, author, text, extras or None)


def _export_row(where: str, row: Any, options: ReadOptions) -> Description:
    if not isinstance(row, dict):
        raise _Bad(where, f"expected an object, got {_type_name(row)}")
    model = _required_text(_at(where, "modelId"), row.get("modelId"))
    source = _required_text(_at(where, "layer"), row.get("layer"))
    index = _index(_at(where, "index"), row.get("index"))
    try:
        feature = neuronpedia_feature(model, source, index)
    except ValueError as exc:
        raise _Bad(_at(where, "layer"), str(exc)) from None
    _checked_key(where, feature)
    text = _required_text(_at(where, "description"), row.get("description"))
    kind = _optional_text(_at(where, "typeName"), row.get("typeName"), MAX_KIND) or options.kind or ""
    author = _optional_text(_at(where, "explanationModelName"), row.get("explanationModelName"), MAX_AUTHOR)
    extras = {k: v for k, v in row.items() if k not in _EXPORT_FIELDS}
    return Description(feature, kind, author or options.author or "", text, extras or None)


# --- circuit-tracer feature files --------------------------------------------------------------


def _feature_object(path: Path, where: str, obj: Any, options: ReadOptions) -> Details:
    if not isinstance(obj, dict):
        raise _Bad(where, f"expected an object, got {_type_name(obj)}")
    encoded = _index(_at(where, "index"), obj.get("index"))
    feature = _checked_key(where, _decode(path, _at(where, "index"), encoded, options))
    examples = obj.get("examples_quantiles")
    if examples is not None:
        _check_quantiles(_at(where, "examples_quantiles"), examples)
    extra = {k: v for k, v in obj.items() if k != "index" and k not in _DETAIL_FIELDS}
    return Details(
        feature=feature,
        examples_quantiles=examples,
        top_logits=_string_list(_at(where, "top_logits"), obj.get("top_logits")),
        bottom_logits=_string_list(_at(where, "bottom_logits"), obj.get("bottom_logits")),
        act_min=_number(_at(where, "act_min"), obj.get("act_min")),
        act_max=_number(_at(where, "act_max"), obj.get("act_max")),
        activation_frequency=_number(_at(where, "activation_frequency"), obj.get("activation_frequency")),
        extra=extra or None,
    )


def _unique_details(records: Iterable[Details]) -> list[Details]:
    """One record per feature; a later one for the same feature wins."""
    by_feature = {d.feature: d for d in records}
    return list(by_feature.values())


def _decode(path: Path, where: str, encoded: int, options: ReadOptions) -> FeatureKey:
    tset = _feature_file_set(options)
    if options.schema == 1:
        layer, index = cantor_unpair(encoded)
        if options.layer is not None and layer != options.layer:
            raise _Bad(where, f"{encoded} decodes (schema 1) to layer {layer}, but layer {options.layer} was given")
        return FeatureKey(tset, layer, index)
    layer = _schema0_layer(path, options)
    try:
        return FeatureKey(tset, layer, decode_schema0(encoded, layer))
    except ValueError as exc:
        raise _Bad(where, f"{exc} (schema 0; is the layer or the schema right?)") from None


def _feature_file_set(options: ReadOptions) -> str:
    if options.transcoder_set:
        return canonical_transcoder_set(options.transcoder_set, options.model)
    if options.source and options.model:
        return canonical_transcoder_set(parse_neuronpedia_source(options.source)[1], options.model)
    raise _Bad(
        "",
        "circuit-tracer feature files do not say their transcoder set: pass transcoder_set "
        "(e.g. --transcoder-set mntss/clt-gemma-2-2b-2.5M) or model and source",
    )


def _schema0_layer(path: Path, options: ReadOptions) -> int:
    if options.layer is not None:
        return options.layer
    if options.source:
        return parse_neuronpedia_source(options.source)[0]
    named = _LAYERED_NAME.fullmatch(path.name.removesuffix(".gz").split(".")[0])
    if named:
        return int(named.group("layer"))
    raise _Bad(
        "",
        "schema-0 feature ids need the layer: pass layer or source (e.g. --source 20-gemmascope-transcoder-16k), "
        "or name the file {layer}_{feature}.json",
    )


def _check_quantiles(where: str, value: Any) -> None:
    if not isinstance(value, list):
        raise _Bad(where, f"expected an array of quantiles, got {_type_name(value)}")
    for i, quantile in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(quantile, dict):
            raise _Bad(at, f"expected an object {{quantile_name, examples}}, got {_type_name(quantile)}")
        _required_text(_at(at, "quantile_name"), quantile.get("quantile_name"))
        examples = quantile.get("examples")
        if not isinstance(examples, list):
            raise _Bad(_at(at, "examples"), f"expected an array, got {_type_name(examples)}")
        for j, example in enumerate(examples):
            _check_example(f"{at}.examples[{j}]", example)


def _check_example(where: str, example: Any) -> None:
    if not isinstance(example, dict):
        raise _Bad(where, f"expected an object {{tokens, tokens_acts_list}}, got {_type_name(example)}")
    tokens = _string_list(_at(where, "tokens"), example.get("tokens"))
    if tokens is None:
        raise _Bad(_at(where, "tokens"), "missing: expected an array of strings")
    acts = example.get("tokens_acts_list")
    if not isinstance(acts, list):
        raise _Bad(_at(where, "tokens_acts_list"), f"expected an array of numbers, got {_type_name(acts)}")
    for k, act in enumerate(acts):
        _number(f"{where}.tokens_acts_list[{k}]", act)
    if len(acts) != len(tokens):
        # The feature page pairs each token with its activation; unequal lists would shift the highlights.
        raise _Bad(
            _at(where, "tokens_acts_list"),
            f"has {len(acts)} activations for {len(tokens)} tokens: expected one per token",
        )


# --- label CSV ----------------------------------------------------------------------------------


def _label_csv(text: str, options: ReadOptions) -> list[Label]:
    # strict: a quote left open, or text after a closing quote, is an error rather than a field
    # silently running on to the end of the file or losing its quotes
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next(_csv_rows(reader), None)
    if not header:
        raise _Bad("line 1", "empty file: expected a header line")
    columns = [h.strip().lower() for h in header]
    identity = _identity_style(columns)
    text_column = "label" if "label" in columns else "text"
    labels = []
    for raw in _csv_rows(reader):
        if not any(cell.strip() for cell in raw):
            continue
        where = f"line {reader.line_num}"
        if len(raw) > len(columns):
            raise _Bad(where, f"{len(raw)} fields, but the header names {len(columns)} columns")
        missing = [col for col in columns[len(raw):] if col in (*identity, text_column)]
        if missing:  # trailing optional columns may be left off; these may not
            raise _Bad(where, f"{len(raw)} fields, but the header names {len(columns)} columns: no {', '.join(missing)}")
        row = {col: cell.strip() for col, cell in zip(columns, raw)}
        labels.append(_label_row(where, row, identity, text_column, options))
    return labels


def _csv_rows(reader: Any) -> Iterator[list[str]]:
    while True:
        starts = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise _Bad(f"line {starts}", "a quoted field opened on this line is never closed") from None
            raise _Bad(f"line {reader.line_num}", f"invalid CSV: {exc}") from None
        yield row


def _identity_style(columns: list[str]) -> tuple[str, ...]:
    if "label" not in columns and "text" not in columns:
        raise _Bad("header", f"no label column: name it label (or text); found {', '.join(columns)}")
    for style in (("transcoder_set", "layer", "index"), ("model", "source", "index"), ("feature",)):
        if all(col in columns for col in style):
            return style
    raise _Bad(
        "header",
        "cannot tell the feature: the header needs transcoder_set,layer,index or model,source,index "
        f"or a feature column (gemma-2-2b/20-clt-hp/1234); found {', '.join(columns)}",
    )


def _label_row(where: str, row: dict[str, str], identity: tuple[str, ...], text_column: str, options: ReadOptions) -> Label:
    feature = _checked_key(where, _row_feature(where, row, identity, options))
    text = row.get(text_column, "")
    if not text:
        raise _Bad(_column(where, text_column), "empty label")
    author = row.get("author") or options.author
    if not author:
        raise _Bad(_column(where, "author"), "no author: fill the author column or pass author (--author)")
    _check_length(_column(where, "author"), author, MAX_AUTHOR)
    graph = row.get("graph") or row.get("graph_slug") or None
    if graph:
        _check_length(_column(where, "graph"), graph, MAX_SLUG)
    return Label(feature, text, author, graph)


def _row_feature(where: str, row: dict[str, str], identity: tuple[str, ...], options: ReadOptions) -> FeatureKey:
    if identity == ("feature",):
        return _parse_feature_name(_column(where, "feature"), row.get("feature", ""))
    index = _index(_column(where, "index"), row.get("index", ""))
    if identity[0] == "model":
        model = _cell(where, row, "model")
        source = _cell(where, row, "source")
        try:
            return neuronpedia_feature(model, source, index)
        except ValueError as exc:
            raise _Bad(_column(where, "source"), str(exc)) from None
    tset = _cell(where, row, "transcoder_set")
    layer = _index(_column(where, "layer"), row.get("layer", ""), what="layer")
    return FeatureKey(canonical_transcoder_set(tset, row.get("model") or options.model), layer, index)


def _parse_feature_name(where: str, value: str) -> FeatureKey:
    """``gemma-2-2b/20-clt-hp/1234`` (Neuronpedia) or ``gemma-2-2b/clt-hp/L20/1234`` (FeatureKey)."""
    head, _, index_text = value.rpartition("/")
    prefix, _, middle = head.rpartition("/")
    if not prefix or not middle:
        raise _Bad(where, f"expected model/source/index like gemma-2-2b/20-clt-hp/1234, got {value!r}")
    index = _index(where, index_text)
    layer = _KEY_LAYER.fullmatch(middle)
    if layer:
        return FeatureKey(canonical_transcoder_set(prefix), int(layer.group(1)), index)
    try:
        return neuronpedia_feature(prefix, middle, index)
    except ValueError as exc:
        raise _Bad(where, str(exc)) from None


def _cell(where: str, row: dict[str, str], column: str) -> str:
    value = row.get(column, "")
    if not value:
        raise _Bad(_column(where, column), "empty")
    return value


def _column(where: str, column: str) -> str:
    return f'{where}, column "{column}"'


# --- values -------------------------------------------------------------------------------------


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _index(where: str, value: Any, what: str = "feature index") -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not _is_int(value) or value < 0:
        shown = repr(value) if isinstance(value, str) else _type_name(value)
        raise _Bad(where, f"{what} must be a non-negative integer, got {shown}")
    if value > MAX_FEATURE_ID:
        raise _Bad(where, f"{what} {value} is too large")
    return value


def _checked_key(where: str, key: FeatureKey) -> FeatureKey:
    _check_length(where, key.transcoder_set, MAX_SET, "transcoder set")
    return key


def _required_text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(where, f"expected a string, got {_type_name(value)}" if value is not None else "missing")
    if not value.strip():
        raise _Bad(where, "empty")
    return value.strip()


def _optional_text(where: str, value: Any, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(where, f"expected a string, got {_type_name(value)}")
    _check_length(where, value.strip(), max_length)
    return value.strip() or None


def _check_length(where: str, value: str, max_length: int, what: str = "value") -> None:
    if len(value) > max_length:
        raise _Bad(where, f"{what} longer than {max_length} characters")


def _string_list(where: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(where, f"expected an array of strings, got {_describe_list(value)}")
    return value


def _number(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value):
        raise _Bad(where, f"expected a finite number, got {_type_name(value)} {value!r}")
    return float(value)


def _describe_list(value: Any) -> str:
    if not isinstance(value, list):
        return _type_name(value)
    bad = next(v for v in value if not isinstance(v, str))
    return f"an array holding a {_type_name(bad)}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    names: dict[type, str] = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)

