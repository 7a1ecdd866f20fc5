"""Families of prompts and the features they share by design.

A family is one meaning in several languages (``multilingual``), English prompts with one word
changed (``variant``) or a lone prompt (``single``). The members of a family share a planted core
of features per layer, sized by a per-layer profile; :func:`plan_corpus` lays out a corpus as
families before any graph is drawn.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from synth.calibration import REAL_STATS
from synth.fileformat import D_TRANSCODER, MIN_FEATURE_INDEX, N_LAYERS, SLUG_PREFIX, slugify
from synth.prompts import MEANING_TYPES, MULTILINGUAL_TYPES, TYPE_WEIGHTS, MeaningType, PromptSpec
from synth.sampling import seeded
from synth.tokens import tokenize
from synth.vocabulary import Universe, universe_for


def bump_profile(low: float, high: float, centre: float = 12.5, width: float = 6.0) -> tuple[float, ...]:
    """A per-layer shared fraction that is ``high`` in the middle layers and ``low`` at both ends."""
    return tuple(
        round(low + (high - low) * math.exp(-(((layer - centre) / width) ** 2)), 4)
        for layer in range(N_LAYERS))


# The fraction of a member's active features at each layer that come from the family's planted
# core. Two members that each draw a fraction s from the same core have an expected IoU of
# s / (2 - s) at that layer (plus the chance overlap of unrelated prompts).
# Multilingual: language-specific early and late layers, a shared middle (Biology paper, fig. of
# shared features across languages).
MULTILINGUAL_PROFILE: tuple[float, ...] = bump_profile(0.08, 0.7)
# English variants (one word changed): the template's common core is shared at every layer, less
# in the late layers where the answer differs.
VARIANT_PROFILE: tuple[float, ...] = tuple(
    round(0.6 if layer < 16 else 0.6 - 0.03 * (layer - 15), 4) for layer in range(N_LAYERS))


def expected_iou(profile: Sequence[float]) -> list[float]:
    """The IoU per layer that two members of a family built with ``profile`` share by design."""
    return [s / (2.0 - s) if s < 2 else 1.0 for s in profile]



@dataclass(frozen=True)
class FamilyInfo:
    """A family of prompts and the features planted in every member (ground truth for tests).

    ``kind`` is ``multilingual`` (one meaning, several languages), ``variant`` (English prompts
    with one word changed) or ``single``. ``profile`` is the per-layer shared fraction the core
    was sized with (empty for ``single``); ``planted`` maps a layer to the feature indices active
    in every member by construction.
    """

    name: str
    kind: str
    core_key: str
    slugs: tuple[str, ...]
    languages: tuple[str, ...]
    meanings: tuple[str, ...]
    profile: tuple[float, ...]
    planted: Mapping[int, frozenset[int]]


@dataclass(frozen=True)
class Member:
    """One prompt of a family and the file it is written to."""

    spec: PromptSpec
    slug: str
    file_name: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class FamilyPlan:
    """A family before its graphs are drawn: its members, and the core of features they share."""

    index: int
    name: str
    kind: str
    core_key: str
    members: tuple[Member, ...]
    profile: tuple[float, ...]
    core: Mapping[int, tuple[int, ...]]
    shared: frozenset[str]


_FAMILY_KIND_WEIGHTS = {"multilingual": 0.5, "variant": 0.35, "single": 0.15}


def plan_corpus(seed: int, n_graphs: int, languages: Sequence[str], family_size: int, gz: bool) -> list[FamilyPlan]:
    """The families of a corpus of ``n_graphs`` prompts, drawn from the seed before any graph is."""
    rng = seeded(seed, "plan")
    universe = universe_for(seed)
    kinds = [k for k in _FAMILY_KIND_WEIGHTS
             if not (k == "multilingual" and len(languages) < 2) and not (k == "variant" and "en" not in languages)]
    plans: list[FamilyPlan] = []
    made = 0
    while made < n_graphs:
        kind = rng.choices(kinds, weights=[_FAMILY_KIND_WEIGHTS[k] for k in kinds])[0]
        room = n_graphs - made
        if kind == "multilingual":
            specs = _multilingual_specs(rng, languages, min(family_size, len(languages), room))
            key = specs[0].meaning
        elif kind == "variant":
            specs, key = _variant_specs(rng, min(family_size, room))
        else:
            specs = [_single_spec(rng, languages)]
            key = specs[0].meaning
        if len(specs) == 1:
            kind, key = "single", specs[0].meaning
        plans.append(_family_plan(universe, len(plans), kind, key, specs, gz))
        made += len(specs)
    return plans


def _weighted_type(rng: random.Random, types: Sequence[MeaningType]) -> MeaningType:
    return rng.choices(types, weights=[TYPE_WEIGHTS[t.name] for t in types])[0]


def _multilingual_specs(rng: random.Random, languages: Sequence[str], size: int) -> list[PromptSpec]:
    kind = _weighted_type(rng, MULTILINGUAL_TYPES)
    instance = rng.randrange(kind.size)
    others = [lang for lang in languages if lang != "en"]
    chosen = (["en"] + rng.sample(others, size - 1)) if "en" in languages else rng.sample(list(languages), size)
    return [kind.build(instance, lang) for lang in chosen]


def _variant_specs(rng: random.Random, size: int) -> tuple[list[PromptSpec], str]:
    kind = _weighted_type(rng, [t for t in MEANING_TYPES if "en" in t.languages])
    instances = rng.sample(range(kind.size), min(size, kind.size))
    specs = [kind.build(i, "en") for i in instances]
    return specs, f"template:{kind.name}"


def _single_spec(rng: random.Random, languages: Sequence[str]) -> PromptSpec:
    language = rng.choice(list(languages))
    types = [t for t in MEANING_TYPES if language in t.languages]
    kind = _weighted_type(rng, types)
    return kind.build(rng.randrange(kind.size), language)


def _family_plan(universe: Universe, index: int, kind: str, key: str, specs: Sequence[PromptSpec],
                 gz: bool) -> FamilyPlan:
    name = f"fam{index:05d}-{kind}-{slugify(key)}"
    members = []
    suffix = ".json.gz" if gz else ".json"
    for m, spec in enumerate(specs):
        slug = f"{SLUG_PREFIX}{index:05d}-{m}-{spec.language}-{slugify(spec.meaning)}"
        tags = (kind, *spec.tags, "synthetic")
        members.append(Member(spec, slug, slug + suffix, tags))
    if kind == "single":
        return FamilyPlan(index, name, kind, key, tuple(members), (), {}, frozenset())
    profile = MULTILINGUAL_PROFILE if kind == "multilingual" else VARIANT_PROFILE
    shared_names = [n for n, _ in specs[0].concepts if all(n in {c for c, _ in s.concepts} for s in specs)]
    mean_tokens = sum(1 + len(tokenize(s.text)) for s in specs) / len(specs)
    core = _family_core(universe, key, shared_names, profile, mean_tokens)
    return FamilyPlan(index, name, kind, key, tuple(members), profile, core, frozenset(shared_names))


def _family_core(universe: Universe, key: str, shared: Sequence[str], profile: Sequence[float],
                 mean_tokens: float) -> dict[int, tuple[int, ...]]:
    """Per layer, the first round(profile[l] * expected features at l) of the family's ordered list:
    the shared concepts' features (round robin), then features specific to the family's key."""
    fractions = REAL_STATS["feature_layer_fraction"]
    per_token = REAL_STATS["features_per_token"]["mean"]
    by_layer: dict[int, list[list[int]]] = defaultdict(list)
    for name in shared:
        per_layer: dict[int, list[int]] = defaultdict(list)
        for layer, index in universe.concept(name):
            per_layer[layer].append(index)
        for layer, indices in per_layer.items():
            by_layer[layer].append(indices)
    core: dict[int, tuple[int, ...]] = {}
    for layer in range(N_LAYERS):
        size = round(profile[layer] * mean_tokens * per_token * fractions[layer])
        if size <= 0:
            continue
        ordered = list(dict.fromkeys(i for group in _round_robin(by_layer.get(layer, [])) for i in group))
        rng = seeded(universe.seed, "core", key, layer)
        while len(ordered) < size:
            index = rng.randrange(MIN_FEATURE_INDEX, D_TRANSCODER)
            if index not in ordered:
                ordered.append(index)
        core[layer] = tuple(ordered[:size])
    return core


def _round_robin(groups: Sequence[Sequence[int]]) -> Iterator[tuple[int, ...]]:
    for depth in range(max((len(g) for g in groups), default=0)):
        yield tuple(g[depth] for g in groups if depth < len(g))
