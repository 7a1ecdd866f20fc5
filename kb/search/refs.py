"""Feature ids typed into a search box, in the ways researchers write them.

- a Neuronpedia URL: ``https://www.neuronpedia.org/gemma-2-2b/20-clt-hp/1234``;
- a Neuronpedia name: ``gemma-2-2b/20-clt-hp/1234`` or, without the model, ``20-clt-hp/1234``;
- how circuitkb prints a feature: ``gemma-2-2b/clt-hp/L20/1234``;
- a layer and index in any set: ``L20/1234``, ``L20_1234``, ``20_1234`` or a graph node id
  ``20_1234_5`` (layer, index, token position).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.featureid import canonical_transcoder_set

_URL = re.compile(
    r"(?:https?://)?(?:www\.)?neuronpedia\.org/(?P<model>[^/\s]+)/(?P<layer>\d+)-(?P<set>[^/\s]+)/(?P<index>\d+)\S*",
    re.IGNORECASE,
)
_NP_FULL = re.compile(r"(?<![\w/.-])(?P<model>[A-Za-z][\w.-]*)/(?P<layer>\d+)-(?P<set>[A-Za-z][\w.-]*)/(?P<index>\d+)(?![\w/])")
_NP_SHORT = re.compile(r"(?<![\w/.-])(?P<layer>\d+)-(?P<set>[A-Za-z][\w.-]*)/(?P<index>\d+)(?![\w/])")
_PRINTED = re.compile(r"(?<![\w/.-])(?P<tset>[A-Za-z][\w.-]*(?:/[A-Za-z][\w.-]*)*)/L(?P<layer>\d+)/(?P<index>\d+)(?![\w/])")
_LAYER_INDEX = re.compile(r"(?<![\w/.-])L(?P<layer>\d+)[/_:](?:F)?(?P<index>\d+)(?![\w/])", re.IGNORECASE)
_NODE_ID = re.compile(r"(?<![\w/.-])(?P<layer>\d{1,3})_(?P<index>\d+)(?:_(?P<pos>\d+))?(?![\w/])")

_MAX_LAYER = 10_000


@dataclass(frozen=True)
class FeatureRef:
    """A feature named in a query: its layer and index, and what is known of its set."""

    text: str  # as written
    layer: int
    index: int
    transcoder_set: str | None = None  # the canonical set, when the text names it
    set_name: str | None = None  # a Neuronpedia source set ("clt-hp") without its model


def parse_refs(query: str) -> tuple[list[FeatureRef], str]:
    """The feature ids in ``query`` and the rest of the text, ids removed."""
    refs: list[FeatureRef] = []
    rest = query
    for pattern, make in (
        (_URL, _from_np),
        (_NP_FULL, _from_np),
        (_PRINTED, _from_printed),
        (_NP_SHORT, _from_short),
        (_LAYER_INDEX, _from_layer_index),
        (_NODE_ID, _from_layer_index),
    ):
        found: list[FeatureRef] = []

        def take(match: re.Match) -> str:
            ref = make(match)
            if ref is None:
                return match.group(0)
            found.append(ref)
            return " "

        rest = pattern.sub(take, rest)
        refs.extend(found)
    unique = list(dict.fromkeys(refs))
    return unique, " ".join(rest.split())


def _from_np(m: re.Match) -> FeatureRef | None:
    return _ref(m, transcoder_set=canonical_transcoder_set(m.group("set"), m.group("model")))


def _from_printed(m: re.Match) -> FeatureRef | None:
    return _ref(m, transcoder_set=canonical_transcoder_set(m.group("tset")))


def _from_short(m: re.Match) -> FeatureRef | None:
    return _ref(m, set_name=m.group("set"))


def _from_layer_index(m: re.Match) -> FeatureRef | None:
    return _ref(m)


def _ref(m: re.Match, transcoder_set: str | None = None, set_name: str | None = None) -> FeatureRef | None:
    layer, index = int(m.group("layer")), int(m.group("index"))
    if layer > _MAX_LAYER or index >= 2**62:
        return None
    return FeatureRef(m.group(0), layer, index, transcoder_set, set_name)
