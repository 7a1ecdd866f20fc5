"""Write BENCHMARKS.md from the reports in bench/results/ (each benchmark writes its own).

    python -m bench.assemble

Headings of each report move one level down under the page's own; nothing is measured here.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REPORTS = ("ingest", "search", "analysis-features", "analysis-circuits", "app", "labels")

HEADER = """# Benchmarks

All figures were measured on this project's machine kind: 2 cores, 24 GiB, x86_64, no GPU, CPython
3.11.7, on the dates given in each section (UTC). Other sessions' test suites and benchmarks often
ran on the same machine (the load average of each run is recorded in its section), so absolute
latencies and rates are pessimistic: compare the ratios within one run. Each section names the
command that produced it.

| area | command | section |
| --- | --- | --- |
| ingest | `python -m bench.ingest --graphs 1000 --pg-url URL` | [Ingest](#ingest) |
| feature search | `python -m bench.search --stage relevance\\|index\\|load\\|pipeline` | [Feature search](#feature-search-relevance-and-performance) |
| shared features, used-by, languages | `python -m bench.analysis_features --size 1000\\|10000` | [Features across graphs](#features-across-graphs-shared-family-core-used-by-languages) |
| circuits, comparison, scores, pieces | `python -m bench.analysis_circuits --size 1000\\|10000` | [Circuits](#circuits-comparison-scores-pieces-of-big-graphs) |
| the app in a browser | `python -m bench.app --size 1000 --big-links 16000000` | [The app](#app-page-and-interaction-latency-in-a-real-browser) |
| labelling under parallel writers | `python -m bench.labels` | [Labelling](#collaborative-labelling-under-parallel-writers-postgresql) |
"""


def demote(text: str) -> str:
    """The report's title becomes a section (##), its sections subsections, and so on."""
    return "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())


def main() -> None:
    parts = [HEADER]
    for name in REPORTS:
        report = RESULTS / f"{name}.md"
        if report.exists():
            parts.append(demote(report.read_text(encoding="utf-8")))
    (ROOT / "BENCHMARKS.md").write_text("\n\n".join(parts).rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
