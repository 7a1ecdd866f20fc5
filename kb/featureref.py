"""Feature references as people write them, parsed to a feature's identity.

One parser for every place that takes a feature from a user (the CLI, the app, search). A
reference names (transcoder set, layer, index) in one of these ways:

- ``gemma-2-2b/clt-hp/20/1234`` or ``gemma-2-2b/clt-hp/L20/1234`` (how a FeatureKey prints):
  the transcoder set, then the layer, then the index;
- ``gemma-2-2b/20-clt-hp/1234``: Neuronpedia's model / source / index (as in its URLs);
- ``20-clt-hp/1234``: a Neuronpedia source and index; the model comes from ``model``;
- ``L20/1234`` or ``20/1234``: layer and index; the set comes from ``transcoder_set``.

Transcoder sets are stored under one canonical name (see
:func:`ingest.featureid.canonical_transcoder_set`), so ``mntss/clt-gemma-2-2b-2.5M/20/1234``
and ``gemma-2-2b/20-clt-hp/1234`` name the same feature.
"""

from __future__ import annotations

import re

from ingest.featureid import MAX_FEATURE_ID, canonical_transcoder_set
from ingest.records import FeatureKey
from kb.errors import CircuitKBError

_LAYER = re.compile(r"L?(\d{1,4})")
_SOURCE = re.compile(r"(\d{1,4})-(\S+)")
_INDEX = re.compile(r"\d{1,19}")

EXAMPLES = "gemma-2-2b/clt-hp/20/1234, gemma-2-2b/20-clt-hp/1234, 20-clt-hp/1234 (with a model) or L20/1234 (with a transcoder set)"


class BadFeatureRef(CircuitKBError):
    """A feature reference that cannot be read."""


def parse_feature_ref(text: str, *, transcoder_set: str | None = None, model: str | None = None) -> FeatureKey:
    """The feature ``text`` names; ``transcoder_set`` and ``model`` complete short forms.

    Raises BadFeatureRef with the accepted forms when ``text`` is none of them, or when a short
    form lacks the set or model it needs.
    """
    ref = text.strip()
    head, sep, index_text = ref.rpartition("/")
    if not sep or not _INDEX.fullmatch(index_text) or int(index_text) > MAX_FEATURE_ID:
        raise BadFeatureRef(f"cannot read feature {text!r}: it should end with /INDEX; write it like {EXAMPLES}")
    index = int(index_text)
    prefix, _, middle = head.rpartition("/")

    source = _SOURCE.fullmatch(middle)
    if source:
        layer, source_set = int(source.group(1)), source.group(2)
        owner = prefix or model
        if not owner:
            raise BadFeatureRef(f"feature {text!r} names a Neuronpedia source; say which model it belongs to (--model gemma-2-2b)")
        return FeatureKey(canonical_transcoder_set(source_set, owner), layer, index)

    layer_match = _LAYER.fullmatch(middle)
    if not layer_match:
        raise BadFeatureRef(f"cannot read feature {text!r}: {middle!r} is neither a layer nor a Neuronpedia source; write it like {EXAMPLES}")
    layer = int(layer_match.group(1))
    tset = prefix or transcoder_set
    if not tset:
        raise BadFeatureRef(f"feature {text!r} names no transcoder set; write the set in front (gemma-2-2b/clt-hp/{middle}/{index}) or pass --transcoder-set")
    return FeatureKey(canonical_transcoder_set(tset, model), layer, index)


def format_feature_ref(key: FeatureKey) -> str:
    """The reference :func:`parse_feature_ref` reads back to ``key``."""
    return f"{key.transcoder_set}/L{key.layer}/{key.index}"
