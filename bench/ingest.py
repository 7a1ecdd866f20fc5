"""Ingest throughput: links/s into each store, beside a naive loader and Neo4j's offline importer.

    python -m bench.ingest --graphs 1000 [--pg-url URL] [--large-links 16000000]

Generates the synthetic corpus (synth/), then in one run:
- ingests it into the embedded store on SQLite (and PostgreSQL with --pg-url) and into Neo4j
  (a development server this script starts), timing parse and store writes apart;
- writes links one per transaction into Neo4j (the naive loader) for a sample of graphs;
- converts the same corpus to CSV and runs `neo4j-admin database import full` on it;
- with --large-links, ingests one streamed graph file of that many links in a child process and
  reports its peak memory (maximum resident set size).
Prints a Markdown report and writes it to bench/results/ingest.md (``--out``); figures are
ratios within this run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from ingest.graphfile import read_graph
from ingest.paths import expand_paths
from synth import generate_corpus, write_large_graph
from devserver import neo4j as neo4j_dev
from kb.api import KB
from kb.config import Config
from devserver.neo4j_bulk import bulk_import


EMBEDDED_TARGET = 500_000
RESULTS = Path(__file__).resolve().parent / "results" / "ingest.md"


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system, all threads) that process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (the parsing process)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ingest_rate(kb: KB, corpus: Path, server_pid: int | None = None) -> dict[str, Any]:
    """Ingest the corpus; whole-ingest and per-writer rates (parsing runs in a child process
    beside the writers, so its seconds and the writers' overlap the wall time), and the CPU
    seconds of the client and, given its pid, of the database server."""
    load = os.getloadavg()
    client = client_cpu_seconds()
    server = cpu_seconds(server_pid) if server_pid else 0.0
    report = kb.ingest([corpus], manifest=corpus / "manifest.csv")
    client = client_cpu_seconds() - client
    server = cpu_seconds(server_pid) - server if server_pid else None
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed[:3]}")
    links = report.links
    write = sum(i["write_seconds"] for i in report.ingested)
    parse = sum(i["parse_seconds"] for i in report.ingested)
    writers = kb.store.concurrent_writes
    return {
        "graphs": len(report.ingested),
        "links": links,
        "total_s": report.seconds,
        "parse_s": parse,
        "write_s": write,
        "writers": writers,
        "links_per_s_total": links / report.seconds,
        "links_per_s_write": links / write * writers,
        "client_cpu_s": client,
        "server_cpu_s": server,
        "load_before": load,
        "load_after": os.getloadavg(),
    }


def naive_neo4j(info: neo4j_dev.ServerInfo, files: list[Path], max_links: int) -> dict[str, Any]:
    """One transaction per link: what a first script does."""
    from neo4j import GraphDatabase

    driver = GraphDatabase.driver(info.uri, auth=(info.user, info.password))
    done = 0
    started = time.perf_counter()
    with driver.session() as session:
        for gid, path in enumerate(files, start=10_000_000):
            graph = read_graph(path)
            session.run(
                "UNWIND $rows AS r CREATE (:NaiveNode {gid: $gid, idx: r})", gid=gid, rows=list(range(len(graph.nodes)))
            ).consume()
            for s, t, w in zip(graph.link_src.tolist(), graph.link_tgt.tolist(), graph.link_weight.tolist()):
                session.execute_write(
                    lambda tx: tx.run(
                        "MATCH (a:NaiveNode {gid: $gid, idx: $s}), (b:NaiveNode {gid: $gid, idx: $t}) CREATE (a)-[:NAIVE {w: $w}]->(b)",
                        gid=gid, s=s, t=t, w=w,
                    ).consume()
                )
                done += 1
                if done >= max_links:
                    break
            if done >= max_links:
                break
        elapsed = time.perf_counter() - started
        session.run("MATCH (n:NaiveNode) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
    driver.close()
    return {"links": done, "seconds": elapsed, "links_per_s": done / elapsed}


def corpus_to_csv(files: list[Path], out: Path) -> tuple[list[Path], list[Path], int]:
    """The corpus in neo4j-admin's CSV format: the same nodes and links the online store writes."""
    out.mkdir(parents=True, exist_ok=True)
    nodes_csv, features_csv, links_csv, is_csv = (out / n for n in ("nodes.csv", "features.csv", "links.csv", "is.csv"))
    features: dict[tuple, int] = {}
    n_links = 0
    with open(nodes_csv, "w", newline="") as fn, open(links_csv, "w", newline="") as fl, open(is_csv, "w", newline="") as fi:
        wn, wl, wi = csv.writer(fn), csv.writer(fl), csv.writer(fi)
        wn.writerow([":ID(Node)", "gid:long", "idx:long", "node_id", "kind", "layer", "layer_num:long", "ctx_idx:long", "activation:double", "influence:double", "clerp", ":LABEL"])
        wl.writerow([":START_ID(Node)", ":END_ID(Node)", "w:double", "i:long", ":TYPE"])
        wi.writerow([":START_ID(Node)", ":END_ID(Feature)", ":TYPE"])
        for gid, path in enumerate(files, start=1):
            graph = read_graph(path)
            for node in graph.nodes:
                key = f"{gid}:{node.idx}"
                wn.writerow([key, gid, node.idx, node.node_id, node.kind, node.layer, node.layer_num, node.ctx_idx,
                             "" if node.activation is None else node.activation, "" if node.influence is None else node.influence,
                             node.clerp or "", "Node"])
                if node.feature_key is not None:
                    fid = features.setdefault(node.feature_key, len(features) + 1)
                    wi.writerow([key, fid, "IS"])
            for i, (s, t, w) in enumerate(zip(graph.link_src.tolist(), graph.link_tgt.tolist(), graph.link_weight.tolist())):
                wl.writerow([f"{gid}:{s}", f"{gid}:{t}", w, i, "LINK"])
            n_links += graph.n_links
    with open(features_csv, "w", newline="") as ff:
        wf = csv.writer(ff)
        wf.writerow([":ID(Feature)", "fid:long", "transcoder_set", "layer:long", "index:long", ":LABEL"])
        for key, fid in features.items():
            wf.writerow([fid, fid, key.transcoder_set, key.layer, key.index, "Feature"])
    return [nodes_csv, features_csv], [links_csv, is_csv], n_links


def peak_memory_of_large_ingest(work: Path, n_links: int) -> dict[str, Any]:
    big = work / "large.json"
    if not big.exists():
        write_large_graph(big, n_links=n_links, n_nodes=14_000, seed=7)
    home = work / "large-home"
    started = time.perf_counter()
    code = (
        "import resource, sys; from kb.cli import main; "
        "sys.argv=['circuitkb','--home',sys.argv[1],'ingest',sys.argv[2],'--json']; "
        "\ntry:\n    main()\nexcept SystemExit as e:\n    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); raise"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(home), str(big)], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"large ingest failed: {proc.stderr[-2000:]}")
    max_rss_kb = int(proc.stderr.strip().splitlines()[-1])
    return {"file_bytes": big.stat().st_size, "links": n_links, "seconds": elapsed, "peak_rss_bytes": max_rss_kb * 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("bench/out/ingest"))
    parser.add_argument("--pg-url", help="PostgreSQL URL of an empty database for the embedded store on PostgreSQL")
    parser.add_argument("--naive-links", type=int, default=3000, help="links the naive loader writes (it is slow)")
    parser.add_argument("--large-links", type=int, default=0, help="also ingest one streamed graph of this many links")
    parser.add_argument("--neo4j-port", type=int, default=7699)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the report is written")
    args = parser.parse_args()
    work: Path = args.work
    corpus = work / f"corpus-{args.graphs}"
    if not (corpus / "manifest.csv").exists():
        t = time.perf_counter()
        generate_corpus(corpus, args.graphs, seed=0, workers=2)
        print(f"generated {args.graphs} graphs in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    files = expand_paths([corpus])
    results: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        tmp_path = Path(tmp)
        with KB.open(Config.load(home=tmp_path / "sqlite", env={})) as kb:
            results["embedded (SQLite)"] = ingest_rate(kb, corpus)
        if args.pg_url:
            with KB.open(Config.load(home=tmp_path / "pg", env={"CIRCUITKB_SQL_URL": args.pg_url})) as kb:
                results["embedded (PostgreSQL)"] = ingest_rate(kb, corpus)
        server_home = tmp_path / "neo4j"
        info = neo4j_dev.start(server_home, port=args.neo4j_port, heap="2g")
        try:
            env = {"CIRCUITKB_NEO4J_URI": info.uri, "CIRCUITKB_NEO4J_USER": info.user, "CIRCUITKB_NEO4J_PASSWORD": info.password}
            with KB.open(Config.load(home=tmp_path / "n4j", env=env)) as kb:
                results["neo4j (online, batched)"] = ingest_rate(kb, corpus, server_pid=info.pid)
            results["neo4j naive (1 link per transaction)"] = naive_neo4j(info, files, args.naive_links)
        finally:
            neo4j_dev.stop(server_home)
        t = time.perf_counter()
        node_files, rel_files, n_links = corpus_to_csv(files, tmp_path / "csv")
        csv_seconds = time.perf_counter() - t
        import_seconds = bulk_import(tmp_path / "neo4j", "neo4j", node_files, rel_files)
        results["neo4j-admin import (offline)"] = {"links": n_links, "csv_s": csv_seconds, "import_s": import_seconds, "links_per_s": n_links / import_seconds}
        if args.large_links:
            results["large file (embedded, SQLite)"] = peak_memory_of_large_ingest(work, args.large_links)

    report = render(args.graphs, results)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n", encoding="utf-8")
    (work / f"results-{args.graphs}.json").write_text(json.dumps(results, indent=2))


def render(n_graphs: int, results: dict[str, Any]) -> str:
    loads = ", ".join(
        f"{name} {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}" for name, r in results.items() if "load_before" in r
    )
    lines = [
        f"### Ingest, {n_graphs} generated graphs ({date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end)",
        "",
        f"1-minute load average before -> after each ingest: {loads}.",
        "",
        "| loader | links | seconds | links/s | vs offline importer |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    offline = results["neo4j-admin import (offline)"]["links_per_s"]
    for name, r in results.items():
        if name.startswith("large"):
            continue
        if "links_per_s_total" in r:
            lines.append(
                f"| {name}: whole ingest (parse + write) | {r['links']:,} | {r['total_s']:.1f} | {r['links_per_s_total']:,.0f} | {r['links_per_s_total'] / offline:.2f} |"
            )
            writers = r.get("writers", 1)
            per = f", {writers} writers at once (rate: links / writing seconds of one writer x {writers})" if writers > 1 else ""
            lines.append(
                f"| {name}: store writes only{per} | {r['links']:,} | {r['write_s'] / writers:.1f} | {r['links_per_s_write']:,.0f} | {r['links_per_s_write'] / offline:.2f} |"
            )
        elif "import_s" in r:
            lines.append(f"| {name} (CSV written in {r['csv_s']:.1f} s, not counted) | {r['links']:,} | {r['import_s']:.1f} | {r['links_per_s']:,.0f} | 1.00 |")
        else:
            lines.append(f"| {name} | {r['links']:,} | {r['seconds']:.1f} | {r['links_per_s']:,.0f} | {r['links_per_s'] / offline:.3f} |")
    lines.append("")
    for name, r in results.items():
        if name.startswith("embedded") and "links_per_s_total" in r:
            rate = r["links_per_s_total"]
            lines.append(f"Target {name} whole ingest >= 500,000 links/s: {'met' if rate >= EMBEDDED_TARGET else 'not met'} ({rate:,.0f}).")
        elif name.startswith("neo4j (online") and "links_per_s_total" in r:
            ratio = r["links_per_s_total"] / offline
            lines.append(f"Target {name} whole ingest >= 1/3 of the offline importer: {'met' if ratio >= 1 / 3 else 'not met'} ({ratio:.2f}).")
    for name, r in results.items():
        if r.get("server_cpu_s"):
            per_link = r["server_cpu_s"] / r["links"]
            cores = os.cpu_count() or 1
            lines.append(
                f"{name}: the server used {per_link * 1e6:.1f} us of CPU per link, the client {r['client_cpu_s'] / r['links'] * 1e6:.1f} us "
                f"(parsing included); with all {cores} cores given to the server, its writes could reach at most "
                f"{cores / per_link:,.0f} links/s, {cores / per_link / offline:.2f} of the offline importer."
            )
    large = results.get("large file (embedded, SQLite)")
    if large:
        lines += [
            "",
            f"One graph file of {large['file_bytes'] / 1e9:.2f} GB ({large['links']:,} links) ingested into the embedded store "
            f"in {large['seconds']:.0f} s with a peak resident memory of {large['peak_rss_bytes'] / 1e9:.2f} GB "
            f"(target: under 1 GB; {'met' if large['peak_rss_bytes'] < 1e9 else 'not met'}).",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
