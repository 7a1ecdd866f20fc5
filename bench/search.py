"""Benchmark of feature search: relevance, and latency / build time / memory / recall at 1M.

    /root/.cache/circuitkb/venv/bin/python -m bench.search --stage relevance
    /root/.cache/circuitkb/venv/bin/python -m bench.search --stage index --n 1000000
    /root/.cache/circuitkb/venv/bin/python -m bench.search --stage load --n 1000000
    /root/.cache/circuitkb/venv/bin/python -m bench.search --stage pipeline --n 1000000
    /root/.cache/circuitkb/venv/bin/python -m bench.search --stage queries --n 1000000
    /root/.cache/circuitkb/venv/bin/python -m bench.search --stage cold --runs 20
    /root/.cache/circuitkb/venv/bin/python -m bench.search --stage throughput --base 5000

``relevance``: the relevance set of ``tests/relevance.yaml`` on the real graphs and explanations;
recall@10 and MRR per language (English, French, Spanish, German, Chinese, Japanese) of the
blended, semantic-only and keyword-only rankings, on the whole set and on each half of its
concepts (``halves``: a change tuned on one half should gain on the other too).

``cold``: ``circuitkb search "say a capital city"`` as a new process, ``--runs`` times, on the real
graphs and the layer-20 explanations in a temporary home: wall time and CPU time per run, the
phases inside one process (CLI imported, modules imported, KB opened, index loaded, query
embedded, searched; seconds since start), and the load average before and after (the machine is
shared: a load above the number of cores makes the wall time meaningless).

``index``: the approximate index alone on ``--n`` vectors. Embedding 1M texts with MiniLM on 2
CPU cores takes hours, so the benchmark embeds ``--base`` generated descriptions (realistic
vocabulary and lengths, :mod:`bench.search_texts`; the embedding throughput is measured there)
and draws the ``--n`` vectors to resemble real embeddings: each is the embedding of one base
text, mixed with a second one (weight up to 0.3) and Gaussian noise, then normalised, so that
the collection has the clusters of near-paraphrases a real corpus has. Queries are other
generated texts, embedded live: the latency includes embedding the query. Recall@10 is measured
against exact search (numpy) over the same vectors.

``load``: the saved index of ``index`` opened in a fresh process: load time, memory (the index
on the heap; the vector file is memory-mapped and only the rows re-scored are read), latency
split into embedding the query and searching.

``pipeline``: the whole ``kb.search.search`` with the default models (English and multilingual,
fused) on a SQLite knowledge base holding ``--n`` generated descriptions (their distinct texts
get drawn vectors as above, around the base texts' embeddings by both models, written where the
index keeps them, so nothing is embedded but the queries). The queries are timed by ``queries``
in a new process opening that knowledge base (run it alone to time them again without building).

Embeddings of the base texts are cached in ``bench/out/search/``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench import search_texts
from kb.search.embedder import ENGLISH_MODEL, Embedder, FusedEmbedder, SentenceTransformerEmbedder, model_slug, shared_embedder, warm_queries

OUT = Path(__file__).resolve().parent / "out" / "search"
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory in MiB: VmRSS (all), RssAnon (heap: the index) or RssFile (mapped files)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# --- base embeddings -------------------------------------------------------------------------------


def unique_texts(n: int, seed: int) -> list[str]:
    seen: dict[str, None] = {}
    for text in search_texts.descriptions(n * 20, seed=seed):
        seen.setdefault(text, None)
        if len(seen) == n:
            break
    return list(seen)


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]


def base_vectors(n: int, embedder: Embedder | None = None) -> tuple[list[str], np.ndarray, dict]:
    """``n`` generated texts and their embeddings by ``embedder`` (default: the English model),
    cached, with the measured throughput."""
    OUT.mkdir(parents=True, exist_ok=True)
    texts = unique_texts(n, seed=1)
    embedder = embedder or SentenceTransformerEmbedder()
    stem = f"base-{n}" if embedder.name == ENGLISH_MODEL else f"base-{model_slug(embedder.name)}-{n}"
    cache, info_path = OUT / f"{stem}.npy", OUT / f"{stem}.json"
    if cache.exists() and info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("texts_sha") == _digest(texts):
            return texts, np.load(cache), info
    embedder.embed(["warm up"])
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    seconds = time.perf_counter() - started
    info = {
        "texts": n,
        "seconds": round(seconds, 1),
        "texts_per_second": round(n / seconds, 1),
        "mean_chars": round(sum(map(len, texts)) / n, 1),
        "load_average": os.getloadavg()[0],
        "texts_sha": _digest(texts),
    }
    np.save(cache, vectors)
    info_path.write_text(json.dumps(info))
    return texts, vectors, info


def drawn_vectors(base: np.ndarray, n: int, seed: int, chunk: int = 100_000):  # noqa: ANN201
    """Chunks of ``n`` unit vectors drawn around the base embeddings (see the module doc)."""
    rng = np.random.default_rng(seed)
    dim = base.shape[1]
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        first = base[rng.integers(0, len(base), size)]
        second = base[rng.integers(0, len(base), size)]
        mix = rng.uniform(0.0, 0.3, size=(size, 1)).astype(np.float32)
        noise = rng.normal(0.0, 0.025, size=(size, dim)).astype(np.float32)
        out = (1 - mix) * first + mix * second + noise
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        yield out.astype(np.float32)


def write_vectors(folder: Path, model: str, chunks) -> int:  # noqa: ANN001
    """Write drawn vectors where :class:`kb.search.index.VectorIndex` keeps them."""
    folder.mkdir(parents=True, exist_ok=True)
    count, dim = 0, None
    with open(folder / "vectors.f32", "wb") as fh:
        for block in chunks:
            fh.write(block.tobytes())
            count += len(block)
            dim = block.shape[1]
    (folder / "meta.json").write_text(json.dumps({"model": model, "dim": dim, "count": count}))
    for name in ("index.faiss", "index.json"):
        (folder / name).unlink(missing_ok=True)
    return count


# --- stages ----------------------------------------------------------------------------------------


def stage_embed(args: argparse.Namespace) -> dict[str, Any]:
    _, _, info = base_vectors(args.base)
    embedder = SentenceTransformerEmbedder()
    queries = unique_texts(args.queries, seed=7)
    embedder.embed(["warm up"])
    times = []
    for text in queries:
        started = time.perf_counter()
        embedder.embed([text])
        times.append((time.perf_counter() - started) * 1000)
    info["query_embed_ms_p50"] = round(percentile(times, 50), 2)
    info["query_embed_ms_p95"] = round(percentile(times, 95), 2)
    return info


QUIET_LOAD = 1.5  # a 1-minute load average above this on 2 cores disturbs throughput (BENCHMARKS.md)


def stage_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Embedding throughput of each model on ``--base`` generated descriptions, and what a build
    of 1M descriptions would take at that rate; refused when the machine is not quiet."""
    from kb.search.embedder import MultilingualEmbedder

    load = os.getloadavg()[0]
    if load > QUIET_LOAD:
        raise SystemExit(f"the 1-minute load average is {load:.2f} (> {QUIET_LOAD}): other work would make the figures meaningless; wait for a quiet machine")
    texts = unique_texts(args.base, seed=1)
    out: dict[str, Any] = {"texts": len(texts), "mean_chars": round(sum(map(len, texts)) / len(texts), 1), "load_before": round(load, 2), "models": {}}
    for name, embedder in (("English (all-MiniLM-L6-v2, sentence-transformers)", SentenceTransformerEmbedder()), ("multilingual (USE v3, numpy)", MultilingualEmbedder())):
        embedder.embed(["warm up"])
        started = time.perf_counter()
        embedder.embed(texts)
        seconds = time.perf_counter() - started
        rate = len(texts) / seconds
        out["models"][name] = {"seconds": round(seconds, 1), "texts_per_second": round(rate, 1), "million_minutes": round(1_000_000 / rate / 60, 1)}
    out["load_after"] = round(os.getloadavg()[0], 2)
    return out


def stage_index(args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    from kb.search.index import VectorIndex

    _, base, base_info = base_vectors(args.base)
    folder = OUT / f"ann-{args.n}"
    started = time.perf_counter()
    count = write_vectors(folder, ENGLISH_MODEL, drawn_vectors(base, args.n, seed=3))
    draw_seconds = time.perf_counter() - started
    rss_before = rss_mb()
    started = time.perf_counter()
    index = VectorIndex(folder, ENGLISH_MODEL)
    index.load()  # no index on disk: builds (trains, adds) and saves it
    build_seconds = time.perf_counter() - started
    rss_after = rss_mb()
    started = time.perf_counter()
    reloaded = VectorIndex(folder, ENGLISH_MODEL)
    reloaded.load()
    load_seconds = time.perf_counter() - started
    del reloaded

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    queries = unique_texts(args.queries, seed=7)
    exact_vectors = np.fromfile(folder / "vectors.f32", dtype=np.float32).reshape(count, -1)
    whole, ann_only, exact_ms, recalls = [], [], [], []
    for text in queries:
        started = time.perf_counter()
        q = embedder.embed([text])[0]
        ids, _ = index.search(q, 80)  # the pool a k=20 search starts with
        whole.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        top10, _ = index.search(q, 10)
        ann_only.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        scores = exact_vectors @ q
        exact = np.argpartition(-scores, 10)[:10]
        exact_ms.append((time.perf_counter() - started) * 1000)
        recalls.append(len(set(exact.tolist()) & set(top10.tolist())) / 10)
    sweep = {}
    ann = index._ann  # the benchmark looks inside: recall and speed per number of probed lists
    if hasattr(ann, "nprobe"):
        default = ann.nprobe
        for nprobe in (8, 16, 32, 48, 64, 96):
            ann.nprobe = nprobe
            hits, ms = [], []
            for text in queries[:100]:
                q = embedder.embed([text])[0]
                started = time.perf_counter()
                top10, _ = index.search(q, 10)
                ms.append((time.perf_counter() - started) * 1000)
                exact = np.argpartition(-(exact_vectors @ q), 10)[:10]
                hits.append(len(set(exact.tolist()) & set(top10.tolist())) / 10)
            sweep[nprobe] = {"recall_at_10": round(float(np.mean(hits)), 4), "ann_ms_p50": round(percentile(ms, 50), 3)}
        ann.nprobe = default
    return {
        "nprobe_sweep": sweep,
        "vectors": count,
        "dim": int(base.shape[1]),
        "index_kind": index.kind,
        "faiss_threads": faiss.omp_get_max_threads(),
        "draw_seconds": round(draw_seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "index_file_mb": round((folder / "index.faiss").stat().st_size / 2**20, 1),
        "vector_file_mb": round((folder / "vectors.f32").stat().st_size / 2**20, 1),
        "rss_index_mb": round(rss_after - rss_before, 1),
        "query_ms_p50": round(percentile(whole, 50), 2),
        "query_ms_p95": round(percentile(whole, 95), 2),
        "ann_ms_p50": round(percentile(ann_only, 50), 3),
        "ann_ms_p95": round(percentile(ann_only, 95), 3),
        "numpy_exact_ms_p50": round(percentile(exact_ms, 50), 2),
        "numpy_exact_ms_p95": round(percentile(exact_ms, 95), 2),
        "speedup_p50": round(percentile(exact_ms, 50) / percentile(ann_only, 50), 1),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "base": base_info,
    }


def stage_load(args: argparse.Namespace) -> dict[str, Any]:
    """Memory and latency of a saved index in a fresh process (what a restarted search pays)."""
    from kb.search.index import VectorIndex

    folder = OUT / f"ann-{args.n}"
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    before = {f: rss_mb(f) for f in ("RssAnon", "RssFile")}
    started = time.perf_counter()
    index = VectorIndex(folder, ENGLISH_MODEL)
    index.load()
    load_seconds = time.perf_counter() - started
    loaded = {f: rss_mb(f) for f in ("RssAnon", "RssFile")}
    whole, embed_ms, ann_ms = [], [], []
    for text in unique_texts(args.queries, seed=7):
        started = time.perf_counter()
        q = embedder.embed([text])[0]
        middle = time.perf_counter()
        index.search(q, 80)
        done = time.perf_counter()
        whole.append((done - started) * 1000)
        embed_ms.append((middle - started) * 1000)
        ann_ms.append((done - middle) * 1000)
    after = {f: rss_mb(f) for f in ("RssAnon", "RssFile")}
    return {
        "vectors": index.count,
        "load_seconds": round(load_seconds, 2),
        "index_heap_mb": round(loaded["RssAnon"] - before["RssAnon"], 1),
        "mapped_vectors_mb_after_queries": round(after["RssFile"] - before["RssFile"], 1),
        "heap_mb_after_queries": round(after["RssAnon"] - before["RssAnon"], 1),
        "query_ms_p50": round(percentile(whole, 50), 2),
        "query_ms_p95": round(percentile(whole, 95), 2),
        "embed_ms_p50": round(percentile(embed_ms, 50), 2),
        "embed_ms_p95": round(percentile(embed_ms, 95), 2),
        "ann_ms_p50": round(percentile(ann_ms, 50), 2),
        "ann_ms_p95": round(percentile(ann_ms, 95), 2),
    }


def _insert_descriptions(kb: Any, n: int) -> tuple[float, int]:
    """Write ``n`` generated descriptions of ``n // 3`` features into the knowledge base's SQL;
    returns the seconds taken and the number of features (the texts die with this call)."""
    from sqlalchemy import insert

    from kb.registry import now, text_hash
    from schema.sql import descriptions, features

    n_features = max(n // 3, 1)
    started = time.perf_counter()
    with kb.engine.begin() as conn:
        for start in range(0, n_features, 50_000):
            rows = [{"id": i + 1, "transcoder_set": "gemma-2-2b/clt-hp", "layer": i % 26, "index": i} for i in range(start, min(start + 50_000, n_features))]
            conn.execute(insert(features), rows)
        stamp = now()
        texts = search_texts.descriptions(n, seed=5)
        batch: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            batch.append({"feature_id": i % n_features + 1, "source": "neuronpedia", "kind": "bench", "author": "bench", "text": text, "text_hash": text_hash(text), "created_at": stamp})
            if len(batch) == 50_000:
                conn.execute(insert(descriptions), batch)
                batch = []
        if batch:
            conn.execute(insert(descriptions), batch)
    return time.perf_counter() - started, n_features


def stage_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from kb.api import KB
    from kb.config import Config
    from kb.search import search

    # the default search: the English and the multilingual model fused in one vector
    embedder = shared_embedder(None)
    assert isinstance(embedder, FusedEmbedder)
    scale = np.float32((1.0 / len(embedder.parts)) ** 0.5)
    base = np.concatenate([base_vectors(args.base, part)[1] * scale for part in embedder.parts], axis=1)
    home = OUT / f"kb-{args.n}"
    shutil.rmtree(home, ignore_errors=True)
    kb = KB.open(Config.load(home=home, env={}))
    insert_seconds, n_features = _insert_descriptions(kb, args.n)
    engine = kb.searcher(embedder)
    started = time.perf_counter()
    engine.sync(embed=False)
    catalog_seconds = time.perf_counter() - started
    n_texts = engine.catalog.n_texts()
    folder = home / "search" / model_slug(embedder.name)
    write_vectors(folder, embedder.name, drawn_vectors(base, n_texts, seed=4))
    started = time.perf_counter()
    engine.sync()  # loads the vectors, builds the index
    build_seconds = time.perf_counter() - started

    kb.close()
    built = {
        "descriptions": args.n,
        "distinct_texts": n_texts,
        "features": n_features,
        "sql_insert_seconds": round(insert_seconds, 1),
        "catalog_sync_seconds": round(catalog_seconds, 1),
        "index_build_seconds": round(build_seconds, 1),
    }
    # the queries are timed in a process that opens the knowledge base, as one serving searches
    # does: in the process that built it, what the build left in memory slowed the p95 by a quarter
    timed = subprocess.run(
        [sys.executable, "-m", "bench.search", "--stage", "queries", "--n", str(args.n), "--queries", str(args.queries)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return {**built, **json.loads(timed.stdout)}


def stage_queries(args: argparse.Namespace) -> dict[str, Any]:
    """The timed part of ``pipeline``, on the knowledge base it built."""
    from kb.api import KB
    from kb.config import Config
    from kb.search import search

    load_before = round(os.getloadavg()[0], 2)
    home = OUT / f"kb-{args.n}"
    if not (home / "search").exists():
        raise SystemExit(f"{home} holds no search index; run --stage pipeline --n {args.n} first")
    embedder = shared_embedder(None)
    kb = KB.open(Config.load(home=home, env={}))
    queries = unique_texts(args.queries, seed=7)
    search(kb, "warm up", k=20, embedder=embedder)
    # a warm process: the query models have handed over to ONNX Runtime (kb.search.onnx_models)
    onnx_ready = warm_queries(embedder, timeout=300)
    search(kb, "warm up again", k=20, embedder=embedder)
    times: list[float] = []
    embed_times: list[float] = []
    for text in queries:
        started = time.perf_counter()
        search(kb, text, k=20, embedder=embedder)
        times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        embedder.embed_query(text)  # the same work the search did first, timed alone
        embed_times.append((time.perf_counter() - started) * 1000)
    kw_times = _timed(lambda t: search(kb, t, k=20, mode="keyword", embedder=embedder), queries)
    kb.close()
    return {
        "queries_on_onnx_runtime": onnx_ready,
        "search_ms_p50": round(percentile(times, 50), 1),
        "search_ms_p95": round(percentile(times, 95), 1),
        "query_embed_ms_p50": round(percentile(embed_times, 50), 1),
        "query_embed_ms_p95": round(percentile(embed_times, 95), 1),
        "search_minus_embed_ms_p50": round(percentile([t - e for t, e in zip(times, embed_times)], 50), 1),
        "search_minus_embed_ms_p95": round(percentile([t - e for t, e in zip(times, embed_times)], 95), 1),
        "keyword_search_ms_p50": round(percentile(kw_times, 50), 1),
        "keyword_search_ms_p95": round(percentile(kw_times, 95), 1),
        "load_average_1min_before_queries": load_before,
    }


def _timed(fn: Callable[[str], Any], queries: list[str]) -> list[float]:
    times = []
    for text in queries:
        started = time.perf_counter()
        fn(text)
        times.append((time.perf_counter() - started) * 1000)
    return times


def stage_relevance(args: argparse.Namespace) -> dict[str, Any]:
    from kb.api import KB
    from kb.config import Config
    from kb.featuremeta import add_label, import_feature_metadata
    from kb.search import relevance, search

    rel = relevance.load(ROOT / "tests" / "relevance.yaml")
    with tempfile.TemporaryDirectory() as home:
        kb = KB.open(Config.load(home=home, env={}))
        kb.ingest([DATA / "graphs"])
        import_feature_metadata(kb, [DATA / "features"])
        for feature, text, author in rel.labels:
            add_label(kb, feature, text, author)
        out: dict[str, Any] = {"queries": len(rel.cases), "languages": rel.languages, "modes": {}, "per_query": {}}
        for mode in ("blend", "semantic", "keyword"):
            ranked = functools.lru_cache(maxsize=None)(lambda q, mode=mode: tuple(h.feature for h in search(kb, q, k=10, mode=mode)))
            scores = relevance.measure(rel, ranked)
            out["modes"][mode] = relevance.as_report(scores)
            # the same figures on each half of the concepts: a tuning that holds on the half it was not tuned on
            out.setdefault("halves", {})[mode] = [relevance.as_report(relevance.measure(half, ranked)) for half in rel.halves()]
            for s in scores.values():
                for case, recall, rr in s.per_case:
                    row = out["per_query"].setdefault(f"{case.language}: {case.query}", {})
                    row[f"{mode}_recall"], row[f"{mode}_rr"] = round(recall, 2), round(rr, 2)
        kb.close()
    return out


# the phases of a cold `circuitkb search`, timed inside one new process (printed as JSON)
_PHASES = """
import json, sys, time
started = time.perf_counter()
marks = {}
def mark(name):
    marks[name] = round(time.perf_counter() - started, 4)
from kb.cli import main
mark("cli_imported")
from kb.api import KB
from kb.config import Config
from kb.search import search
import kb.cli.search
mark("modules_imported")
kb = KB.open(Config.load(home=sys.argv[1]))
mark("kb_opened")
searcher = kb.searcher()
searcher.sync()
mark("index_loaded")
searcher._embed_query(sys.argv[2])
mark("query_embedded")
hits = search(kb, sys.argv[2], k=20)
mark("searched")
heavy = sorted(m for m in ("torch", "pandas", "alembic", "faiss", "neo4j", "onnxruntime", "onnx") if m in sys.modules)
print(json.dumps({"marks": marks, "hits": len(hits), "heavy_modules": heavy}))
"""


def stage_cold(args: argparse.Namespace) -> dict[str, Any]:
    """``circuitkb search`` from a new process, ``--runs`` times, on the real graphs and the layer-20
    explanations ingested into a temporary home (the first search, which embeds them, is not timed)."""
    import subprocess
    import sys

    query = "say a capital city"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITKB_")}
    with tempfile.TemporaryDirectory() as home:
        cli = [sys.executable, "-m", "kb.cli", "--home", home]
        subprocess.run([*cli, "ingest", str(DATA / "graphs")], env=env, check=True, capture_output=True)
        subprocess.run([*cli, "features", "import", str(DATA / "features")], env=env, check=True, capture_output=True)
        subprocess.run([*cli, "search", "warm up"], env=env, check=True, capture_output=True)
        load_before = os.getloadavg()
        walls, users, systems = [], [], []
        for _ in range(args.runs):
            before = os.times()
            started = time.perf_counter()
            subprocess.run([*cli, "search", query], env=env, check=True, capture_output=True)
            walls.append(time.perf_counter() - started)
            after = os.times()
            users.append(after.children_user - before.children_user)
            systems.append(after.children_system - before.children_system)
        phases = [json.loads(subprocess.run([sys.executable, "-c", _PHASES, home, query], env=env, check=True, capture_output=True, text=True).stdout)
                  for _ in range(min(args.runs, 5))]
        load_after = os.getloadavg()
    marks = {name: round(percentile([p["marks"][name] for p in phases], 50), 3) for name in phases[0]["marks"]}
    return {
        "query": query,
        "runs": args.runs,
        "wall_s_p50": round(percentile(walls, 50), 3),
        "wall_s_max": round(max(walls), 3),
        "user_cpu_s_p50": round(percentile(users, 50), 3),
        "system_cpu_s_p50": round(percentile(systems, 50), 3),
        "in_process_s_p50_since_start": marks,
        "heavy_modules_loaded": phases[0]["heavy_modules"],
        "python_writes_bytecode": not sys.flags.dont_write_bytecode,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


STAGES = {
    "embed": stage_embed,
    "throughput": stage_throughput,
    "index": stage_index,
    "load": stage_load,
    "pipeline": stage_pipeline,
    "queries": stage_queries,
    "relevance": stage_relevance,
    "cold": stage_cold,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=sorted(STAGES), required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20, help="cold stage: how many new processes")
    args = parser.parse_args()
    result = STAGES[args.stage](args)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
