"""Decoding a node's ``feature`` field to its identity (transcoder set, layer, index).

Real graph files encode a feature node's (layer, index) in one of four ways; :func:`decode_feature`
tries them in this order:

- Neuronpedia's converter writes node ids ``{layer}_cro_{index}_{position}`` (transcoder
  features) and ``{layer}_lor_{index}_{position}`` (Lorsa attention features of the CRM engine):
  the id says it, whatever the ``feature`` field holds;
- a file whose ``feature`` is null but whose node id is ``{layer}_{index}_{position}`` is read
  from the id;
- schema 1 (``metadata.schema_version`` >= 1): ``feature`` is the Cantor pairing
  ``(layer + index)(layer + index + 1) / 2 + index``, which must decode to the node's own layer;
- schema 0: ``feature`` is ``layer * 10**k + index``, with ``10**k`` the first power of ten above
  the transcoder's width (gemma-2-2b 16k: ``layer * 100000 + index``), so its leading digits
  are the node's layer and the rest the index; on layer 0 the ``feature`` is the index itself.

A transcoder set is stored under one canonical name (:func:`canonical_transcoder_set`), derived
from a graph's metadata by :func:`transcoder_set_of`. A graph of the CRM engine holds features of
two sets: its transcoder's and its Lorsa's. The same (layer, index) names two different features,
one in each set (:func:`lorsa_set_of`).
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_FEATURE_ID = 2**63 - 1

_CONVERTER_ID = re.compile(r"^(\d+)_(?:cro|lor)_(\d+)_(\d+)$")
_PLAIN_ID = re.compile(r"^(\d+)_(\d+)_(\d+)$")

# Transcoder releases known under two names: the repository a local circuit-tracer run names,
# and the (model, source set) Neuronpedia uses. Both map to one canonical set name so that a
# Neuronpedia explanation and a graph node land on the same feature.
KNOWN_TRANSCODER_SETS = {
    "mntss/clt-gemma-2-2b-2.5m": "gemma-2-2b/clt-hp",
}


def cantor_unpair(z: int) -> tuple[int, int]:
    """Inverse of the Cantor pairing used by schema 1: returns (layer, index)."""
    w = (math.isqrt(8 * z + 1) - 1) // 2
    t = w * (w + 1) // 2
    index = z - t
    return w - index, index


def cantor_pair(layer: int, index: int) -> int:
    s = layer + index
    return s * (s + 1) // 2 + index


def decode_schema0(feature: int, layer: int) -> int:
    """Index of a schema-0 feature id, given the node's layer (the id's leading digits)."""
    if layer == 0:
        return feature
    digits = len(str(feature)) - len(str(layer))
    if digits <= 0 or feature // 10**digits != layer:
        raise ValueError(f"feature {feature} does not start with its layer {layer}")
    return feature - layer * 10**digits


def decode_feature(
    feature: Any, node_id: str, layer: int, schema_version: int
) -> tuple[int, int]:
    """Return (layer, index) of a feature node; raise ValueError with the reason if impossible."""
    converted = _CONVERTER_ID.match(node_id)
    if converted:
        return int(converted.group(1)), int(converted.group(2))
    if feature is None:
        plain = _PLAIN_ID.match(node_id)
        if plain:
            return int(plain.group(1)), int(plain.group(2))
        raise ValueError("feature is null and the node_id does not name one")
    if schema_version >= 1:
        dec_layer, index = cantor_unpair(feature)
        if dec_layer != layer:
            raise ValueError(
                f"feature {feature} decodes to layer {dec_layer} (schema {schema_version}), "
                f"but the node is on layer {layer}"
            )
        return dec_layer, index
    return layer, decode_schema0(feature, layer)


def canonical_transcoder_set(name: str, model: str | None = None) -> str:
    """The one name a transcoder set is stored under.

    ``mntss/clt-gemma-2-2b-2.5M`` and Neuronpedia's ``clt-hp`` on ``gemma-2-2b`` are the same
    release; unknown repositories keep their own name, and a bare Neuronpedia source set is
    qualified by its model.
    """
    key = name.strip()
    known = KNOWN_TRANSCODER_SETS.get(key.lower())
    if known:
        return known
    if "/" in key:
        return key
    return f"{model}/{key}" if model else key


def transcoder_set_of(metadata: dict[str, Any]) -> str | None:
    """Derive the canonical transcoder set of a graph from its metadata, or None."""
    info = metadata.get("info") or {}
    details = metadata.get("feature_details") or {}
    model = metadata.get("scan") if isinstance(metadata.get("scan"), str) else None
    if isinstance(info, dict) and isinstance(info.get("transcoder_set"), str):
        repo = info["transcoder_set"]
        if repo.lower() in KNOWN_TRANSCODER_SETS:
            return KNOWN_TRANSCODER_SETS[repo.lower()]
    for source in (details, info):
        if isinstance(source, dict) and isinstance(source.get("neuronpedia_source_set"), str):
            return canonical_transcoder_set(source["neuronpedia_source_set"], model)
    if isinstance(info, dict) and isinstance(info.get("transcoder_set"), str):
        return canonical_transcoder_set(info["transcoder_set"], model)
    tlist = metadata.get("transcoder_list")
    if isinstance(tlist, list) and tlist and all(isinstance(t, str) for t in tlist):
        # per-layer lists name one file per layer; their common folder names the set
        common = tlist[0] if len(tlist) == 1 else _common_prefix(tlist)
        if common:
            return canonical_transcoder_set(common, model)
    if model:
        return canonical_transcoder_set(model)
    return None


def lorsa_set_of(metadata: dict[str, Any], transcoder_set: str) -> str:
    """The canonical set of a graph's Lorsa features.

    ``feature_details.neuronpedia_lorsa_source_set`` (or the same key in ``info``), qualified by
    the model like any Neuronpedia source set; without it (or when it names the transcoder set
    itself), ``{transcoder_set}/lorsa``, so that a Lorsa feature never shares its identity with
    the transcoder feature at the same (layer, index).
    """
    model = metadata.get("scan") if isinstance(metadata.get("scan"), str) else None
    for source in (metadata.get("feature_details"), metadata.get("info")):
        if isinstance(source, dict) and isinstance(source.get("neuronpedia_lorsa_source_set"), str):
            name = canonical_transcoder_set(source["neuronpedia_lorsa_source_set"], model)
            if name.strip("/") and name != transcoder_set:
                return name
    return f"{transcoder_set}/lorsa"


def _common_prefix(names: list[str]) -> str:
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix.rstrip("/_-.")


def parse_neuronpedia_source(source_id: str) -> tuple[int, str]:
    """``"20-clt-hp"`` -> (20, "clt-hp")."""
    head, sep, rest = source_id.partition("-")
    if not sep or not head.isdigit() or not rest:
        raise ValueError(f"not a Neuronpedia layer source id: {source_id!r} (expected like '20-clt-hp')")
    return int(head), rest
