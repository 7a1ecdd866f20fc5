"""Feature references as people write them, parsed to a feature's identity.

The one parser for every place that takes a feature from a user: the CLI, the app, the analyses
and search. A reference names a layer and an index, and the transcoder set in full, in part or
not at all:

- ``gemma-2-2b/clt-hp/20/1234`` or ``gemma-2-2b/clt-hp/L20/1234`` (how a FeatureKey prints):
  the transcoder set, then the layer, then the index;
- ``gemma-2-2b/20-clt-hp/1234``: Neuronpedia's model / source / index (as in its URLs);
- ``20-clt-hp/1234``: a Neuronpedia source and index, without the model;
- ``L20/1234`` or ``20/1234``: layer and index, without the set.

:func:`read_feature_ref` reads one reference as written into a :class:`FeatureRef`;
:func:`parse_feature_ref` completes it to a :class:`~ingest.records.FeatureKey` with a default
set or model. :func:`find_feature_refs` finds the references inside the free text of a search
box, where three more spellings are read as the forms above: a Neuronpedia URL
(``https://www.neuronpedia.org/gemma-2-2b/20-clt-hp/1234``), ``L20_1234`` / ``L20:F1234``, and
a graph node id ``20_1234`` or ``20_1234_5`` (layer, index, token position).

Transcoder sets are stored under one canonical name (see
:func:`ingest.featureid.canonical_transcoder_set`), so ``mntss/clt-gemma-2-2b-2.5M/20/1234``
and ``gemma-2-2b/20-clt-hp/1234`` name the same feature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable

from ingest.featureid import MAX_FEATURE_ID, canonical_transcoder_set
from ingest.records import FeatureKey
from kb.errors import CircuitKBError

_LAYER = re.compile(r"L?(\d{1,4})")
_SOURCE = re.compile(r"(\d{1,4})-(\S+)")
_INDEX = re.compile(r"\d{1,19}")

EXAMPLES = "gemma-2-2b/clt-hp/20/1234, gemma-2-2b/20-clt-hp/1234, 20-clt-hp/1234 (with a model) or L20/1234 (with a transcoder set)"


class BadFeatureRef(CircuitKBError):
    """A feature reference that cannot be read."""


@dataclass(frozen=True)
class FeatureRef:
    """A reference as written: its layer and index, and what it says of the set."""

    text: str  # as written
    layer: int
    index: int
    transcoder_set: str | None = None  # the set, canonical as far as the text says
    set_name: str | None = None  # a Neuronpedia source set ("clt-hp") written without its model

    def key(self, *, transcoder_set: str | None = None, model: str | None = None) -> FeatureKey:
        """The feature named, ``transcoder_set`` and ``model`` completing what the text leaves out.

        Raises BadFeatureRef when the text and the defaults do not name a set.
        """
        if self.set_name is not None:
            if not model:
                raise BadFeatureRef(f"feature {self.text!r} names a Neuronpedia source; say which model it belongs to (--model gemma-2-2b)")
            return FeatureKey(canonical_transcoder_set(self.set_name, model), self.layer, self.index)
        tset = self.transcoder_set or transcoder_set
        if not tset:
            raise BadFeatureRef(
                f"feature {self.text!r} names no transcoder set; write the set in front "
                f"(gemma-2-2b/clt-hp/L{self.layer}/{self.index}) or pass --transcoder-set"
            )
        return FeatureKey(canonical_transcoder_set(tset, model), self.layer, self.index)


def read_feature_ref(text: str) -> FeatureRef:
    """The reference ``text`` as written (one of the forms in the module doc).

    Raises BadFeatureRef with the accepted forms when ``text`` is none of them.
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
        if prefix:
            return FeatureRef(text, layer, index, transcoder_set=canonical_transcoder_set(source_set, prefix))
        return FeatureRef(text, layer, index, set_name=source_set)

    layer_match = _LAYER.fullmatch(middle)
    if not layer_match:
        raise BadFeatureRef(f"cannot read feature {text!r}: {middle!r} is neither a layer nor a Neuronpedia source; write it like {EXAMPLES}")
    return FeatureRef(text, int(layer_match.group(1)), index, transcoder_set=canonical_transcoder_set(prefix) if prefix else None)


def parse_feature_ref(text: str, *, transcoder_set: str | None = None, model: str | None = None) -> FeatureKey:
    """The feature ``text`` names; ``transcoder_set`` and ``model`` complete short forms.

    Raises BadFeatureRef with the accepted forms when ``text`` is none of them, or when a short
    form lacks the set or model it needs.
    """
    return read_feature_ref(text).key(transcoder_set=transcoder_set, model=model)


def format_feature_ref(key: FeatureKey) -> str:
    """The reference :func:`parse_feature_ref` reads back to ``key``."""
    return f"{key.transcoder_set}/L{key.layer}/{key.index}"


# --- references inside free text (search) ------------------------------------------------------

# Where a reference may stand in free text, and how each spelling is written for the reader.
# The look-arounds keep references out of longer words and paths; order matters: a URL holds a
# Neuronpedia name, which holds a short Neuronpedia name.
_EDGE_BEFORE, _EDGE_AFTER = r"(?<![\w/.-])", r"(?![\w/])"
_NAME = r"[A-Za-z][\w.-]*"
_IN_TEXT: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        re.compile(r"(?:https?://)?(?:www\.)?neuronpedia\.org/(?P<ref>[^/\s]+/\d+-[^/\s]+/\d+)\S*", re.IGNORECASE),
        lambda m: m.group("ref"),
    ),
    (re.compile(rf"{_EDGE_BEFORE}{_NAME}/\d+-{_NAME}/\d+{_EDGE_AFTER}"), lambda m: m.group(0)),
    (re.compile(rf"{_EDGE_BEFORE}{_NAME}(?:/{_NAME})*/L\d+/\d+{_EDGE_AFTER}"), lambda m: m.group(0)),
    (re.compile(rf"{_EDGE_BEFORE}\d+-{_NAME}/\d+{_EDGE_AFTER}"), lambda m: m.group(0)),
    (
        re.compile(rf"{_EDGE_BEFORE}L(?P<layer>\d+)[/_:](?:F)?(?P<index>\d+){_EDGE_AFTER}", re.IGNORECASE),
        lambda m: f"L{m.group('layer')}/{m.group('index')}",
    ),
    (
        re.compile(rf"{_EDGE_BEFORE}(?P<layer>\d{{1,3}})_(?P<index>\d+)(?:_\d+)?{_EDGE_AFTER}"),
        lambda m: f"{m.group('layer')}/{m.group('index')}",
    ),
)


def find_feature_refs(query: str) -> tuple[list[FeatureRef], str]:
    """The feature references in ``query`` (each read by :func:`read_feature_ref`, once) and the
    rest of the text, references removed. Text that looks like a reference but does not read as
    one stays in the rest."""
    refs: list[FeatureRef] = []
    rest = query
    for pattern, spelled in _IN_TEXT:
        rest = pattern.sub(_taker(spelled, refs), rest)
    return list(dict.fromkeys(refs)), " ".join(rest.split())


def _taker(spelled: Callable[[re.Match[str]], str], found: list[FeatureRef]) -> Callable[[re.Match[str]], str]:
    """A substitution that moves each readable reference from the text to ``found``."""

    def take(match: re.Match[str]) -> str:
        try:
            ref = read_feature_ref(spelled(match))
        except BadFeatureRef:
            return match.group(0)
        found.append(replace(ref, text=match.group(0)))
        return " "

    return take
