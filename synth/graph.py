"""One synthetic graph: the features a prompt activates, its error, embedding and logit nodes, and
links drawn to match the calibrated statistics, with the prompt's planted edges among them."""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from synth.fileformat import (
    CLT_FEATURE_TYPE,
    EMBEDDING_TYPE,
    ERROR_TYPE,
    LOGIT_LAYER,
    N_LAYERS,
    SLUG_PREFIX,
    cantor_pair,
    create_time,
    graph_metadata,
    logit_node_dict,
    node_dict,
    slugify,
)
from synth.model import WEIGHT_POOL_BITS, Model, default_model
from synth.prompts import FALLBACK_NEXT, GENERIC_NEXT, PromptSpec, sample_prompt
from synth.sampling import bf16, f32
from synth.tokens import BOS, token_id, tokenize
from synth.vocabulary import CONCEPT_KINDS, TOKEN_SHARE, Universe, concept_label, universe_for

# Generator knobs, tuned (tests/test_synth.py) so that calibrate() on generated graphs matches
# REAL_STATS: median in-degree of a feature by layer band, and where its sources come from.
_IN_DEGREE_BANDS = ((0, 5.0), (1, 8.0), (2, 6.0), (12, 7.0), (16, 10.0), (19, 16.0))
_IN_DEGREE_SIGMA = 0.9
# target layer band -> P(source is an embedding), P(source is an error node); else a feature
_SOURCE_KIND_BANDS = ((1, 0.45, 0.08), (2, 0.45, 0.12), (14, 0.22, 0.28))
_E_SOURCE_POSITION = (0.24, 0.23, 0.15)  # bos, same position, previous position; else any
_PREVIOUS_POSITION = 0.1
_LOGIT_LAST_POSITION_WEIGHT = 3.0
_LOGIT_EMBEDDING_WEIGHT = 2.0
# Above this layer a concept fires on the last token even when it is anchored on a word.
_ANCHOR_MAX_LAYER = 12
_MULTI_POSITION_RATE = 0.25


def _band(bands: Sequence[tuple[Any, ...]], layer: int) -> tuple[Any, ...]:
    chosen = bands[0]
    for band in bands:
        if layer >= band[0]:
            chosen = band
    return chosen


@dataclass(frozen=True)
class TwoHopInfo:
    """Ground truth of a two-hop graph: entity -> intermediate -> answer logit, plus the shortcut.

    ``entity``, ``intermediate`` and ``answer`` are node ids of the file; the links
    entity->intermediate, intermediate->answer and entity->answer (the shortcut) are in it.
    """

    slug: str
    entity: str
    intermediate: str
    answer: str
    entity_concept: str
    intermediate_concept: str


@dataclass
class Graph:
    """One graph as built, before it is written: the links as parallel lists of node indices."""

    metadata: dict[str, Any]
    qparams: dict[str, Any]
    nodes: list[dict[str, Any]]
    sources: list[int]  # links as indices into nodes, in file order
    targets: list[int]
    weights: list[float]
    two_hop: TwoHopInfo | None

    def as_dict(self) -> dict[str, Any]:
        ids = [n["node_id"] for n in self.nodes]
        return {"metadata": self.metadata, "qParams": self.qparams, "nodes": self.nodes,
                "links": [{"source": ids[s], "target": ids[t], "weight": w}
                          for s, t, w in zip(self.sources, self.targets, self.weights)]}


def _anchor_positions(text: str, tokens: Sequence[str], concepts: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Token index (counting <bos> as 0) of the word each concept fires on; the last token if none."""
    ends, offset = [], 0
    for tok in tokens:
        offset += len(tok)
        ends.append(offset)
    last = len(tokens)
    found = {}
    for name, word in concepts:
        at = text.find(word) if word else -1
        if at < 0:
            found[name] = last
            continue
        end_char = at + len(word) - 1
        found[name] = 1 + bisect.bisect_right(ends, end_char)
    return found


class _Builder:
    """Builds one graph; split in steps to keep each one readable."""

    def __init__(self, rng: random.Random, spec: PromptSpec, universe: Universe, model: Model,
                 core: Mapping[int, Sequence[int]], shared: frozenset[str]) -> None:
        self.rng = rng
        self.spec = spec
        self.universe = universe
        self.model = model
        self.core = core
        self.shared = shared
        self.tokens = [BOS, *tokenize(spec.text)]
        self.last = len(self.tokens) - 1
        self.anchors = _anchor_positions(spec.text, self.tokens[1:], spec.concepts)
        self.chosen: dict[int, dict[int, list[int]]] = {l: {} for l in range(N_LAYERS)}
        self.count = [0] * N_LAYERS
        self.token_of: dict[tuple[int, int], str] = {}
        # Which of the prompt's concepts a feature belongs to (the first one named wins).
        self.owner: dict[tuple[int, int], str] = {}
        for name, _ in spec.concepts:
            for f in universe.concept(name):
                self.owner.setdefault(f, name)

    # -- features -----------------------------------------------------------------------------

    def _position(self, layer: int) -> int:
        if self.last <= 1 or self.rng.random() < self.model.last_fraction[layer]:
            return self.last
        return self.rng.randrange(1, self.last)

    def _concept_position(self, name: str, layer: int) -> int:
        role = CONCEPT_KINDS[name.partition(":")[0]][3]
        if role == "anchor" and layer <= _ANCHOR_MAX_LAYER:
            return self.anchors.get(name, self.last)
        if role == "any":
            return self._position(layer)
        return self.last

    def _add(self, layer: int, index: int, pos: int) -> bool:
        positions = self.chosen[layer].setdefault(index, [])
        if pos in positions:
            return False
        positions.append(pos)
        self.count[layer] += 1
        return True

    def select_features(self) -> None:
        rng, model = self.rng, self.model
        n_tokens = len(self.tokens)
        n_features = max(8 * n_tokens, round(n_tokens * rng.gauss(model.fpt_mean, model.fpt_sd)))
        target = Counter(rng.choices(range(N_LAYERS), cum_weights=model.layer_cum, k=n_features))
        required = {name for edge in self.spec.edges for name in edge[:2] if name != "@answer"}
        for name, _ in self.spec.concepts:
            if name in self.shared and name not in required:
                continue
            for layer, index in self.universe.concept(name):
                self._add(layer, index, self._concept_position(name, layer))
        for layer, indices in self.core.items():
            for index in indices:
                owner = self.owner.get((layer, index))
                self._add(layer, index, self._concept_position(owner, layer) if owner else self._position(layer))
        for layer in range(N_LAYERS):
            self._fill_layer(layer, target[layer])

    def _fill_layer(self, layer: int, wanted: int) -> None:
        rng = self.rng
        missing = wanted - self.count[layer]
        if missing <= 0:
            return
        pool, cum = self.universe.background(layer)
        token_share = TOKEN_SHARE.get(layer, 0.0)
        picks = rng.choices(pool, cum_weights=cum, k=3 * missing + 4)
        chosen = self.chosen[layer]
        for background_index in picks:
            if self.count[layer] >= wanted:
                break
            if token_share and rng.random() < token_share:
                pos = rng.randrange(1, self.last + 1)
                token = self.tokens[pos]
                index = rng.choice(self.universe.token_features(token)[layer])
                self.token_of.setdefault((layer, index), token)
            else:
                index, pos = background_index, self._position(layer)
            if index in chosen:
                continue
            self._add(layer, index, pos)
            if rng.random() < _MULTI_POSITION_RATE:
                self._add(layer, index, self._position(layer))

    # -- nodes ------------------------------------------------------------------------------

    def error_positions(self) -> list[tuple[int, int]]:
        rng, model = self.rng, self.model
        out = []
        for layer in range(N_LAYERS):
            for pos in range(1, self.last + 1):
                rate = model.err_last[layer] if pos == self.last else model.err_other[layer]
                if rng.random() < rate:
                    out.append((layer, pos))
        return out

    def logits(self) -> list[tuple[str, float]]:
        rng = self.rng
        n = 10 if rng.random() < 0.75 else 9
        candidates = [self.spec.answer, *self.spec.alternatives, *GENERIC_NEXT.get(self.spec.language, ()),
                      *FALLBACK_NEXT]
        tokens, ids = [], set()
        for tok in candidates:
            if tok and token_id(tok) not in ids:
                ids.add(token_id(tok))
                tokens.append(tok)
        tokens = tokens[:n]
        p0 = bf16(self.model.target_prob(rng.random()))
        mass = min(0.97, max(p0 + 0.02, rng.gauss(self.model.logit_mass, 0.08)))
        raw = [math.exp(-0.45 * i + rng.gauss(0.0, 0.4)) for i in range(len(tokens) - 1)]
        scale = (mass - p0) / (sum(raw) or 1.0)
        rest = sorted((min(p0, bf16(r * scale)) for r in raw), reverse=True)
        return list(zip(tokens, [p0, *rest]))


def _in_degree(rng: random.Random, layer: int) -> int:
    median = _band(_IN_DEGREE_BANDS, layer)[1]
    return max(1, round(math.exp(rng.gauss(math.log(median), _IN_DEGREE_SIGMA))))


class _Linker:
    """Draws the links of a graph, target by target, in the file's order (target, then source)."""

    def __init__(self, rng: random.Random, model: Model, kinds: Sequence[str], layers: Sequence[int],
                 positions: Sequence[int], e_base: int, l_base: int) -> None:
        self.rng, self.model = rng, model
        self.kinds, self.layers, self.positions = kinds, layers, positions
        self.e_base, self.l_base = e_base, l_base
        n_pos = max(positions) + 1
        self.at: dict[str, list[tuple[list[int], list[int]]]] = {
            k: [([], []) for _ in range(n_pos)] for k in "FR"}
        for node in range(e_base):
            layer_list, node_list = self.at[kinds[node]][positions[node]]
            layer_list.append(layers[node])
            node_list.append(node)
        self.out_abs = [0.0] * len(kinds)
        self.sources: list[int] = []
        self.targets: list[int] = []
        self.weights: list[float] = []

    def _weight(self, source: int, target: int) -> float:
        pool = self.model.weights[self.kinds[source] + self.kinds[target]]
        return pool[self.rng.getrandbits(WEIGHT_POOL_BITS)]

    def _below(self, n: int) -> int:
        # int(random() * n) rather than randrange(n): several times faster, same determinism.
        return int(self.rng.random() * n)

    def planted_weight(self, source: int, target: int, sign: int) -> float:
        pair = self.kinds[source] + self.kinds[target]
        return sign * bf16(self.model.abs_weight[pair](self.rng.uniform(0.9, 0.99)))

    def _embedding_source(self, pos: int) -> int:
        r = self.rng.random()
        bos, same, prev = _E_SOURCE_POSITION
        if r < bos:
            q = 0
        elif r < bos + same:
            q = pos
        elif r < bos + same + prev and pos > 0:
            q = pos - 1
        else:
            q = self._below(pos + 1)
        return self.e_base + q

    def _inner_source(self, kind: str, layer: int, pos: int) -> int | None:
        rng = self.rng
        r = rng.random()
        same = self.model.same_position[kind + "F"]
        if r < same or pos <= 1:
            q = pos
        elif r < same + _PREVIOUS_POSITION:
            q = pos - 1
        else:
            q = 1 + self._below(pos)
        layer_list, node_list = self.at[kind][q]
        n = bisect.bisect_left(layer_list, layer)
        if n == 0 and q != pos:
            layer_list, node_list = self.at[kind][pos]
            n = bisect.bisect_left(layer_list, layer)
        return node_list[self._below(n)] if n else None

    def _emit(self, target: int, chosen: dict[int, float]) -> None:
        out_abs = self.out_abs
        for source in sorted(chosen):
            w = chosen[source]
            self.sources.append(source)
            self.targets.append(target)
            self.weights.append(w)
            out_abs[source] += abs(w)

    def link_feature(self, target: int, planted: Mapping[int, float]) -> None:
        rng = self.rng
        layer, pos = self.layers[target], self.positions[target]
        chosen = dict(planted)
        k = _in_degree(rng, layer)
        if layer == 0:
            k = min(k, pos + 1)
        _, p_embedding, p_error = _band(_SOURCE_KIND_BANDS, layer)
        pools = self.model.weights
        pool_e, pool_f, pool_r = pools["EF"], pools["FF"], pools["RF"]
        getrandbits = rng.getrandbits
        for _ in range(3 * k):
            if len(chosen) >= k:
                break
            r = rng.random()
            if layer == 0 or r < p_embedding:
                source, pool = self._embedding_source(pos), pool_e
            elif r < p_embedding + p_error:
                source, pool = self._inner_source("R", layer, pos), pool_r
            else:
                source, pool = self._inner_source("F", layer, pos), pool_f
            if source is not None and source not in chosen:
                chosen[source] = pool[getrandbits(WEIGHT_POOL_BITS)]
        self._emit(target, chosen)

    def link_logits(self, probs: Sequence[float], planted: Mapping[int, Mapping[int, float]]) -> None:
        rng = self.rng
        n_src = self.l_base
        last = self.positions[self.l_base]
        inverse = [1.0 / ((_LOGIT_EMBEDDING_WEIGHT if self.kinds[i] == "E" else 1.0)
                          * (_LOGIT_LAST_POSITION_WEIGHT if self.positions[i] == last else 1.0))
                   for i in range(n_src)]
        top_ratio = rng.uniform(0.85, 0.97)
        gamma = rng.uniform(0.2, 0.6)
        for rank, prob in enumerate(probs):
            target = self.l_base + rank
            ratio = top_ratio * (prob / probs[0]) ** gamma * math.exp(rng.gauss(0.0, 0.2))
            k = max(1, min(n_src, round(ratio * n_src)))
            keys = [rng.random() ** inv for inv in inverse]
            chosen = {s: self._weight(s, target) for s in heapq.nlargest(k, range(n_src), key=keys.__getitem__)}
            chosen.update(planted.get(target, {}))
            self._emit(target, chosen)


def _valid_edge(layers: Sequence[int], positions: Sequence[int], source: int, target: int) -> bool:
    return layers[source] < layers[target] and positions[source] <= positions[target]


def build_graph(rng: random.Random, spec: PromptSpec, universe: Universe, model: Model,
                core: Mapping[int, Sequence[int]], shared: frozenset[str], slug: str,
                labelled: bool, with_supernodes: bool, create_time_ms: int) -> Graph:
    """One graph of ``spec``: features, error, embedding and logit nodes, links with the planted ones."""
    builder = _Builder(rng, spec, universe, model, core, shared)
    builder.select_features()
    tokens, last = builder.tokens, builder.last
    features = sorted((layer, pos, index) for layer in range(N_LAYERS)
                      for index, ps in builder.chosen[layer].items() for pos in ps)
    errors = builder.error_positions()
    logits = builder.logits()
    kinds = ["F"] * len(features) + ["R"] * len(errors) + ["E"] * len(tokens) + ["L"] * len(logits)
    layers = [f[0] for f in features] + [e[0] for e in errors] + [-1] * len(tokens) + [N_LAYERS + 1] * len(logits)
    positions = ([f[1] for f in features] + [e[1] for e in errors] + list(range(len(tokens)))
                 + [last] * len(logits))
    e_base = len(features) + len(errors)
    l_base = e_base + len(tokens)
    ids = ([f"{l}_{i}_{p}" for l, p, i in features] + [f"0_{l}_{p}" for l, p in errors]
           + [f"E_{token_id(t)}_{p}" for p, t in enumerate(tokens)]
           + [f"{LOGIT_LAYER}_{token_id(t)}_{last}" for t, _ in logits])

    linker = _Linker(rng, model, kinds, layers, positions, e_base, l_base)
    concept_nodes = _concept_nodes(spec, universe, features)
    planted, two_hop_nodes = _plant_edges(spec, linker, layers, positions, concept_nodes, l_base)
    for target in range(len(features)):
        linker.link_feature(target, planted.get(target, {}))
    linker.link_logits([p for _, p in logits], planted)

    nodes = _node_dicts(builder, model, features, errors, logits, ids, linker.out_abs, labelled)
    two_hop = None
    if two_hop_nodes is not None:
        e, m = two_hop_nodes
        two_hop = TwoHopInfo(slug=slug, entity=ids[e], intermediate=ids[m], answer=ids[l_base],
                             entity_concept=spec.two_hop[0], intermediate_concept=spec.two_hop[1])
    qparams = qparams_dict(concept_nodes, ids, l_base, with_supernodes)
    metadata = graph_metadata(slug, tokens, create_time_ms)
    return Graph(metadata=metadata, qparams=qparams, nodes=nodes,
                 sources=linker.sources, targets=linker.targets, weights=linker.weights, two_hop=two_hop)


def _concept_nodes(spec: PromptSpec, universe: Universe,
                   features: Sequence[tuple[int, int, int]]) -> dict[str, list[int]]:
    """Concept name -> indices of its feature nodes in this graph, lowest (layer, pos) first."""
    node_of: dict[tuple[int, int], list[int]] = defaultdict(list)
    for node, (layer, pos, index) in enumerate(features):
        node_of[(layer, index)].append(node)
    found = {}
    for name, _ in spec.concepts:
        nodes = [n for f in universe.concept(name) for n in node_of.get(f, ())]
        if nodes:
            found[name] = sorted(nodes, key=lambda n: (features[n][0], features[n][1]))
    return found


def _plant_edges(spec: PromptSpec, linker: _Linker, layers: Sequence[int], positions: Sequence[int],
                 concept_nodes: Mapping[str, list[int]], answer: int
                 ) -> tuple[dict[int, dict[int, float]], tuple[int, int] | None]:
    """Links named by the prompt's edges, between each concept's representative nodes."""
    planted: dict[int, dict[int, float]] = defaultdict(dict)
    for source_name, target_name, sign in spec.edges:
        sources = concept_nodes.get(source_name)
        targets = [answer] if target_name == "@answer" else concept_nodes.get(target_name)
        if not sources or not targets:
            continue
        # Prefer the representatives (lowest layer of each concept), else any valid pair.
        pair = (sources[0], targets[0])
        if not _valid_edge(layers, positions, *pair):
            pair = next(((s, t) for s in sources for t in reversed(targets)
                         if _valid_edge(layers, positions, s, t)), None)
        if pair is not None:
            planted[pair[1]][pair[0]] = linker.planted_weight(pair[0], pair[1], sign)
    two_hop = None
    if spec.two_hop is not None:
        entity, middle = (concept_nodes.get(name) for name in spec.two_hop)
        if entity and middle:
            e, m = entity[0], middle[0]
            if m in planted and e in planted[m] and e in planted.get(answer, {}) and m in planted.get(answer, {}):
                two_hop = (e, m)
    return planted, two_hop


def _node_dicts(builder: _Builder, model: Model, features: Sequence[tuple[int, int, int]],
                errors: Sequence[tuple[int, int]], logits: Sequence[tuple[str, float]], ids: Sequence[str],
                out_abs: Sequence[float], labelled: bool) -> list[dict[str, Any]]:
    rng, tokens = builder.rng, builder.tokens
    n_inner = len(features) + len(errors)
    # Influence is pruning's cumulative-influence rank: the node with the largest outgoing
    # weights gets the smallest value. Features and errors are ranked together.
    inner_rank = _ranks(out_abs[:n_inner])
    e_rank = _ranks(out_abs[n_inner:n_inner + len(tokens)])

    def influence(kind: str, rank: int, n: int) -> float:
        return f32(model.influence[kind]((rank + 0.5) / n))

    nodes = []
    for node, (layer, pos, index) in enumerate(features):
        clerp = _feature_label(builder, layer, index) if labelled else ""
        nodes.append(node_dict(ids[node], cantor_pair(layer, index), str(layer), pos, CLT_FEATURE_TYPE,
                               f"{layer}_{index}-0", clerp, influence("feature", inner_rank[node], n_inner),
                               bf16(model.activation(rng.random()))))
    for node, (layer, pos) in enumerate(errors, start=len(features)):
        clerp = f'Err: mlp " {tokens[pos]}"' if labelled else ""
        nodes.append(node_dict(ids[node], -1, str(layer), pos, ERROR_TYPE, f"{layer}_{pos}-0", clerp,
                               influence("error", inner_rank[node], n_inner), None))
    for pos, tok in enumerate(tokens):
        clerp = f'Emb: " {tok}"' if labelled else ""
        nodes.append(node_dict(ids[n_inner + pos], pos, "E", pos, EMBEDDING_TYPE, f"E_{token_id(tok)}-{pos}", clerp,
                               influence("embedding", e_rank[pos], len(tokens)), None))
    nodes.extend(logit_node_dict(tok, prob, len(tokens) - 1, rank == 0) for rank, (tok, prob) in enumerate(logits))
    return nodes


def _ranks(scores: Sequence[float]) -> list[int]:
    """The rank of each score, 0 for the largest (ties by position)."""
    rank = [0] * len(scores)
    for r, i in enumerate(sorted(range(len(scores)), key=lambda i: -scores[i])):
        rank[i] = r
    return rank



def _feature_label(builder: _Builder, layer: int, index: int) -> str:
    owner = builder.owner.get((layer, index))
    if owner is not None:
        return concept_label(owner)
    token = builder.token_of.get((layer, index))
    return token if token is not None else Universe.generic_label(layer, index)



def qparams_dict(concept_nodes: Mapping[str, list[int]], ids: Sequence[str], answer: int,
                 with_supernodes: bool) -> dict[str, Any]:
    """A saved view; with supernodes, the prompt's concepts grouped as a labeller would."""
    supernodes: list[list[str]] = []
    if with_supernodes:
        for name, nodes in concept_nodes.items():
            if len(supernodes) == 6:
                break
            supernodes.append([concept_label(name), *(ids[n] for n in nodes[:4])])
    pinned = [ids[answer], *(i for sn in supernodes for i in sn[1:])] if supernodes else []
    return {"pinnedIds": pinned, "supernodes": supernodes, "linkType": "both", "clickedId": "", "sg_pos": ""}



def generate_graph(rng: random.Random, prompt: PromptSpec | None = None, *, seed: int = 0,
                   core: Mapping[int, Sequence[int]] | None = None, shared: Iterable[str] = (),
                   slug: str | None = None, labelled: bool | None = None) -> dict[str, Any]:
    """One synthetic graph as a dict in the file format (``metadata``, ``qParams``, ``nodes``, ``links``).

    ``rng`` drives everything specific to this graph; ``seed`` names the feature vocabulary
    (concepts, token features, background) shared with the other graphs of a corpus.
    ``prompt`` defaults to a random English prompt of the catalogue. ``core`` maps a layer to
    feature indices that must be active (a family's planted core); concepts named in ``shared``
    are only present through ``core`` (unless a planted edge needs them). ``labelled`` gives
    features, errors and embeddings clerps (default: drawn, one graph in four).
    """
    spec = prompt if prompt is not None else sample_prompt(rng)
    if labelled is None:
        labelled = rng.random() < 0.25
    slug = slug or f"{SLUG_PREFIX}{slugify(spec.meaning)}-{rng.randrange(10**6):06d}"
    graph = build_graph(rng, spec, universe_for(seed), default_model(), core or {}, frozenset(shared), slug,
                         labelled, labelled and rng.random() < 0.5, create_time(rng))
    return graph.as_dict()
