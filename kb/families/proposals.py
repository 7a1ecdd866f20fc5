"""Families of prompts found in the graphs themselves, for a person to accept (see :mod:`kb.families.membership`).

Two graphs are *linked* when they can be compared (the same model and transcoder set: features of
different transcoder sets never match) and both kinds of evidence agree:

- their prompts mean the same thing: the cosine of the multilingual sentence model
  (:class:`kb.search.embedder.MultilingualEmbedder`) is at least :data:`PROMPT_SIMILARITY`, in
  whichever languages they are written;
- their circuits overlap: the Jaccard index of their feature sets is at least
  :data:`SHARED_FEATURES`.

A proposal is a group of graphs every two of which are linked (complete linkage: a chain of
look-alikes is not one family), grown from the most similar prompts down. Each comes with its
evidence (the prompt similarity and feature overlap of every pair, the features in every member,
the outputs they predict, their languages), a suggested name, and the families its graphs
already belong to. Graphs that ask the same thing but cannot be compared are listed apart.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace
from typing import Any, Protocol, Sequence

import numpy as np

from ingest.language import strip_special
from kb import sqlqueries
from kb.analysis.compare import logit_token
from kb.analysis.features import chosen_graphs
from kb.core import Core
from kb.errors import NotFoundError
from kb.search.embedder import MULTILINGUAL_MODEL, Embedder, shared_embedder
from kb.selection import GraphInfo, Selection

# Cosine of the multilingual model (use-multilingual-v3) between two prompts, special tokens
# removed. On the nine real graphs: the same question in English and French 0.586; one template
# with another city 0.544-0.640; one question reworded 0.881; two different questions at most
# 0.474 (the opposite of "small" against the analogy big:small::tall:?). Between the two.
PROMPT_SIMILARITY = 0.52
# Jaccard index of the two graphs' feature sets. On the real graphs of one transcoder set: the
# English and French "opposite" pair 0.220, the two-hop capital prompts 0.406-0.566, different
# questions 0.036-0.115. Prompts alone would join the antonym and the analogy prompt (0.474 is
# close); features alone would join prompts that share generic features; both must hold.
SHARED_FEATURES = 0.15
# Outputs listed per graph in the evidence (its most probable logits).
OUTPUTS_SHOWN = 3
# Pairs of graphs kept apart (same question, different transcoder sets) listed at most.
APART_SHOWN = 50
# Prompts compared with all others at once (a block of the similarity matrix in memory: 256 rows
# of 50,000 graphs is 51 MB).
_BLOCK = 256
# Unit vectors of the prompts embedded in this process, by model name (which keys an embedder's
# vectors, as on disk) and text: the prompts of a knowledge base do not change, and the app
# proposes again after every family accepted. At most this many (40 MB of 512-d vectors).
_EMBEDDED_KEPT = 20_000
_embedded: dict[tuple[str, str], np.ndarray] = {}

NEW, ACCEPTED, PARTIAL = "new", "accepted", "partial"

_WORD = re.compile(r"\w+", re.UNICODE)
# words that say nothing of what a prompt asks, left out of suggested names
_STOPWORDS = frozenset(
    "a an the of is are was were be to in on at and or for with as by from that this it its what which who "
    "le la les un une des de du est et en au aux que qui "
    "der die das ein eine ist und zu von mit den dem des "
    "el los las una es y del con por".split()
)
_NAME_WORDS = 3
_NAME_CHARS = 40  # a language written without spaces makes one long "word" of a prompt


@dataclass(frozen=True)
class PairEvidence:
    """Why two graphs belong together: prompt cosine, feature Jaccard, features in both."""

    slug_a: str
    slug_b: str
    prompt_similarity: float
    shared_features: float
    common_features: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug_a": self.slug_a,
            "slug_b": self.slug_b,
            "prompt_similarity": round(self.prompt_similarity, 4),
            "shared_features": round(self.shared_features, 4),
            "common_features": self.common_features,
        }


@dataclass(frozen=True)
class FamilyProposal:
    """A group of graphs that ask the same thing, proposed as one family.

    ``name`` is a suggestion (the members' family when they already share one); ``current``
    maps each member to the family it has now (None for none); ``status`` is ``new`` (no member
    has a family), ``accepted`` (all are in one family) or ``partial`` (some are). ``outputs``
    are each member's most probable output tokens, ``shared_outputs`` those every member
    predicts; ``common_features`` counts the features present in every member.
    """

    name: str
    slugs: tuple[str, ...]
    prompts: dict[str, str]
    language_of: dict[str, str | None]
    languages: tuple[str, ...]
    model: str | None
    transcoder_set: str
    prompt_similarity: float  # the least over the pairs
    shared_features: float  # the least over the pairs
    common_features: int
    outputs: dict[str, tuple[str, ...]]
    shared_outputs: tuple[str, ...]
    pairs: tuple[PairEvidence, ...]
    current: dict[str, str | None]
    status: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slugs": list(self.slugs),
            "prompts": dict(self.prompts),
            "language_of": dict(self.language_of),
            "languages": list(self.languages),
            "model": self.model,
            "transcoder_set": self.transcoder_set,
            "prompt_similarity": round(self.prompt_similarity, 4),
            "shared_features": round(self.shared_features, 4),
            "common_features": self.common_features,
            "outputs": {slug: list(tokens) for slug, tokens in self.outputs.items()},
            "shared_outputs": list(self.shared_outputs),
            "pairs": [p.as_dict() for p in self.pairs],
            "current": dict(self.current),
            "status": self.status,
        }


@dataclass(frozen=True)
class KeptApart:
    """Two graphs whose prompts mean the same but whose features cannot be compared."""

    slug_a: str
    slug_b: str
    prompt_similarity: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"slug_a": self.slug_a, "slug_b": self.slug_b, "prompt_similarity": round(self.prompt_similarity, 4), "reason": self.reason}


@dataclass(frozen=True)
class FamilyProposals:
    """The proposals (multilingual ones first, then by prompt similarity), the graphs kept apart,
    and the thresholds used."""

    proposals: tuple[FamilyProposal, ...]
    kept_apart: tuple[KeptApart, ...]
    n_graphs: int
    thresholds: dict[str, float]

    def named(self, name: str) -> FamilyProposal:
        """The proposal whose suggested name is ``name``."""
        for proposal in self.proposals:
            if proposal.name == name:
                return proposal
        known = ", ".join(p.name for p in self.proposals) or "none"
        raise NotFoundError(f"no proposed family called {name!r} (proposed: {known}); `circuitkb families propose` lists them")

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_graphs": self.n_graphs,
            "thresholds": dict(self.thresholds),
            "proposals": [p.as_dict() for p in self.proposals],
            "kept_apart": [k.as_dict() for k in self.kept_apart],
        }


def propose_families(
    kb: Core,
    selection: Selection | None = None,
    *,
    embedder: Embedder | None = None,
    prompt_similarity: float = PROMPT_SIMILARITY,
    shared_features: float = SHARED_FEATURES,
) -> FamilyProposals:
    """Families proposed among the chosen graphs (all visible graphs by default).

    ``embedder`` embeds the prompts (default: the multilingual model, on which the thresholds
    were tuned).
    """
    graphs = chosen_graphs(kb, selection)
    vectors = _prompt_vectors(graphs, embedder)
    similar = _similar_pairs(vectors, prompt_similarity)
    candidates: list[tuple[int, int, float]] = []
    apart: list[KeptApart] = []
    for i, j, sim in similar:
        a, b = graphs[i], graphs[j]
        if comparable_key(a) == comparable_key(b):
            candidates.append((i, j, sim))
        else:
            apart.append(KeptApart(a.slug, b.slug, sim, _apart_reason(a, b)))
    involved = sorted({k for i, j, _ in candidates for k in (i, j)})
    features = kb.store.graph_features([graphs[k].gid for k in involved]) if involved else {}
    evidence: dict[tuple[int, int], PairEvidence] = {}
    for i, j, sim in candidates:
        fa, fb = features[graphs[i].gid], features[graphs[j].gid]
        common = int(np.intersect1d(fa, fb, assume_unique=True).size)
        union = len(fa) + len(fb) - common
        jaccard = common / union if union else 0.0
        if jaccard >= shared_features:
            evidence[(i, j)] = PairEvidence(graphs[i].slug, graphs[j].slug, sim, jaccard, common)
    groups = _complete_linkage(evidence)
    taken = _family_names(kb)
    proposals = [_proposal(kb, [graphs[k] for k in group], evidence, group, features) for group in groups]
    proposals = _named(proposals, taken)
    proposals.sort(key=lambda p: (-len(p.languages), -p.prompt_similarity, p.slugs))
    apart.sort(key=lambda k: (-k.prompt_similarity, k.slug_a, k.slug_b))
    return FamilyProposals(tuple(proposals), tuple(apart[:APART_SHOWN]), len(graphs), {"prompt_similarity": prompt_similarity, "shared_features": shared_features})


class Comparable(Protocol):
    """What says whether two graphs can be compared (a GraphInfo, a registry row)."""

    model: str | None
    transcoder_set: str


def comparable_key(graph: Comparable) -> tuple[str, str]:
    """Graphs can be in one family only when this is equal: their model and transcoder set."""
    return (graph.model or "", graph.transcoder_set)


def _prompt_vectors(graphs: Sequence[GraphInfo], embedder: Embedder | None) -> np.ndarray:
    """Unit vectors of the prompts without special tokens such as ``<bos>``; zero for a prompt
    with nothing else (it is like no other). Each distinct prompt is embedded once in a process
    (:data:`_embedded`)."""
    if embedder is None:
        embedder = shared_embedder(MULTILINGUAL_MODEL)
    texts = [strip_special(g.prompt) for g in graphs]
    distinct = [text for text in dict.fromkeys(texts) if text]
    found = {text: v for text in distinct if (v := _embedded.get((embedder.name, text))) is not None}
    new = [text for text in distinct if text not in found]
    if new:
        vectors = np.asarray(embedder.embed(new), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        found.update(zip(new, vectors / np.where(norms > 0, norms, 1.0)))
        if len(_embedded) + len(new) > _EMBEDDED_KEPT:
            _embedded.clear()
        _embedded.update(((embedder.name, text), found[text]) for text in new)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for i, text in enumerate(texts):
        if text:
            out[i] = found[text]
    return out


def _similar_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, cosine) of every pair i < j whose cosine is at least ``threshold``, block by block
    (each block of rows against the prompts from its first row on: a pair is computed once)."""
    out: list[tuple[int, int, float]] = []
    n = len(vectors)
    for start in range(0, n, _BLOCK):
        block = vectors[start : start + _BLOCK] @ vectors[start:].T
        rows, cols = np.nonzero(block >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if r < c:
                out.append((start + r, start + c, float(block[r, c])))
    return out


def _apart_reason(a: GraphInfo, b: GraphInfo) -> str:
    if (a.model or "") != (b.model or ""):
        return f"different models: {a.model or '?'} and {b.model or '?'}"
    return f"different transcoder sets: {a.transcoder_set} and {b.transcoder_set}"


def _complete_linkage(evidence: dict[tuple[int, int], PairEvidence]) -> list[list[int]]:
    """Groups of two or more in which every pair is linked, merged from the most similar prompts
    down (ties by position, so the same graphs always give the same groups)."""
    cluster: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for i, j in sorted(evidence, key=lambda p: (-evidence[p].prompt_similarity, p)):
        for k in (i, j):
            if k not in cluster:
                cluster[k] = k
                members[k] = [k]
        ci, cj = cluster[i], cluster[j]
        if ci == cj:
            continue
        if all((min(a, b), max(a, b)) in evidence for a in members[ci] for b in members[cj]):
            keep, gone = min(ci, cj), max(ci, cj)
            for k in members[gone]:
                cluster[k] = keep
            members[keep] = sorted(members[keep] + members.pop(gone))
    return sorted(group for group in members.values() if len(group) >= 2)


def _proposal(
    kb: Core, graphs: list[GraphInfo], evidence: dict[tuple[int, int], PairEvidence], group: list[int], features: dict[int, np.ndarray]
) -> FamilyProposal:
    pairs = tuple(evidence[(a, b)] for a, b in itertools.combinations(group, 2))
    common = features[graphs[0].gid]
    for g in graphs[1:]:
        common = np.intersect1d(common, features[g.gid], assume_unique=True)
    logits = {g.slug: _logits(kb, g.gid) for g in graphs}
    outputs = {slug: tuple(token for _, token in found[:OUTPUTS_SHOWN]) for slug, found in logits.items()}
    shared = set.intersection(*({token.strip().casefold() for _, token in found if token.strip()} for found in logits.values()))
    current = {g.slug: g.family for g in graphs}
    families = {f for f in current.values() if f}
    if not families:
        status = NEW
    elif len(families) == 1 and all(current.values()):
        status = ACCEPTED
    else:
        status = PARTIAL
    return FamilyProposal(
        name=next(iter(families)) if len(families) == 1 else suggest_name([(g.language, g.prompt) for g in graphs]) or graphs[0].slug,
        slugs=tuple(g.slug for g in graphs),
        prompts={g.slug: g.prompt for g in graphs},
        language_of={g.slug: g.language for g in graphs},
        languages=tuple(sorted({g.language for g in graphs if g.language})),
        model=graphs[0].model,
        transcoder_set=graphs[0].transcoder_set,
        prompt_similarity=min(p.prompt_similarity for p in pairs),
        shared_features=min(p.shared_features for p in pairs),
        common_features=int(common.size),
        outputs=outputs,
        shared_outputs=tuple(sorted(shared)),
        pairs=pairs,
        current=current,
        status=status,
    )


def _logits(kb: Core, gid: int) -> list[tuple[float, str]]:
    """(probability, token) of a graph's output logits, most probable first."""
    rows = kb.store.node_rows(gid, kb.store.logit_nodes(gid))
    found = [(float(r["token_prob"] or 0.0), logit_token(r["clerp"], r["node_id"])) for r in rows]
    return sorted(found, key=lambda item: (-item[0], item[1]))


def suggest_name(prompts: Sequence[tuple[str | None, str]]) -> str:
    """A short name from the words every prompt of one language shares (English when there is
    one), function words left out: ``opposite-small`` for 'The opposite of "small" is "'."""
    languages = [lang for lang, _ in prompts]
    language = "en" if "en" in languages else languages[0]
    texts = [strip_special(text) for lang, text in prompts if lang == language]
    words = [[w.casefold() for w in _WORD.findall(text)] for text in texts]
    common = set(words[0]).intersection(*words[1:])
    chosen = list(dict.fromkeys(w for w in words[0] if w in common and w not in _STOPWORDS and not w.isdigit()))
    return "-".join(chosen[:_NAME_WORDS])[:_NAME_CHARS].strip("-")


def _named(proposals: list[FamilyProposal], taken: set[str]) -> list[FamilyProposal]:
    """Names made unique: a new group's suggestion that another family or proposal has gets a
    number; a group already in one family keeps that family's name unless a proposal before it
    has it."""
    out = []
    used: set[str] = set()
    for p in sorted(proposals, key=lambda p: p.slugs):
        avoid = used if p.status != NEW else used | taken
        name, n = p.name, 1
        while name in avoid:
            n += 1
            name = f"{p.name}-{n}"
        used.add(name)
        out.append(p if name == p.name else replace(p, name=name))
    return out


def _family_names(kb: Core) -> set[str]:
    """Every family name in use among the visible graphs."""
    with kb.engine.connect() as conn:
        return sqlqueries.family_names(conn)
