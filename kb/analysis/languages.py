"""The cross-language measure of the "Biology" paper, for families of prompts in several languages.

For two graphs a and b and a layer, S is the set of features present at that layer anywhere in
the prompt, and the overlap is |S_a ∩ S_b| / |S_a ∪ S_b| (NaN when both are empty). For each
pair of languages of a family, the curve is the mean over the family's graph pairs in those
languages; the baseline is the same mean over unrelated prompts of the same language pair:
pairs of graphs in those two languages from other families (and not from one family).

*Active* versus *kept*: a graph file written by circuit-tracer or Neuronpedia is pruned, so it
holds only the nodes pruning kept; a feature that was active on the prompt but pruned away is
not in the file. On pruned graphs "present" therefore means "kept after pruning", and that is
all the overlap can see. A graph counts as unpruned when its metadata says so (a node
threshold of 1 or more, in ``pruning_settings.node_threshold``, ``node_threshold`` or
``nodeThreshold``); on such graphs "present" means "active anywhere in the context". The
feature classification keeps the two apart: its ``basis`` column is ``kept`` for what was
counted on pruned graphs and ``active`` for unpruned ones, and a family with both kinds gets
both.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import pandas as pd

from kb import sqlqueries
from kb.analysis.features import FEATURE_COLUMNS, chosen_graphs, feature_keys
from kb.core import Core
from kb.cycles import paused_cycle_collection
from kb.errors import CircuitKBError
from kb.selection import GraphInfo, Selection


KEPT, ACTIVE = "kept", "active"
SHARED, SPECIFIC = "shared", "specific"

CURVE_COLUMNS = ("family", "lang_a", "lang_b", "layer", "iou", "baseline_iou", "n_pairs", "n_baseline_pairs", "features_a", "features_b", "common")
PAIR_COLUMNS = ("kind", "family", "lang_a", "lang_b", "slug_a", "slug_b", "layer", "size_a", "size_b", "common", "iou")
FEATURE_CLASS_COLUMNS = ("family", "basis", *FEATURE_COLUMNS, "fid", "languages", "n_languages", "class")
LAYER_COLUMNS = ("family", "basis", "layer", "n_shared", "n_specific", "shared_fraction")


@dataclass
class LanguageOverlap:
    """The per-layer overlap of each family's languages, its baseline, and the features' classes.

    ``curves`` (CURVE_COLUMNS) is long-format data ready to plot: one row per (family, language
    pair, layer) with the mean IoU over the family's pairs and the baseline's, and the mean number
    of features of each language and of both behind the family's IoU. ``pairs``
    (PAIR_COLUMNS) has every graph pair behind them (``kind`` ``family`` or ``baseline``).
    ``features`` (FEATURE_CLASS_COLUMNS) classes each feature of a family: ``shared`` when it is
    present in every language of the family, else ``specific`` (``languages`` lists where it is);
    ``layers`` (LAYER_COLUMNS) counts both per layer.
    """

    curves: pd.DataFrame
    pairs: pd.DataFrame
    features: pd.DataFrame
    layers: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """One row per (family, layer), columns ``{a}-{b}`` (IoU) and ``{a}-{b} baseline``."""
        if self.curves.empty:
            return pd.DataFrame()
        curves = self.curves.assign(pair=self.curves["lang_a"] + "-" + self.curves["lang_b"])
        iou = curves.pivot_table(index=["family", "layer"], columns="pair", values="iou", dropna=False)
        base = curves.pivot_table(index=["family", "layer"], columns="pair", values="baseline_iou", dropna=False)
        base.columns = [f"{c} baseline" for c in base.columns]
        wide = pd.concat([iou, base], axis=1)
        return wide[sorted(wide.columns)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "curves": _records(self.curves),
            "layers": _records(self.layers),
            "features": [
                {
                    "family": r["family"],
                    "basis": r["basis"],
                    "feature": {"transcoder_set": r["transcoder_set"], "layer": int(r["layer"]), "index": int(r["index"])},
                    "languages": list(r["languages"]),
                    "class": r["class"],
                }
                for r in self.features.to_dict(orient="records")
            ],
        }


@paused_cycle_collection()
def language_overlap(
    kb: Core,
    selection: Selection | None = None,
    *,
    baseline: Selection | None = None,
    max_baseline_pairs: int = 100,
    seed: int = 0,
) -> LanguageOverlap:
    """The cross-language measure for every family among the chosen graphs with two languages or more.

    Baseline graphs come from ``baseline`` (default: every stored graph): for each language of
    a family, ceil(sqrt(``max_baseline_pairs``)) graphs in that language from other families
    are drawn (the same ones for the same ``seed`` and stored slugs), and the baseline of a
    language pair is the mean over the pairs of drawn graphs from two different families.
    """
    if max_baseline_pairs < 0:
        raise CircuitKBError("max_baseline_pairs must not be negative")
    chosen = chosen_graphs(kb, selection)
    families = _multilingual_families(chosen)
    if not families:
        raise CircuitKBError(
            "no family among the chosen graphs has prompts in two languages; `circuitkb families propose` finds families "
            "in the prompts for you to accept, an ingest manifest declares them, or choose another --family"
        )
    languages = sorted({g.language for members in families.values() for g in members if g.language})
    if baseline is None:
        pool = _visible_in(kb, languages)
    else:
        pool = [_Graph(g.gid, g.slug, g.language, g.family) for g in kb.select(baseline) if g.language in languages]

    per_side = math.ceil(math.sqrt(max_baseline_pairs))
    pair_rows: list[tuple[Any, ...]] = []
    for family, members in sorted(families.items()):
        langs = sorted({g.language for g in members if g.language})
        drawn = {lang: _draw(pool, family, lang, per_side, seed) for lang in langs}
        unrelated = sorted({g.gid for side in drawn.values() for g in side})
        member_gids = [g.gid for g in members]
        sizes = {(c.gid, c.layer): c.n for c in kb.store.layer_counts(member_gids + unrelated)}
        common = {(o.gid_a, o.gid_b, o.layer): o.common for o in kb.store.layer_overlaps(member_gids, member_gids)}
        layers = range(0, max((layer for _, layer in sizes), default=-1) + 1)
        for lang_a, lang_b in itertools.combinations(langs, 2):
            for o in kb.store.layer_overlaps([g.gid for g in drawn[lang_a]], [g.gid for g in drawn[lang_b]]):
                common[(o.gid_a, o.gid_b, o.layer)] = o.common
            same = [(a, b) for a in members if a.language == lang_a for b in members if b.language == lang_b]
            other = [(a, b) for a in drawn[lang_a] for b in drawn[lang_b] if a.family is None or a.family != b.family]
            pair_rows += _pair_rows("family", family, lang_a, lang_b, same, sizes, common, layers)
            pair_rows += _pair_rows("baseline", family, lang_a, lang_b, other, sizes, common, layers)
    pairs = pd.DataFrame(pair_rows, columns=list(PAIR_COLUMNS))
    features, layers = _feature_classes(kb, families)
    return LanguageOverlap(_curves(pair_rows), pairs, features, layers)


@dataclass(frozen=True)
class _Graph:
    """What the measure needs of a graph."""

    gid: int
    slug: str
    language: str | None
    family: str | None


def _multilingual_families(graphs: Iterable[GraphInfo]) -> dict[str, list[_Graph]]:
    families: dict[str, list[_Graph]] = defaultdict(list)
    for g in graphs:
        if g.family and g.language:
            families[g.family].append(_Graph(g.gid, g.slug, g.language, g.family))
    return {f: members for f, members in families.items() if len({g.language for g in members}) >= 2}


def _visible_in(kb: Core, languages: Sequence[str]) -> list[_Graph]:
    """Every visible graph in one of ``languages`` (a lean read of the registry: four columns)."""
    with kb.engine.connect() as conn:
        return [_Graph(*row) for row in sqlqueries.ready_graphs_in(conn, languages)]


def _draw(pool: Sequence[_Graph], family: str, language: str, n: int, seed: int) -> list[_Graph]:
    """Up to ``n`` graphs in ``language`` from outside ``family``, drawn by a generator seeded
    with the seed, family and language (so the draw depends on slugs, not on database ids)."""
    candidates = sorted((g for g in pool if g.language == language and g.family != family), key=lambda g: g.slug)
    rng = random.Random(f"{seed}|{family}|{language}")
    return sorted(rng.sample(candidates, min(n, len(candidates))), key=lambda g: g.slug)


def _pair_rows(
    kind: str,
    family: str,
    lang_a: str,
    lang_b: str,
    pairs: Sequence[tuple[_Graph, _Graph]],
    sizes: dict[tuple[int, int], int],
    common: dict[tuple[int, int, int], int],
    layers: range,
) -> list[tuple[Any, ...]]:
    """Per layer of every pair (a, b): sizes, common features, IoU."""
    rows = []
    for a, b in pairs:
        for layer in layers:
            size_a, size_b = sizes.get((a.gid, layer), 0), sizes.get((b.gid, layer), 0)
            shared = common.get((a.gid, b.gid, layer), 0)
            union = size_a + size_b - shared
            rows.append((kind, family, lang_a, lang_b, a.slug, b.slug, layer, size_a, size_b, shared, shared / union if union else math.nan))
    return rows


def _curves(pair_rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """Mean IoU per (family, language pair, layer) over the family's pairs and the baseline's."""
    sums: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0, 0])  # sum, known, pairs
    for kind, family, lang_a, lang_b, _, _, layer, _, _, _, iou in pair_rows:
        slot = sums[(family, lang_a, lang_b, layer, kind)]
        slot[2] += 1
        if not math.isnan(iou):
            slot[0] += iou
            slot[1] += 1

    # the family's features per layer behind each IoU (an IoU of 1 may be one feature in each language)
    sizes: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for kind, family, lang_a, lang_b, _, _, layer, size_a, size_b, common, _ in pair_rows:
        if kind == "family":
            total = sizes[(family, lang_a, lang_b, layer)]
            total[0], total[1], total[2] = total[0] + size_a, total[1] + size_b, total[2] + common

    def mean(slot: list[float] | None) -> float:
        return slot[0] / slot[1] if slot and slot[1] else math.nan

    rows = []
    for key in sorted(k[:4] for k in sums if k[4] == "family"):
        own, base = sums[(*key, "family")], sums.get((*key, "baseline"))
        rows.append((*key, mean(own), mean(base), int(own[2]), int(base[2]) if base else 0, *(v / own[2] for v in sizes[key])))
    return pd.DataFrame.from_records(rows, columns=list(CURVE_COLUMNS)).astype({"iou": float, "baseline_iou": float})


def pruned_graphs(kb: Core, gids: Sequence[int]) -> dict[int, bool]:
    """Whether each graph is pruned (see the module docstring); unknown counts as pruned."""
    with kb.engine.connect() as conn:
        metadata = sqlqueries.graph_metadata(conn, gids)
    return {gid: _threshold(meta) < 1.0 for gid, meta in metadata.items()}


def _threshold(metadata: dict[str, Any]) -> float:
    settings = metadata.get("pruning_settings")
    candidates = [settings.get("node_threshold") if isinstance(settings, dict) else None, metadata.get("node_threshold"), metadata.get("nodeThreshold")]
    for value in candidates:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return 0.0


def _feature_classes(kb: Core, families: dict[str, list[_Graph]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each family feature's languages and class (FEATURE_CLASS_COLUMNS), and their counts per layer."""
    all_members = [g for members in families.values() for g in members]
    pruned = pruned_graphs(kb, [g.gid for g in all_members])
    rows: list[tuple[Any, ...]] = []
    for family, members in sorted(families.items()):
        for basis, is_pruned in ((KEPT, True), (ACTIVE, False)):
            part = [g for g in members if pruned.get(g.gid, True) == is_pruned]
            languages = {g.language for g in part}
            if len(languages) < 2:
                continue
            language_of = {g.gid: g.language for g in part}
            where: dict[int, set[str]] = defaultdict(set)
            for p in kb.store.shared_presence([g.gid for g in part], 1):
                where[p.fid].add(language_of[p.gid])
            keys = feature_keys(kb, where)
            for fid, found in where.items():
                k = keys[fid]
                rows.append((family, basis, k.transcoder_set, k.layer, k.index, fid, tuple(sorted(found)), len(found), SHARED if found == languages else SPECIFIC))
    rows.sort(key=lambda row: (row[0], row[1], row[2], row[3], row[4]))
    counts: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        counts[(row[0], row[1], row[3])][0 if row[8] == SHARED else 1] += 1
    layers = [(*key, n_shared, n_specific, n_shared / (n_shared + n_specific)) for key, (n_shared, n_specific) in sorted(counts.items())]
    return pd.DataFrame(rows, columns=list(FEATURE_CLASS_COLUMNS)), pd.DataFrame(layers, columns=list(LAYER_COLUMNS))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})
    return out
