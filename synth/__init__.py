"""Seeded generator of a realistic synthetic corpus of attribution-graph files.

The files imitate circuit-tracer / Neuronpedia graphs of gemma-2-2b traced with the 2.5M-feature
cross-layer transcoder (``schema_version`` 1): same top-level keys, node and link fields, id
formats, node and link order, bf16-rounded weights and activations, float32 influences. They say
that they are synthetic: the slug starts with ``synth-``, ``info.creator_name`` is
``circuitkb synthetic``, ``info.generator.name`` is ``circuitkb-synth`` and ``info.description``
says the features and weights are simulated.

What the corpus plants, for demos, tests and benchmarks:

- a shared vocabulary of features (:mod:`synth.vocabulary`): named *concepts* ("known entity",
  "say a capital", "opposite", an addition lookup "_6+_9") whose (layer, index) features recur in
  every prompt that involves them, token features bound to a token's text, and a Zipf-distributed
  background per layer whose head recurs in almost every graph;
- *families* (:mod:`synth.families`): one meaning rendered in several languages
  (``multilingual``), or English prompts with one word changed (``variant``). The members of a
  family share a planted core of features per layer whose size follows a per-layer profile
  (:data:`MULTILINGUAL_PROFILE`, :data:`VARIANT_PROFILE`): the fraction of a member's features at
  that layer taken from the core;
- two-hop prompts (Dallas -> Texas -> Austin, :mod:`synth.prompts`) with the path entity ->
  intermediate concept (not in the prompt) -> answer logit, plus the direct shortcut edge
  entity -> answer logit.

Counts and distributions are calibrated on the eight schema-1 (2.5M CLT) real graphs of
``shared/data/graphs`` (see :data:`REAL_STATS` and :func:`calibrate`, :mod:`synth.calibration`).
Everything is a function of the seed: the same seed gives byte-identical files, whatever the
number of worker processes.

Entry points: :func:`generate_corpus` (files + ``manifest.csv`` + ground truth,
:mod:`synth.corpus`), :func:`generate_graph` (one graph as a dict, :mod:`synth.graph`),
:func:`write_large_graph` (one huge graph, streamed, :mod:`synth.large`) and :func:`calibrate`
(the statistics of any set of graph files). Pure standard library.
"""

from synth.calibration import REAL_STATS, UNRELATED_JACCARD_REAL, calibrate
from synth.corpus import CorpusInfo, generate_corpus
from synth.families import MULTILINGUAL_PROFILE, VARIANT_PROFILE, FamilyInfo, bump_profile, expected_iou
from synth.fileformat import (
    CLT_FEATURE_TYPE,
    CREATOR_NAME,
    GENERATOR_NAME,
    LINK_KINDS,
    LOGIT_LAYER,
    MIN_FEATURE_INDEX,
    N_LAYERS,
    SLUG_PREFIX,
    cantor_pair,
    cantor_unpair,
)
from synth.graph import TwoHopInfo, generate_graph
from synth.large import write_large_graph
from synth.prompts import SUPPORTED_LANGUAGES, PromptSpec, sample_prompt
from synth.tokens import token_id, tokenize
from synth.vocabulary import concept_label

__all__ = [
    "CorpusInfo", "FamilyInfo", "TwoHopInfo", "PromptSpec",
    "generate_corpus", "generate_graph", "write_large_graph", "sample_prompt",
    "calibrate", "REAL_STATS", "UNRELATED_JACCARD_REAL",
    "MULTILINGUAL_PROFILE", "VARIANT_PROFILE", "bump_profile", "expected_iou",
    "tokenize", "token_id", "cantor_pair", "cantor_unpair", "concept_label", "SUPPORTED_LANGUAGES",
    "CLT_FEATURE_TYPE", "CREATOR_NAME", "GENERATOR_NAME", "LINK_KINDS", "LOGIT_LAYER", "MIN_FEATURE_INDEX",
    "N_LAYERS", "SLUG_PREFIX",
]
