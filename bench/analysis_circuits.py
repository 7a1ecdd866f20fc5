"""Benchmark of the circuit analyses against what a researcher does today (pandas over JSON files).

    /root/.cache/circuitkb/venv/bin/python -m bench.analysis_circuits --size 1000 [--stores embedded neo4j]
        [--work /tmp/circ-bench] [--repeats 20] [--baseline-repeats 2] [--large-links 0] [--report]

For one corpus size, in one run: generates the synthetic corpus (``synth``, seed 0) and
ingests it into each store if that was not done before (kept in ``--work``; Neo4j is a dev server
of our own in ``WORK/neo4j-SIZE``), then times each query on each store (p50 and p95 over
``--repeats`` calls after two warm-up calls, arguments cycling over graphs, pairs or families)
and the plain pandas script that answers the same question from the JSON files
(``--baseline-repeats`` calls). The first call of each query checks that store and script agree.
``--only ... --baseline-repeats 0`` times the stores again without the script, keeping its figures
from the earlier run.
``--large-links N`` also writes one unpruned-like graph of N links (``write_large_graph``), ingests
it into a KB of its own per store and times the two pieces on it. ``--report`` rewrites
bench/results/analysis-circuits.md from every size measured so far.

Queries:
- recurring edges (all): feature edges in at least 2 of all graphs, top 100;
- recurring edges (family): edges in every member of a multilingual family;
- strongest paths: the 5 best paths from the features at the second-last token to the answer;
- two-hop: the two-hop prompts (tag ``two-hop``), token -> unnamed-by-its-token feature -> answer,
  the 10 best paths of each graph;
- pattern: A -> B -> answer across all graphs, A among 10 frequent features, B among 30; all
  matching paths, and the 10 best of each graph (scored and cut inside the store) with the
  summary over all of them;
- compare: two members of a multilingual family, aligned;
- similarity: the Jaccard matrix of the ``antonym`` graphs' features and its clustering, and of
  one multilingual family's;
- scores: replacement and completeness of one graph;
- piece (top 200) and piece (2-hop): the 200 most influential nodes with the links among them;
  the 2-hop neighbourhood of the answer logit over links of |w| >= 1.

On the big graph of ``--large-links`` also: one node's details as the app shows them when it is
clicked (its strongest inputs and outputs as shares of each target's input total), for the node
with the most links out.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import os
import platform
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from kb.analysis.compare import compare_graphs, graph_similarity
from kb.analysis.edges import recurring_edges
from kb.analysis.graphview import node_details
from kb.analysis.paths import strongest_paths
from kb.analysis.pieces import neighbourhood_piece, top_piece
from kb.analysis.scores import graph_scores
from kb.analysis.twohop import match_pattern, two_hop_paths
from bench.corpus import corpus, ingest_once, open_bench_kb
from bench.report import growth_table, print_growth, timing_table
from kb.api import KB
from kb.selection import Selection

log = logging.getLogger("bench.analysis_circuits")

RESULTS = Path(__file__).resolve().parent / "results" / "analysis-circuits.md"
NEO4J_PORTS = {1000: 7731, 10000: 7732}
LARGE_PORT = 7733
FEATURE = "cross layer transcoder"
CLT = "gemma-2-2b/clt-hp"


# --- corpus and knowledge bases ------------------------------------------------------------------


# --- what a researcher does today: pandas over the JSON files -------------------------------------


def read_manifest(folder: Path) -> pd.DataFrame:
    manifest = pd.read_csv(folder / "manifest.csv")
    manifest["file"] = [str(folder / p) for p in manifest["path"]]
    manifest["slug"] = [Path(p).name.removesuffix(".json") for p in manifest["path"]]
    return manifest


def read(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def frames(doc: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A graph's nodes (with a `key` (layer, index) for features) and links (with src/tgt rows)."""
    nodes = pd.DataFrame(doc["nodes"])
    feature = nodes["feature_type"] == FEATURE
    z = nodes["feature"].where(feature, 0).astype("int64").to_numpy()
    w = ((np.sqrt(8 * z.astype(float) + 1) - 1) // 2).astype("int64")
    index = z - w * (w + 1) // 2
    nodes["key"] = [(int(a - b), int(b)) if f else None for a, b, f in zip(w, index, feature)]
    links = pd.DataFrame(doc["links"])
    row = pd.Series(np.arange(len(nodes)), index=nodes["node_id"])
    links["s"] = row[links["source"]].to_numpy()
    links["t"] = row[links["target"]].to_numpy()
    return nodes, links


def feature_edges(doc: dict[str, Any]) -> pd.DataFrame:
    nodes, links = frames(doc)
    links["a"] = nodes["key"].to_numpy()[links["s"]]
    links["b"] = nodes["key"].to_numpy()[links["t"]]
    links = links[links["a"].notna() & links["b"].notna()]
    return links.groupby(["a", "b"], as_index=False)["weight"].sum()


def pandas_recurring(files: list[str], k: int, top: int = 100) -> list[tuple[Any, Any, int]]:
    per_graph = []
    for path in files:
        edges = feature_edges(read(path))
        edges["graph"] = path
        per_graph.append(edges)
    edges = pd.concat(per_graph, ignore_index=True)
    agg = edges.groupby(["a", "b"], as_index=False).agg(n=("graph", "size"), mean=("weight", "mean"), low=("weight", "min"), high=("weight", "max"))
    agg = agg[agg["n"] >= k]
    agg = agg.assign(strength=agg["mean"].abs()).sort_values(["n", "strength"], ascending=[False, False]).head(top)
    return [(a, b, int(n)) for a, b, n in zip(agg["a"], agg["b"], agg["n"])]


def shares(nodes: pd.DataFrame, links: pd.DataFrame) -> np.ndarray:
    totals = links.assign(m=links["weight"].abs()).groupby("t")["m"].sum()
    return (links["weight"].abs() / totals[links["t"]].to_numpy()).to_numpy()


def pandas_paths(path: str, position: int, top: int = 5, max_hops: int = 6) -> list[float]:
    doc = read(path)
    nodes, links = frames(doc)
    n_tokens = len(doc["metadata"]["prompt_tokens"])
    at = position + n_tokens if position < 0 else position
    sources = nodes.index[(nodes["ctx_idx"] == at) & (nodes["feature_type"] == FEATURE)].tolist()
    targets = set(nodes.index[nodes["is_target_logit"].fillna(False).astype(bool)].tolist())
    share = shares(nodes, links)
    out: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for s, t, x in zip(links["s"], links["t"], share):
        out[int(s)].append((int(t), float(x)))
    heap = [(-1.0, (s,)) for s in sources]
    heapq.heapify(heap)
    seen: dict[tuple[int, int], int] = defaultdict(int)
    found: list[float] = []
    while heap and len(found) < top:
        score, walk = heapq.heappop(heap)
        if len(walk) > 1 and walk[-1] in targets:
            found.append(-score)
            continue
        state = (walk[-1], len(walk))
        if seen[state] >= top or len(walk) > max_hops:
            continue
        seen[state] += 1
        for t, x in out[walk[-1]]:
            if x > 0 and t not in walk:
                heapq.heappush(heap, (score * x, walk + (t,)))
    return found


_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 2}


def pandas_two_hop(all_files: list[str], files: list[str], position: int, top: int = 10) -> int:
    """How many two-hop paths the store's rule keeps, at most ``top`` per graph (names: every
    graph's clerps)."""
    names: dict[Any, set[str]] = defaultdict(set)
    for path in all_files:
        nodes = pd.DataFrame(read(path)["nodes"])
        labelled = nodes[(nodes["feature_type"] == FEATURE) & (nodes["clerp"].fillna("") != "")]
        for feature, clerp in zip(labelled["feature"], labelled["clerp"]):
            names[feature].add(clerp)
    count = 0
    for path in files:
        doc = read(path)
        nodes, links = frames(doc)
        tokens = doc["metadata"]["prompt_tokens"]
        kept = 0
        at = position + len(tokens)
        kinds = nodes["feature_type"].to_numpy()
        target = set(nodes.index[nodes["is_target_logit"].fillna(False).astype(bool)])
        positions = nodes[kinds == FEATURE].groupby("feature")["ctx_idx"].apply(set)
        into_target = links[links["t"].isin(target)]
        first = links[(nodes["ctx_idx"].to_numpy()[links["s"]] == at) & np.isin(kinds[links["s"]], [FEATURE, "embedding"]) & (kinds[links["t"]] == FEATURE)]
        pairs = first.merge(into_target, left_on="t", right_on="s", suffixes=("", "_2"))
        for mid in pairs["t"]:
            known = set(names.get(nodes.at[mid, "feature"], set()))
            if nodes.at[mid, "clerp"]:
                known.add(nodes.at[mid, "clerp"])
            if not known:
                continue
            name_words = set().union(*(_words(n) for n in known))
            if not any(_words(tokens[p]) & name_words for p in positions[nodes.at[mid, "feature"]]):
                kept += 1
        count += min(kept, top)
    return count


def pandas_pattern(files: list[str], first: set[Any], second: set[Any]) -> int:
    count = 0
    for path in files:
        nodes, links = frames(read(path))
        keys = nodes["key"].to_numpy()
        target = set(nodes.index[nodes["is_target_logit"].fillna(False).astype(bool)])
        a = links[[k in first for k in keys[links["s"]]] & np.array([k in second for k in keys[links["t"]]], dtype=bool)]
        b = links[links["t"].isin(target)]
        count += len(a.merge(b, left_on="t", right_on="s"))
    return count


def pandas_compare(path_a: str, path_b: str) -> tuple[int, float, float]:
    from scipy.stats import spearmanr

    sides = []
    for path in (path_a, path_b):
        nodes, _ = frames(read(path))
        features = nodes[nodes["key"].notna()].groupby("key")["influence"].min()
        sides.append((features, feature_edges(read(path)).set_index(["a", "b"])["weight"]))
    (fa, ea), (fb, eb) = sides
    shared = fa.index.intersection(fb.index)
    rho = spearmanr(fa[shared], fb[shared]).statistic if len(shared) >= 3 else float("nan")
    union_edges = ea.index.union(eb.index)
    x = ea.abs().reindex(union_edges, fill_value=0) / ea.abs().sum()
    y = eb.abs().reindex(union_edges, fill_value=0) / eb.abs().sum()
    same = (ea.reindex(union_edges) >= 0) == (eb.reindex(union_edges) >= 0)
    both = ea.reindex(union_edges).notna() & eb.reindex(union_edges).notna()
    weighted = np.minimum(x, y).where(same & both, 0).sum() / np.maximum(x, y).sum()
    return len(shared), float(rho), float(weighted)


def pandas_similarity(files: list[str]) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    sets = []
    for path in files:
        nodes = pd.DataFrame(read(path)["nodes"])
        sets.append(set(nodes.loc[nodes["feature_type"] == FEATURE, "feature"]))
    n = len(sets)
    matrix = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i, j] = matrix[j, i] = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
    fcluster(linkage(squareform(1 - matrix, checks=False), "average"), t=0.5, criterion="distance")
    return matrix


def pandas_scores(path: str) -> tuple[float, float]:
    from scipy.sparse import csr_matrix

    nodes, links = frames(read(path))
    n = len(nodes)
    a = csr_matrix((links["weight"].abs(), (links["t"], links["s"])), shape=(n, n))
    sums = np.asarray(a.sum(axis=1)).ravel()
    a = csr_matrix(a.multiply(np.divide(1.0, sums, out=np.zeros(n), where=sums > 0)[:, None]))
    logit = np.where(nodes["feature_type"] == "logit", nodes["token_prob"].fillna(0.0), 0.0)
    current, total = a.T @ logit, np.zeros(n)
    while current.any():
        total += current
        current = a.T @ current
    kinds = nodes["feature_type"].to_numpy()
    token, error = total[kinds == "embedding"].sum(), total[kinds == "mlp reconstruction error"].sum()
    weight = total + logit
    err_share = np.asarray(a[:, np.flatnonzero(kinds == "mlp reconstruction error")].sum(axis=1)).ravel()
    return float(token / (token + error)), float(((1 - err_share) * weight).sum() / weight.sum())


def pandas_top(path: str, n: int) -> tuple[int, int]:
    nodes, links = frames(read(path))
    chosen = set(nodes["influence"].dropna().sort_values(kind="stable").index[:n]) | set(nodes.index[nodes["feature_type"] == "logit"])
    return len(chosen), int((links["s"].isin(chosen) & links["t"].isin(chosen)).sum())


def pandas_around(path: str, hops: int, min_abs: float, max_nodes: int = 20_000) -> int:
    """Nodes within ``hops`` links of the answer logit over links of |w| >= min_abs, at most
    max_nodes (each hop adds the nodes behind its strongest links first)."""
    nodes, links = frames(read(path))
    start = int(nodes.index[nodes["is_target_logit"].fillna(False).astype(bool)][0])
    strong = links[links["weight"].abs() >= min_abs]
    reached, frontier = {start}, {start}
    for _ in range(hops):
        if len(reached) >= max_nodes:
            break
        out = strong[strong["s"].isin(frontier)][["t", "weight"]].set_axis(["far", "weight"], axis=1)
        into = strong[strong["t"].isin(frontier)][["s", "weight"]].set_axis(["far", "weight"], axis=1)
        near = pd.concat([out, into])
        near = near[~near["far"].isin(reached)].assign(strength=lambda f: f["weight"].abs())
        best = near.groupby("far")["strength"].max().reset_index().sort_values(["strength", "far"], ascending=[False, True])
        found = set(best["far"].head(max_nodes - len(reached)))
        reached |= found
        frontier = found
    return len(reached)


# --- scenarios ------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    store: Callable[[KB, int], Any]  # (kb, i) -> answer
    pandas: Callable[[int], Any]  # i -> answer
    agree: Callable[[Any, Any], bool]


def scenarios(kb: KB, folder: Path) -> list[Scenario]:
    manifest = read_manifest(folder)
    files = list(manifest["file"])
    file_of = dict(zip(manifest["slug"], manifest["file"]))
    graphs = kb.select()
    slugs = [g.slug for g in graphs]
    step = max(1, len(slugs) // 20)
    sample = slugs[::step][:20]
    multi = manifest[manifest["tags"].str.contains("multilingual")]
    families = [f for f, rows in multi.groupby("family") if len(rows) >= 2][:10]
    members = {f: list(multi.loc[multi["family"] == f, "slug"]) for f in families}
    two_hop_files = list(manifest.loc[manifest["tags"].str.contains("two-hop"), "file"])
    antonym_files = list(manifest.loc[manifest["tags"].str.contains("antonym"), "file"])
    top = recurring_edges(kb, min_graphs=2, limit=40).edges
    first = {(int(r.src_layer), int(r.src_index)) for r in top.head(10).itertuples()}
    second = {(int(r.tgt_layer), int(r.tgt_index)) for r in top.itertuples()}
    steps = [[f"{CLT}/{l}/{i}" for l, i in sorted(first)], [f"{CLT}/{l}/{i}" for l, i in sorted(second)]]

    def edge_key(r: Any) -> tuple[Any, Any, int]:
        return ((int(r.src_layer), int(r.src_index)), (int(r.tgt_layer), int(r.tgt_index)), int(r.n_graphs))

    return [
        Scenario(
            "recurring edges (all, k=2)",
            lambda kb, i: [edge_key(r) for r in recurring_edges(kb, min_graphs=2, limit=100).edges.itertuples()],
            lambda i: pandas_recurring(files, 2),
            lambda s, p: [x[2] for x in s] == [x[2] for x in p] and set(s[:50]) & set(p) == set(s[:50]) & set(s),
        ),
        Scenario(
            "recurring edges (family)",
            lambda kb, i: len(recurring_edges(kb, Selection(family=families[i % len(families)]), min_graphs=len(members[families[i % len(families)]])).edges),
            lambda i: len(pandas_recurring([file_of[s] for s in members[families[i % len(families)]]], len(members[families[i % len(families)]]), top=10**9)),
            lambda s, p: s == p,
        ),
        Scenario(
            "strongest paths (one graph)",
            lambda kb, i: [p.score for p in strongest_paths(kb, sample[i % len(sample)], position=-2, top=5).paths],
            lambda i: pandas_paths(file_of[sample[i % len(sample)]], -2),
            lambda s, p: np.allclose(s, p),
        ),
        Scenario(
            "two-hop (two-hop prompts, top 10 each)",
            lambda kb, i: len(two_hop_paths(kb, Selection(tags=("two-hop",)), position=-2, top=10).paths),
            lambda i: pandas_two_hop(files, two_hop_files, -2),
            lambda s, p: s == p,
        ),
        Scenario(
            "pattern A -> B -> answer (all)",
            lambda kb, i: len(match_pattern(kb, steps).matches),
            lambda i: pandas_pattern(files, first, second),
            lambda s, p: s == p,
        ),
        Scenario(
            "pattern A -> B -> answer (all, top 10 each)",
            lambda kb, i: match_pattern(kb, steps, top=10).n_matches,
            lambda i: pandas_pattern(files, first, second),
            lambda s, p: s == p,
        ),
        Scenario(
            "compare two graphs",
            lambda kb, i: _summary(compare_graphs(kb, *members[families[i % len(families)]][:2]).summary),
            lambda i: pandas_compare(*(file_of[s] for s in members[families[i % len(families)]][:2])),
            lambda s, p: s[0] == p[0] and (math.isclose(s[1], p[1], rel_tol=1e-9) or (math.isnan(s[1]) and math.isnan(p[1]))),
        ),
        Scenario(
            "similarity + clustering (antonym)",
            lambda kb, i: graph_similarity(kb, Selection(tags=("antonym",))).matrix.to_numpy(),
            lambda i: pandas_similarity(sorted(antonym_files, key=lambda f: Path(f).name)),
            lambda s, p: s.shape == p.shape and np.allclose(s, p),
        ),
        Scenario(
            "similarity + clustering (family)",
            lambda kb, i: graph_similarity(kb, Selection(family=families[i % len(families)])).matrix.to_numpy(),
            lambda i: pandas_similarity([file_of[s] for s in sorted(manifest.loc[manifest["family"] == families[i % len(families)], "slug"])]),
            lambda s, p: s.shape == p.shape and np.allclose(s, p),
        ),
        Scenario(
            "scores (one graph)",
            lambda kb, i: _pair(graph_scores(kb, sample[i % len(sample)])),
            lambda i: pandas_scores(file_of[sample[i % len(sample)]]),
            lambda s, p: np.allclose(s, p),
        ),
        Scenario(
            "piece: top 200 nodes",
            lambda kb, i: _size(top_piece(kb, sample[i % len(sample)], 200)),
            lambda i: pandas_top(file_of[sample[i % len(sample)]], 200),
            lambda s, p: s == p,
        ),
        Scenario(
            "piece: 2-hop, |w| >= 1",
            lambda kb, i: len(_around(kb, sample[i % len(sample)]).nodes),
            lambda i: pandas_around(file_of[sample[i % len(sample)]], 2, 1.0),
            lambda s, p: s == p,
        ),
    ]


def _summary(summary: dict[str, Any]) -> tuple[int, float]:
    rho = summary["influence_spearman"]
    return summary["features_shared"], float("nan") if rho is None else rho


def _pair(scores: Any) -> tuple[float, float]:
    return scores.replacement, scores.completeness


def _size(piece: Any) -> tuple[int, int]:
    return len(piece.nodes), len(piece.links)


def _around(kb: KB, slug: str) -> Any:
    gid = kb.select(Selection(slugs=(slug,)))[0].gid
    target = next(i for i in kb.store.logit_nodes(gid) if kb.store.node_rows(gid, [i])[0]["is_target_logit"])
    return neighbourhood_piece(kb, slug, target, hops=2, min_abs_weight=1.0, max_nodes=20_000)


# --- measuring ------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = fn()
    return time.perf_counter() - started, answer


def measure(kbs: dict[str, KB], folder: Path, repeats: int, baseline_repeats: int, only: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every query (or those whose names contain one of ``only``): pandas, then each store."""
    rows = []
    for scenario in scenarios(next(iter(kbs.values())), folder):
        if only and not any(part in scenario.name for part in only):
            continue
        log.info("%s", scenario.name)
        row: dict[str, Any] = {"query": scenario.name}
        script_times, answer = [], None
        for i in range(baseline_repeats):
            seconds, found = timed(lambda: scenario.pandas(i))
            script_times.append(seconds)
            answer = found if i == 0 else answer
        row["pandas_p50"], row["pandas_runs"] = (statistics.median(script_times), len(script_times)) if script_times else (None, 0)
        for store, kb in kbs.items():
            first = scenario.store(kb, 0)
            if script_times:
                row[f"{store}_agrees"] = bool(scenario.agree(first, answer))
            scenario.store(kb, 1)
            times = [timed(lambda: scenario.store(kb, i))[0] for i in range(repeats)]
            row[f"{store}_p50"] = float(np.percentile(times, 50))
            row[f"{store}_p95"] = float(np.percentile(times, 95))
        log.info("%s", row)
        rows.append(row)
    return rows


def measure_large(work: Path, stores: list[str], n_links: int, repeats: int, heap: str, pagecache: str, with_pandas: bool) -> dict[str, Any]:
    """The two pieces on one big graph, per store, against pandas over its JSON file."""
    from synth import write_large_graph

    folder = work / f"large-{n_links}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "large.json"
    if not path.exists():
        log.info("writing a graph of %d links", n_links)
        write_large_graph(path, n_links=n_links, n_nodes=max(2_000, min(14_000, n_links // 700)), seed=0)
    out: dict[str, Any] = {"links": n_links, "bytes": path.stat().st_size, "rows": [], "stores": stores, "load": os.getloadavg()[1]}
    kbs = {}
    for store in stores:
        kb = open_bench_kb(work, f"large-{n_links}", store, LARGE_PORT, heap, pagecache)
        out[f"ingest_{store}"] = ingest_once(kb, work, f"large-{n_links}", store, folder, 1)
        kbs[store] = kb
    slug = next(iter(kbs.values())).select()[0].slug
    busiest = _busiest_node(path)
    cases = [
        ("piece: top 200 nodes", lambda kb: _size(top_piece(kb, slug, 200)), lambda: pandas_top(str(path), 200)),
        ("piece: 2-hop, |w| >= 2, 500 nodes", lambda kb: len(_around_large(kb, slug).nodes), lambda: pandas_around(str(path), 2, 2.0, 500)),
        ("node details (the node with most links out)", lambda kb: _details(kb, slug, busiest), lambda: pandas_details(str(path), busiest)),
    ]
    for name, store_call, pandas_call in cases:
        seconds, answer = timed(pandas_call) if with_pandas else (None, None)
        row: dict[str, Any] = {"query": name, "pandas_p50": seconds, "pandas_runs": 1 if with_pandas else 0}
        for store, kb in kbs.items():
            first = store_call(kb)
            row[f"{store}_agrees"] = first == answer if with_pandas else True
            times = [timed(lambda: store_call(kb))[0] for _ in range(repeats)]
            row[f"{store}_p50"] = float(np.percentile(times, 50))
            row[f"{store}_p95"] = float(np.percentile(times, 95))
        log.info("%s", row)
        out["rows"].append(row)
    for kb in kbs.values():
        kb.close()
    return out


def _busiest_node(path: Path) -> str:
    """The node_id of the big graph's node with the most links out, read from the file once."""
    import ijson

    counts: dict[str, int] = defaultdict(int)
    with open(path, "rb") as fh:
        for source in ijson.items(fh, "links.item.source"):
            counts[source] += 1
    return max(sorted(counts), key=lambda n: counts[n])


def _details(kb: KB, slug: str, node_id: str) -> tuple[int, int, list[float]]:
    details = node_details(kb, slug, node_id)
    return details.n_inputs, details.n_outputs, [round(float(s), 9) for s in details.outputs["share"]]


def pandas_details(path: str, node_id: str, top: int = 10) -> tuple[int, int, list[float]]:
    links = pd.DataFrame(read(path)["links"])
    totals = links.assign(a=links["weight"].abs()).groupby("target")["a"].sum()
    out = links[links["source"] == node_id]
    shares = out["weight"].to_numpy() / totals[out["target"]].to_numpy()
    best = np.argsort(-np.abs(shares), kind="stable")[:top]
    return int((links["target"] == node_id).sum()), len(out), [round(float(s), 9) for s in shares[best]]


def _around_large(kb: KB, slug: str) -> Any:
    gid = kb.select(Selection(slugs=(slug,)))[0].gid
    target = next(i for i in kb.store.logit_nodes(gid) if kb.store.node_rows(gid, [i])[0]["is_target_logit"])
    return neighbourhood_piece(kb, slug, target, hops=2, min_abs_weight=2.0, max_nodes=500)


# --- report ---------------------------------------------------------------------------------------


def write_report(work: Path) -> None:
    lines = [
        "# Circuits, comparison, scores, pieces of big graphs",
        "",
        "Synthetic corpus (`synth.generate_corpus`, seed 0; ~4,400 links and ~390 nodes per graph).",
        "Each size was measured in one run: every query on each store (p50 / p95 over the repeats, after",
        "two warm-up calls, arguments cycling over 20 graphs or 10 families) and, side by side, the plain",
        "pandas script that answers the same question from the JSON files (json.load + pandas; it reads",
        "only the files it needs: one or two for single-graph queries, the family's or the tag's files,",
        "every file for questions over all graphs, and every file for the clerps that name two-hop",
        "intermediates). The first call of each query checks that store and script agree.",
        "Speed-up = pandas p50 / store p50. `embedded` is the embedded store on SQLite.",
    ]
    runs = {data["size"]: data for data in (json.loads(p.read_text()) for p in work.glob("circuits-results-*.json"))}
    for _, data in sorted(runs.items()):
        stores = data["stores"]
        lines += ["", f"## {data['size']:,} graphs", "", f"{data['machine']}; {data['date']}; `{data['command']}`", ""]
        for store in stores:
            lines.append(f"- ingest into {store}: {json.dumps(data['ingest'].get(store, {}))}")
        if "load" in data:
            lines.append(f"- load average during the run (5 min): {data['load']:.1f}")
        lines += [""] + timing_table(data["rows"], stores)
        again = [row for row in data["rows"] if row.get("remeasured")]
        if again:
            lines += ["", "Measured again after a fix, in a run of their own:"] + [f"- {row['query']}: {row['remeasured']}" for row in again]
        for large in data.get("large_runs", []):
            lines += ["", f"### One graph of {large['links']:,} links ({large['bytes'] / 1e6:,.0f} MB of JSON)", "", f"`{large['command']}`", ""]
            for store in large["stores"]:
                if f"ingest_{store}" in large:
                    lines.append(f"- ingest into {store}: {json.dumps(large[f'ingest_{store}'])}")
            lines += [""] + timing_table(large["rows"], large["stores"])
    if len(runs) >= 2:
        small, big = min(runs), max(runs)
        lines += [""] + growth_table(small, runs[small]["rows"], big, runs[big]["rows"], runs[big]["stores"])
    notes = RESULTS.parent / "analysis-circuits-notes.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--stores", nargs="+", default=["embedded", "neo4j"], choices=["embedded", "neo4j"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/circ-bench"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--baseline-repeats", type=int, default=2)
    parser.add_argument("--large-links", type=int, default=0, help="Also time the pieces on one graph of this many links.")
    parser.add_argument("--large-stores", nargs="+", choices=["embedded", "neo4j"], help="Stores for the big graph (default: --stores).")
    parser.add_argument("--only-large", action="store_true", help="Time only the big graph (adds it to the results of --size).")
    parser.add_argument("--large-pandas", action="store_true", help="Also time pandas on the big graph (needs ~40x its file size in memory).")
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--pagecache", default="2g")
    parser.add_argument("--only", nargs="+", default=(), help="Measure again only the queries whose names contain these words; their rows replace those of the last run of --size.")
    parser.add_argument("--report", action="store_true", help="Only rewrite the report from results measured before.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("neo4j", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.report:
        write_report(args.work)
        return
    results = args.work / f"circuits-results-{args.size}.json"
    if args.only_large:
        result = json.loads(results.read_text())
        large = measure_large(args.work, args.large_stores or args.stores, args.large_links, args.repeats, args.heap, args.pagecache, args.large_pandas)
        result.setdefault("large_runs", []).append({**large, "command": _command(args)})
        results.write_text(json.dumps(result, indent=1))
        write_report(args.work)
        return
    folder = corpus(args.work, args.size)
    if args.only:
        remeasure(args, results, folder)
        return
    kbs, ingest = {}, {}
    for store in args.stores:
        kbs[store] = _open_kb(args, store)
        ingest[store] = ingest_once(kbs[store], args.work, str(args.size), store, folder, args.size)
    rows = measure(kbs, folder, args.repeats, args.baseline_repeats)
    for kb in kbs.values():
        kb.close()
    large = measure_large(args.work, args.large_stores or args.stores, args.large_links, args.repeats, args.heap, args.pagecache, args.large_pandas) if args.large_links else None
    machine = f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, CPython {platform.python_version()}"
    result = {
        "size": args.size,
        "stores": args.stores,
        "rows": rows,
        "ingest": ingest,
        "large_runs": [{**large, "command": _command(args)}] if large else [],
        "command": _command(args),
        "machine": machine,
        "date": date.today().isoformat(),
        "load": os.getloadavg()[1],
    }
    results.write_text(json.dumps(result, indent=1))
    write_report(args.work)
    print_growth({data["size"]: data for data in (json.loads(p.read_text()) for p in args.work.glob("circuits-results-*.json"))})


def _open_kb(args: argparse.Namespace, store: str) -> KB:
    return open_bench_kb(args.work, str(args.size), store, NEO4J_PORTS.get(args.size, 7734), args.heap, args.pagecache)


def remeasure(args: argparse.Namespace, results: Path, folder: Path) -> None:
    """Measure some queries again (after a fix) and put their rows in the last run's results,
    each marked with the command and date of its own run. Without an earlier run of this size,
    only print the rows (with the load average before and after), on ``--stores``."""
    result = json.loads(results.read_text()) if results.exists() else None
    before = os.getloadavg()
    kbs = {store: _open_kb(args, store) for store in (result["stores"] if result else args.stores)}
    rows = measure(kbs, folder, args.repeats, args.baseline_repeats, args.only)
    for kb in kbs.values():
        kb.close()
    if result is None:
        for row in rows:
            print(json.dumps(row))
        print(json.dumps({"load_before": before, "load_after": os.getloadavg(), "note": f"no earlier run in {results}: rows printed only"}))
        return
    stamp = f"{date.today().isoformat()}, load {os.getloadavg()[1]:.1f}: `{_command(args)} --only {' '.join(args.only)}`"
    again = {row["query"]: {**row, "remeasured": stamp} for row in rows}
    result["rows"] = [_replaced(row, again[row["query"]]) if row["query"] in again else row for row in result["rows"]]
    results.write_text(json.dumps(result, indent=1))
    write_report(args.work)


def _replaced(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` in place of ``old``; without the pandas script (``--baseline-repeats 0``) the
    script's figures and the agreement of ``old`` are kept, with the date of their run."""
    if new["pandas_runs"]:
        return new
    kept = {k: v for k, v in old.items() if k.startswith("pandas") or k.endswith("_agrees")}
    return {**new, **kept, "pandas_from": old.get("remeasured", "the full run")}


def _command(args: argparse.Namespace) -> str:
    return "/root/.cache/circuitkb/venv/bin/python -m bench.analysis_circuits " + " ".join(
        [f"--size {args.size}", "--stores " + " ".join(args.stores), f"--work {args.work}", f"--repeats {args.repeats}", f"--baseline-repeats {args.baseline_repeats}"]
        + ([f"--large-links {args.large_links}"] if args.large_links else [])
        + (["--large-stores " + " ".join(args.large_stores)] if args.large_stores else [])
        + (["--only-large"] if args.only_large else [])
        + (["--large-pandas"] if args.large_pandas else [])
    )


if __name__ == "__main__":
    main()
