"""A corpus on disk: the graph files of every family, ``manifest.csv``, and the planted ground truth."""

from __future__ import annotations

import csv
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from synth.families import FamilyInfo, FamilyPlan, plan_corpus
from synth.fileformat import CLT_FEATURE_TYPE, N_LAYERS, cantor_unpair, create_time
from synth.files import open_text, write_graph
from synth.graph import TwoHopInfo, build_graph
from synth.model import default_model
from synth.prompts import SUPPORTED_LANGUAGES
from synth.sampling import seeded
from synth.vocabulary import universe_for


@dataclass
class CorpusInfo:
    """What :func:`generate_corpus` wrote: files, counts and the planted ground truth."""

    out_dir: Path
    manifest: Path
    seed: int
    paths: list[Path] = field(default_factory=list)
    n_nodes: int = 0
    n_links: int = 0
    families: list[FamilyInfo] = field(default_factory=list)
    two_hops: list[TwoHopInfo] = field(default_factory=list)
    concepts: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _MemberResult:
    path: Path
    n_nodes: int
    n_links: int
    two_hop: TwoHopInfo | None
    features: Mapping[int, frozenset[int]]


def _generate_member(seed: int, plan: FamilyPlan, member_index: int, out_dir: Path, gz: bool) -> _MemberResult:
    member = plan.members[member_index]
    rng = seeded(seed, "graph", member.slug)
    labelled = rng.random() < 0.25
    graph = build_graph(rng, member.spec, universe_for(seed), default_model(), plan.core, plan.shared,
                        member.slug, labelled, labelled and rng.random() < 0.5, create_time(rng))
    path = out_dir / member.file_name
    with open_text(path, gz) as fh:
        write_graph(graph, fh)
    features: dict[int, set[int]] = defaultdict(set)
    for node in graph.nodes:
        if node["feature_type"] == CLT_FEATURE_TYPE:
            layer, index = cantor_unpair(node["feature"])
            features[layer].add(index)
    return _MemberResult(path, len(graph.nodes), len(graph.sources), graph.two_hop,
                         {l: frozenset(v) for l, v in features.items()})


def _generate_family(args: tuple[int, FamilyPlan, Path, bool]) -> list[_MemberResult]:
    seed, plan, out_dir, gz = args
    return [_generate_member(seed, plan, m, out_dir, gz) for m in range(len(plan.members))]


def generate_corpus(out_dir: Path, n_graphs: int, seed: int = 0,
                    languages: Sequence[str] = SUPPORTED_LANGUAGES, family_size: int = 4,
                    gzip: bool = False, workers: int = 1) -> CorpusInfo:
    """Write ``n_graphs`` synthetic graph files and ``manifest.csv`` into ``out_dir``.

    Files are ``<slug>.json`` (``.json.gz`` with ``gzip``). The manifest has columns
    ``path,family,language,tags`` (path relative to ``out_dir``; tags separated by ``;``).
    Families mix ``multilingual`` members (up to ``family_size`` of ``languages``), English
    ``variant`` members and ``single`` prompts. ``workers`` > 1 spreads families over processes;
    the bytes written do not depend on it. The result carries the planted ground truth.
    """
    languages = tuple(dict.fromkeys(languages))
    unknown = [lang for lang in languages if lang not in SUPPORTED_LANGUAGES]
    if unknown or not languages:
        raise ValueError(f"unsupported languages {unknown}; choose from {SUPPORTED_LANGUAGES}")
    if n_graphs < 0 or family_size < 1:
        raise ValueError("n_graphs must be >= 0 and family_size >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = plan_corpus(seed, n_graphs, languages, family_size, gzip)
    tasks = [(seed, plan, out_dir, gzip) for plan in plans]
    if workers > 1 and len(plans) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_generate_family, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
    else:
        results = [_generate_family(t) for t in tasks]
    info = CorpusInfo(out_dir=out_dir, manifest=out_dir / "manifest.csv", seed=seed)
    universe = universe_for(seed)
    for plan, members in zip(plans, results):
        info.families.append(_family_info(plan, members))
        for member, result in zip(plan.members, members):
            info.paths.append(result.path)
            info.n_nodes += result.n_nodes
            info.n_links += result.n_links
            if result.two_hop is not None:
                info.two_hops.append(result.two_hop)
            for name, _ in member.spec.concepts:
                info.concepts.setdefault(name, universe.concept(name))
    _write_manifest(info.manifest, plans)
    return info


def _family_info(plan: FamilyPlan, members: Sequence[_MemberResult]) -> FamilyInfo:
    planted: dict[int, frozenset[int]] = {}
    if plan.kind != "single":
        for layer in range(N_LAYERS):
            common = frozenset.intersection(*(m.features.get(layer, frozenset()) for m in members))
            core = frozenset(plan.core.get(layer, ()))
            if core:
                if not core <= common:  # planted in every member by construction
                    raise RuntimeError(f"{plan.name}: core of layer {layer} missing from a member")
                planted[layer] = core
    return FamilyInfo(name=plan.name, kind=plan.kind, core_key=plan.core_key,
                      slugs=tuple(m.slug for m in plan.members),
                      languages=tuple(m.spec.language for m in plan.members),
                      meanings=tuple(m.spec.meaning for m in plan.members),
                      profile=plan.profile, planted=planted)


def _write_manifest(path: Path, plans: Sequence[FamilyPlan]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "family", "language", "tags"])
        for plan in plans:
            for member in plan.members:
                writer.writerow([member.file_name, plan.name, member.spec.language, ";".join(member.tags)])


# --------------------------------------------------------------------------------------------
