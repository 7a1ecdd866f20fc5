"""One very large graph, shaped like an unpruned one, streamed to disk with flat memory."""

from __future__ import annotations

import bisect
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

from synth.fileformat import (
    CLT_FEATURE_TYPE,
    D_TRANSCODER,
    EMBEDDING_TYPE,
    ERROR_TYPE,
    LOGIT_LAYER,
    MIN_FEATURE_INDEX,
    N_LAYERS,
    SLUG_PREFIX,
    cantor_pair,
    create_time,
    graph_metadata,
    logit_node_dict,
    node_dict,
)
from synth.files import compact_json, open_text
from synth.graph import qparams_dict
from synth.model import WEIGHT_POOL_BITS, Model, default_model
from synth.sampling import bf16, f32, seeded
from synth.tokens import BOS, token_id


# One very large (unpruned-like) graph, streamed
# --------------------------------------------------------------------------------------------

_FILLER_WORDS = ("the", "report", "of", "a", "river", "city", "was", "written", "in", "and", "by",
                 "many", "people", "who", "lived", "near", "old", "bridge", "after", "war", "their",
                 "children", "learned", "to", "read", "from", "books", "that", "were", "kept", "at",
                 "school", "during", "long", "winter", "nights")
_LINK_FLUSH = 16_384


def write_large_graph(path: Path, n_links: int, n_nodes: int, seed: int = 0) -> Path:
    """Stream one large synthetic graph with exactly ``n_links`` links and ``n_nodes`` nodes.

    Shaped like an unpruned graph (every error node of a long prompt, thousands of features,
    dense links): e.g. 16M links and 14k nodes make a ~1 GB file. Nodes are kept in memory,
    links are drawn target by target and written as they come, so memory stays flat whatever
    ``n_links``. A ``.gz`` suffix compresses. Raises ValueError when the nodes cannot carry that
    many distinct links.
    """
    path = Path(path)
    rng = seeded(seed, "large", n_links, n_nodes)
    model = default_model()
    layout = _large_layout(rng, model, n_nodes)
    kinds, layers, positions = layout.kinds, layout.layers, layout.positions
    sources_by_layer = _sources_by_layer(kinds, layers, positions)
    targets = [n for n, kind in enumerate(kinds) if kind in "FL"]
    caps = [_capacity(sources_by_layer, layers[t], positions[t]) for t in targets]
    wants = [math.exp(rng.gauss(0.0, 0.8)) * (4.0 if kinds[t] == "L" else 1.0) for t in targets]
    quota = allocate(n_links, wants, caps)
    slug = f"{SLUG_PREFIX}large-{seed}-{n_links}"
    with open_text(path, path.suffix == ".gz") as fh:
        fh.write('{"metadata":' + compact_json(graph_metadata(slug, layout.tokens, create_time(rng))) + ',"qParams":'
                 + compact_json(qparams_dict({}, layout.ids, 0, False)) + ',"nodes":[')
        fh.write(",".join(compact_json(n) for n in _large_nodes(rng, model, layout)))
        fh.write('],"links":[')
        _stream_links(fh, rng, model, layout, targets, quota, sources_by_layer)
        fh.write("]}")
    return path


@dataclass
class _LargeLayout:
    tokens: list[str]
    features: list[tuple[int, int, int]]
    errors: list[tuple[int, int]]
    logit_tokens: list[str]
    kinds: list[str]
    layers: list[int]
    positions: list[int]
    ids: list[str]


def _large_layout(rng: random.Random, model: Model, n_nodes: int) -> _LargeLayout:
    """The nodes of a large graph: a long prompt, all its error nodes, features to fill n_nodes."""
    n_tokens = _large_prompt_length(n_nodes)
    words = [rng.choice(_FILLER_WORDS) for _ in range(n_tokens - 1)]
    tokens = [BOS, words[0].capitalize(), *(" " + w for w in words[1:])]
    last = n_tokens - 1
    logit_tokens = [f" {w}" for w in _FILLER_WORDS[:10]]
    errors = [(layer, pos) for layer in range(N_LAYERS) for pos in range(1, n_tokens)]
    n_features = n_nodes - len(errors) - n_tokens - len(logit_tokens)
    if n_features < N_LAYERS:
        raise ValueError(f"n_nodes={n_nodes} is too small for a large graph "
                         f"(need >= {n_nodes - n_features + N_LAYERS})")
    features = _large_features(rng, model, n_features, last)
    n_logits = len(logit_tokens)
    return _LargeLayout(
        tokens=tokens, features=features, errors=errors, logit_tokens=logit_tokens,
        kinds=["F"] * len(features) + ["R"] * len(errors) + ["E"] * n_tokens + ["L"] * n_logits,
        layers=[f[0] for f in features] + [e[0] for e in errors] + [-1] * n_tokens + [N_LAYERS + 1] * n_logits,
        positions=[f[1] for f in features] + [e[1] for e in errors] + list(range(n_tokens)) + [last] * n_logits,
        ids=([f"{l}_{i}_{p}" for l, p, i in features] + [f"0_{l}_{p}" for l, p in errors]
             + [f"E_{token_id(t)}_{p}" for p, t in enumerate(tokens)]
             + [f"{LOGIT_LAYER}_{token_id(t)}_{last}" for t in logit_tokens]))


def _large_prompt_length(n_nodes: int) -> int:
    # About 15% of an unpruned graph's nodes are error nodes (26 per token).
    return max(4, min(256, round(0.15 * n_nodes / N_LAYERS)))


def _large_features(rng: random.Random, model: Model, n: int, last: int) -> list[tuple[int, int, int]]:
    seen: set[tuple[int, int, int]] = set()
    layers = rng.choices(range(N_LAYERS), cum_weights=model.layer_cum, k=n)
    for layer in layers:
        while True:
            pos = last if rng.random() < model.last_fraction[layer] else rng.randrange(1, last + 1)
            key = (layer, pos, rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER))
            if key not in seen:
                seen.add(key)
                break
    return sorted(seen)


def _sources_by_layer(kinds: Sequence[str], layers: Sequence[int], positions: Sequence[int]
                      ) -> list[tuple[list[int], list[int]]]:
    """For each target layer 0..26: the possible sources (embeddings and lower-layer features and
    errors) sorted by position, as (positions, node indices)."""
    out = []
    pool = sorted((positions[n], n) for n in range(len(kinds)) if kinds[n] == "E")
    by_layer: dict[int, list[int]] = defaultdict(list)
    for n, kind in enumerate(kinds):
        if kind in "FR":
            by_layer[layers[n]].append(n)
    for layer in range(N_LAYERS + 2):
        out.append(([p for p, _ in pool], [n for _, n in pool]))
        pool = sorted(pool + [(positions[n], n) for n in by_layer.get(layer, ())])
    return out


def _capacity(sources_by_layer: Sequence[tuple[list[int], list[int]]], layer: int, pos: int) -> int:
    pos_list, _ = sources_by_layer[layer]
    return bisect.bisect_right(pos_list, pos)


def allocate(total: int, wants: Sequence[float], caps: Sequence[int]) -> list[int]:
    """Integers proportional to ``wants``, each at most its cap, summing to ``total`` (water-filling)."""
    if total > sum(caps):
        raise ValueError(f"{total} links do not fit: at most {sum(caps)} distinct links for these nodes")
    quota = [0] * len(wants)
    order = sorted(range(len(wants)), key=lambda i: caps[i] / wants[i])
    remaining, weight = total, sum(wants)
    start = 0
    for start, i in enumerate(order):
        if remaining * wants[i] / weight < caps[i]:
            break
        quota[i] = caps[i]
        remaining -= caps[i]
        weight -= wants[i]
    else:
        return quota
    rest = order[start:]
    shares = [(remaining * wants[i] / weight, i) for i in rest]
    for share, i in shares:
        quota[i] = int(share)
    left = remaining - sum(quota[i] for i in rest)
    for _, i in sorted(shares, key=lambda s: (int(s[0]) - s[0], s[1]))[:left]:
        quota[i] += 1
    return quota


def _large_nodes(rng: random.Random, model: Model, layout: _LargeLayout) -> Iterator[dict[str, Any]]:
    infl = model.influence
    for node, (layer, pos, index) in enumerate(layout.features):
        yield node_dict(layout.ids[node], cantor_pair(layer, index), str(layer), pos, CLT_FEATURE_TYPE,
                        f"{layer}_{index}-0", "", f32(infl["feature"](rng.random())), bf16(model.activation(rng.random())))
    for layer, pos in layout.errors:
        yield node_dict(f"0_{layer}_{pos}", -1, str(layer), pos, ERROR_TYPE, f"{layer}_{pos}-0", "",
                        f32(infl["error"](rng.random())), None)
    for pos, tok in enumerate(layout.tokens):
        yield node_dict(f"E_{token_id(tok)}_{pos}", pos, "E", pos, EMBEDDING_TYPE, f"E_{token_id(tok)}-{pos}", "",
                        f32(infl["embedding"](rng.random())), None)
    for rank, tok in enumerate(layout.logit_tokens):
        yield logit_node_dict(tok, 0.5 ** (rank + 1), len(layout.tokens) - 1, rank == 0)


def _stream_links(fh: TextIO, rng: random.Random, model: Model, layout: _LargeLayout, targets: Sequence[int],
                  quota: Sequence[int], sources_by_layer: Sequence[tuple[list[int], list[int]]]) -> None:
    """Write the links target by target, flushing every _LINK_FLUSH links."""
    kinds, ids, layers, positions = layout.kinds, layout.ids, layout.layers, layout.positions
    prefix = [f'{{"source":"{i}","target":"' for i in ids]
    pools = model.weight_texts()
    bits = WEIGHT_POOL_BITS
    getrandbits = rng.getrandbits
    buffer: list[str] = []
    first = True
    for target, k in zip(targets, quota):
        if k == 0:
            continue
        _, nodes = sources_by_layer[layers[target]]
        cap = _capacity(sources_by_layer, layers[target], positions[target])
        picked = range(cap) if k == cap else rng.sample(range(cap), k)
        middle = f'{ids[target]}","weight":'
        kind_t = kinds[target]
        for source in sorted(nodes[j] for j in picked):
            pool = pools[kinds[source] + kind_t]
            buffer.append(prefix[source] + middle + pool[getrandbits(bits)])
        if len(buffer) >= _LINK_FLUSH:
            fh.write(("" if first else ",") + ",".join(buffer))
            first = False
            buffer.clear()
    if buffer:
        fh.write(("" if first else ",") + ",".join(buffer))
