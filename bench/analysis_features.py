"""Benchmark of the feature analyses against what a researcher does today (pandas over JSON files).

    /root/.cache/circuitkb/venv/bin/python -m bench.analysis_features --size 1000 [--stores embedded neo4j]
        [--work /tmp/feat-bench] [--repeats 30] [--baseline-repeats 3] [--report]

For one corpus size, in one run: generates the synthetic corpus (``synth``, seed 0) and
ingests it into each store if that was not done before (kept in ``--work``; Neo4j is a dev server
of our own in ``WORK/neo4j-SIZE``), then times each query on each store (p50 and p95 over
``--repeats`` calls after one warm-up call per argument, arguments cycling over families or
features) and the
plain pandas script that answers the same question from the JSON files (``--baseline-repeats``
calls). The first call of each query checks that the store and the script agree.
``--report`` rewrites bench/results/analysis-features.md from every size measured so far.

Queries:
- shared (family): features in every member of a multilingual family, with their presence;
- family core: the core of a variant family and what each member adds;
- shared (k of all): features in at least half of all graphs (the summary, which the aggregates
  answer; "with presence" also reads every graph's presence of those features);
- used-by: graphs with a feature, best 20 by activation, 5 neighbours each way, and the
  summary over all graphs; once for features in most graphs (the head of the background) and
  once for features around the median frequency;
- languages: per-layer IoU of a multilingual family's language pairs with a 100-pair baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import random
import statistics
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from kb.analysis import family_core, language_overlap, shared_features, used_by
from bench.corpus import corpus, ingest_once, open_bench_kb
from bench.report import growth_table, print_growth, timing_table
from kb.api import KB
from kb.selection import Selection

log = logging.getLogger("bench.analysis_features")

RESULTS = Path(__file__).resolve().parent / "results" / "analysis-features.md"
NEO4J_PORTS = {1000: 7721, 10000: 7722}
FEATURE_TYPE = "cross layer transcoder"
CLT = "gemma-2-2b/clt-hp"


# --- corpus and knowledge bases ------------------------------------------------------------------


def open_kb(work: Path, size: int, store: str, heap: str, pagecache: str) -> tuple[KB, dict[str, Any]]:
    """The KB of this size and store, ingesting the corpus first if needed; with ingest figures."""
    kb = open_bench_kb(work, str(size), store, NEO4J_PORTS.get(size, 7723), heap, pagecache)
    return kb, ingest_once(kb, work, str(size), store, corpus(work, size), size)


# --- what a researcher does today: pandas over the JSON files ------------------------------------


def read_manifest(folder: Path) -> pd.DataFrame:
    manifest = pd.read_csv(folder / "manifest.csv")
    manifest["file"] = [str(folder / p) for p in manifest["path"]]
    manifest["slug"] = [Path(p).name.removesuffix(".json") for p in manifest["path"]]
    return manifest


def load_nodes(files: list[str]) -> pd.DataFrame:
    frames = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        nodes = pd.DataFrame(doc["nodes"])
        nodes["slug"] = doc["metadata"]["slug"]
        frames.append(nodes)
    return pd.concat(frames, ignore_index=True)


def feature_rows(nodes: pd.DataFrame) -> pd.DataFrame:
    feats = nodes[nodes["feature_type"] == FEATURE_TYPE].copy()
    feats["layer"] = feats["layer"].astype(int)
    return feats


def unpair(values: pd.Series) -> pd.Series:
    """Cantor-unpair schema-1 feature ids to their index (the layer is a column already)."""
    z = values.astype("int64").to_numpy()
    w = np.floor((np.sqrt(8 * z.astype(np.float64) + 1) - 1) / 2).astype(np.int64)
    w -= (w * (w + 1) // 2) > z
    w += ((w + 1) * (w + 2) // 2) <= z
    return pd.Series(z - w * (w + 1) // 2, index=values.index)


def per_graph_features(files: list[str]) -> pd.DataFrame:
    """One row per (feature, graph): strongest activation, best influence, positions; file by file."""
    frames = []
    for path in files:
        feats = feature_rows(load_nodes([path]))
        frames.append(
            feats.groupby(["layer", "feature", "slug"])
            .agg(activation=("activation", "max"), influence=("influence", "min"), positions=("ctx_idx", lambda s: tuple(sorted(set(s)))))
            .reset_index()
        )
    return pd.concat(frames, ignore_index=True)


def pandas_shared(folder: Path, family: str | None, k: int | None) -> set[tuple[int, int]]:
    manifest = read_manifest(folder)
    chosen = manifest if family is None else manifest[manifest["family"] == family]
    per_graph = per_graph_features(list(chosen["file"]))
    counts = per_graph.groupby(["layer", "feature"])["slug"].transform("size")
    kept = per_graph[counts >= (len(chosen) if k is None else k)]
    return set(zip(kept["layer"], unpair(kept["feature"])))


def pandas_core(folder: Path, family: str) -> tuple[int, dict[str, int]]:
    manifest = read_manifest(folder)
    chosen = manifest[manifest["family"] == family]
    per_graph = per_graph_features(list(chosen["file"]))
    n_members = per_graph.groupby(["layer", "feature"])["slug"].transform("size")
    core = per_graph[n_members == len(chosen)]
    added = per_graph[n_members < len(chosen)].groupby("slug").size().to_dict()
    return core[["layer", "feature"]].drop_duplicates().shape[0], added


def pandas_used_by(folder: Path, layer: int, index: int, top: int = 20, near: int = 5) -> tuple[int, list[str]]:
    """Graphs with the feature ranked by activation, neighbours in the best, summary over all."""
    from ingest.featureid import cantor_pair

    target = cantor_pair(layer, index)
    scores: dict[str, float] = {}
    touching: dict[str, list[pd.DataFrame]] = {"target": [], "source": []}
    for path in read_manifest(folder)["file"]:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        nodes = pd.DataFrame(doc["nodes"])
        is_feature = nodes["feature_type"] == FEATURE_TYPE
        mine = nodes[is_feature & (nodes["feature"] == target) & (nodes["layer"] == str(layer))]
        if mine.empty:
            continue
        slug = doc["metadata"]["slug"]
        scores[slug] = mine["activation"].max()
        links = pd.DataFrame(doc["links"])
        ends = nodes[["node_id"]].assign(key=np.where(is_feature, nodes["layer"] + "/" + nodes["feature"].astype(str), nodes["node_id"]), is_feature=is_feature)
        for end, other in (("target", "source"), ("source", "target")):
            linked = links[links[end].isin(mine["node_id"])].merge(ends, left_on=other, right_on="node_id")
            touching[end].append(linked.groupby(["key", "is_feature"], as_index=False)["weight"].sum().assign(slug=slug))
    ranked = sorted(scores, key=lambda s: (-scores[s], s))
    best = ranked[:top]
    for end, frames in touching.items():
        per_graph = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["key", "is_feature", "weight", "slug"])
        listed = per_graph[per_graph["slug"].isin(best)]
        listed.assign(strength=listed["weight"].abs()).sort_values(["slug", "strength"], ascending=[True, False]).groupby("slug").head(near)
        summary = per_graph[per_graph["is_feature"].astype(bool)].groupby("key")["weight"].agg(["size", "mean"]).reset_index()
        summary.assign(strength=summary["mean"].abs()).sort_values(["size", "strength"], ascending=False).head(near)
    return len(ranked), best


def pandas_languages(folder: Path, family: str, max_pairs: int = 100, seed: int = 0) -> dict[tuple[str, str, int], float]:
    manifest = read_manifest(folder)
    members = manifest[manifest["family"] == family]
    langs = sorted(set(members["language"]))
    files: dict[str, str] = dict(zip(manifest["slug"], manifest["file"]))
    fam_of = dict(zip(manifest["slug"], manifest["family"]))
    per_side = math.ceil(math.sqrt(max_pairs))
    drawn = {}
    for lang in langs:
        pool = manifest[(manifest["language"] == lang) & (manifest["family"] != family)].sort_values("slug")
        rng = random.Random(f"{seed}|{family}|{lang}")
        drawn[lang] = sorted(rng.sample(list(pool["slug"]), min(per_side, len(pool))))
    plan: list[tuple[str, str, str, list[tuple[str, str]]]] = []
    for i, a in enumerate(langs):
        for b in langs[i + 1 :]:
            fam_pairs = [(x, y) for x in members[members["language"] == a]["slug"] for y in members[members["language"] == b]["slug"]]
            base_pairs = [(x, y) for x in drawn[a] for y in drawn[b] if fam_of[x] != fam_of[y]]
            plan.append((a, b, "family", fam_pairs))
            plan.append((a, b, "baseline", base_pairs))
    needed = sorted({s for *_, pairs in plan for pair in pairs for s in pair})
    feats = feature_rows(load_nodes([files[s] for s in needed]))
    sets = feats.groupby(["slug", "layer"])["feature"].agg(set).to_dict()
    curves: dict[tuple[str, str, str, int], float] = {}
    for a, b, kind, pairs in plan:
        for layer in range(26):
            values = []
            for x, y in pairs:
                sa, sb = sets.get((x, layer), set()), sets.get((y, layer), set())
                if sa | sb:
                    values.append(len(sa & sb) / len(sa | sb))
            curves[(kind, a, b, layer)] = statistics.fmean(values) if values else math.nan
    return curves


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-9


# --- scenarios -----------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    args: list[Any]
    run_kb: Callable[[KB, Any], Any]
    run_pandas: Callable[[Path, Any], Any]
    agree: Callable[[Any, Any], bool]


def scenarios(kb: KB, folder: Path, size: int) -> list[Scenario]:
    manifest = read_manifest(folder)
    manifest["variant"] = manifest["tags"].fillna("").str.split(";").map(lambda tags: "variant" in tags)
    sizes = manifest.groupby("family").agg(n=("slug", "size"), langs=("language", "nunique"), variant=("variant", "all"))
    multilingual = sorted(sizes[(sizes["langs"] >= 2) & (sizes["n"] >= 3)].index)
    variants = sorted(sizes[sizes["variant"] & (sizes["n"] >= 3)].index)
    rng = random.Random(0)
    ml = rng.sample(multilingual, min(10, len(multilingual)))
    var = rng.sample(variants, min(10, len(variants)))
    common, rare = sample_features(folder)

    return [
        Scenario(
            "shared (family)",
            ml,
            lambda kb, fam: shared_features(kb, Selection(family=fam)),
            lambda folder, fam: pandas_shared(folder, fam, None),
            lambda got, want: set(zip(got.features["layer"], got.features["index"])) == want,
        ),
        Scenario(
            "family core",
            var,
            lambda kb, fam: family_core(kb, Selection(family=fam)),
            lambda folder, fam: pandas_core(folder, fam),
            lambda got, want: len(got.core) == want[0] and got.additions.groupby("slug").size().to_dict() == want[1],
        ),
        Scenario(
            "shared (k of all)",
            [size // 2],
            lambda kb, k: shared_features(kb, None, min_graphs=k, with_presence=False),
            lambda folder, k: pandas_shared(folder, None, k),
            lambda got, want: set(zip(got.features["layer"], got.features["index"])) == want,
        ),
        Scenario(
            "shared (k of all, with presence)",
            [size // 2],
            lambda kb, k: shared_features(kb, None, min_graphs=k),
            lambda folder, k: pandas_shared(folder, None, k),
            lambda got, want: set(zip(got.features["layer"], got.features["index"])) == want and set(got.presence["fid"]) == set(got.features["fid"]),
        ),
        *(
            Scenario(
                name,
                keys,
                lambda kb, key: used_by(kb, [f"{CLT}/{key[0]}/{key[1]}"], neighbours=5, limit=20),
                lambda folder, key: pandas_used_by(folder, key[0], key[1]),
                lambda got, want: got.n_graphs == want[0] and list(got.graphs.drop_duplicates("slug")["slug"]) == want[1],
            )
            for name, keys in (("used-by (feature in most graphs)", common), ("used-by (feature in ~1% of graphs)", rare))
        ),
        Scenario(
            "languages",
            ml,
            lambda kb, fam: language_overlap(kb, Selection(family=fam), max_baseline_pairs=100),
            lambda folder, fam: pandas_languages(folder, fam),
            lambda got, want: all(
                _same(want[("family", r.lang_a, r.lang_b, r.layer)], r.iou) and _same(want[("baseline", r.lang_a, r.lang_b, r.layer)], r.baseline_iou)
                for r in got.curves.itertuples()
            ),
        ),
    ]


def sample_features(folder: Path, n: int = 5, sample: int = 300) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The ``n`` most widespread features of a sample of the files, and ``n`` around the median."""
    files = sorted(read_manifest(folder)["file"])
    chosen = random.Random(1).sample(files, min(sample, len(files)))
    per_graph = per_graph_features(chosen)
    counts = per_graph.groupby(["layer", "feature"]).size().reset_index(name="n")
    counts = counts[counts["n"] >= 2].sort_values(["n", "layer", "feature"], ascending=[False, True, True])
    middle = len(counts) // 2

    def keys(part: pd.DataFrame) -> list[tuple[int, int]]:
        return [(int(layer), int(index)) for layer, index in zip(part["layer"], unpair(part["feature"]))]

    return keys(counts.head(n)), keys(counts.iloc[middle : middle + n])


# --- measuring -----------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def measure(kbs: dict[str, KB], folder: Path, size: int, repeats: int, baseline_repeats: int) -> list[dict[str, Any]]:
    rows = []
    reference_kb = next(iter(kbs.values()))
    for scenario in scenarios(reference_kb, folder, size):
        log.info("%s: pandas", scenario.name)
        pandas_times, expected = [], {}
        for i in range(baseline_repeats):
            arg = scenario.args[i % len(scenario.args)]
            seconds, expected[i % len(scenario.args)] = timed(lambda: scenario.run_pandas(folder, arg))
            pandas_times.append(seconds)
        row: dict[str, Any] = {"query": scenario.name, "pandas_p50": statistics.median(pandas_times), "pandas_runs": len(pandas_times)}
        for store, kb in kbs.items():
            log.info("%s: %s", scenario.name, store)
            for i, arg in list(enumerate(scenario.args))[: max(1, min(len(scenario.args), baseline_repeats))]:
                want = expected.get(i)
                if want is not None and not scenario.agree(scenario.run_kb(kb, arg), want):
                    raise SystemExit(f"{scenario.name} on {store} disagrees with the pandas script for {arg!r}")
            for arg in scenario.args:
                scenario.run_kb(kb, arg)  # warm-up: one call per argument (caches, Neo4j's page cache)
            times = [timed(lambda: scenario.run_kb(kb, scenario.args[i % len(scenario.args)]))[0] for i in range(repeats)]
            row[f"{store}_p50"] = float(np.percentile(times, 50))
            row[f"{store}_p95"] = float(np.percentile(times, 95))
        rows.append(row)
    return rows


# --- report --------------------------------------------------------------------------------------


def write_report(work: Path) -> None:
    runs = {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in sorted(work.glob("results-*.json"))}
    lines = [
        "# Features across graphs: shared, family core, used-by, languages",
        "",
        "Synthetic corpus (`synth.generate_corpus`, seed 0; ~4,400 links and ~390 nodes per graph).",
        "Each size was measured in one run: every query on each store (p50 / p95 over the repeats, after",
        "one warm-up call per argument, arguments cycling over 10 families or 5 features) and, side by side, the plain",
        "pandas script that answers the same question from the JSON files (json.load + pandas; it reads",
        "the manifest to load only the files it needs: the family's for shared/core, the family's and the",
        "baseline draw's for languages, every file for used-by and shared-of-all). The first calls check",
        "that both give the same answer. Speed-up = pandas p50 / store p50.",
        "",
    ]
    for size, run in sorted(runs.items()):
        stores = run["stores"]
        lines += [f"## {size:,} graphs", "", f"{run['machine']}; {run['date']}; {run.get('load', '')}", "", f"`{run['command']}`", ""]
        for store in stores:
            ingest = run["ingest"].get(store) or {}
            lines.append(f"- ingest into {store}: {json.dumps(ingest)}")
        lines += [""] + timing_table(run["rows"], stores) + [""]
    if len(runs) >= 2:
        small, big = min(runs), max(runs)
        lines += growth_table(small, runs[small]["rows"], big, runs[big]["rows"], runs[big]["stores"]) + [""]
    notes = RESULTS.parent / "analysis-features-notes.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--stores", nargs="+", default=["embedded", "neo4j"], choices=["embedded", "neo4j"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/feat-bench"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--baseline-repeats", type=int, default=3)
    parser.add_argument("--heap", default="2g", help="Neo4j heap")
    parser.add_argument("--pagecache", default="2g", help="Neo4j page cache")
    parser.add_argument("--report", action="store_true", help="Only rewrite the results file from earlier runs.")
    parser.add_argument("--prepare", action="store_true", help="Only generate and ingest the corpus.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.report:
        folder = corpus(args.work, args.size)
        kbs, ingest = {}, {}
        for store in args.stores:
            kbs[store], ingest[store] = open_kb(args.work, args.size, store, args.heap, args.pagecache)
        if args.prepare:
            return
        load_before = os.getloadavg()[0]
        rows = measure(kbs, folder, args.size, args.repeats, args.baseline_repeats)
        load_after = os.getloadavg()[0]
        for kb in kbs.values():
            kb.close()
        run = {
            "size": args.size,
            "stores": args.stores,
            "rows": rows,
            "ingest": ingest,
            "date": date.today().isoformat(),
            "load": f"1-min load average {load_before:.1f} before and {load_after:.1f} after (other developers' jobs share the 2 cores)",
            "machine": f"{os.cpu_count()} cores, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.python_implementation()} {platform.python_version()}",
            "command": "/root/.cache/circuitkb/venv/bin/python -m bench.analysis_features " + " ".join(
                f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items() if k not in ("report", "prepare")
            ),
        }
        (args.work / f"results-{args.size}.json").write_text(json.dumps(run, indent=1))
    write_report(args.work)
    print_growth({int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in args.work.glob("results-*.json")})


if __name__ == "__main__":
    main()
