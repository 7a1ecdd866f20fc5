"""Tables shared by the analysis benchmarks' reports (Markdown lines)."""

from __future__ import annotations

from typing import Any


def ms(seconds: float | None) -> str:
    """A duration as ``123.4 ms`` below ten seconds, ``12.3 s`` above; ``-`` for none."""
    if seconds is None:
        return "-"
    return f"{seconds:,.1f} s" if seconds >= 10 else f"{seconds * 1000:,.1f} ms"


def timing_table(rows: list[dict[str, Any]], stores: list[str]) -> list[str]:
    """One row per query: the pandas script's p50, then each store's p50, p95 and speed-up."""
    lines = ["| query | pandas p50 (runs) | " + " | ".join(f"{s} p50 | {s} p95 | speed-up" for s in stores) + " |"]
    lines.append("|---|---|" + "---|---|---|" * len(stores))
    for row in rows:
        pandas = row["pandas_p50"]
        cells = [row["query"], f"{ms(pandas)} ({row['pandas_runs']})" if pandas is not None else "not run"]
        for s in stores:
            p50 = row.get(f"{s}_p50")
            mark = "" if row.get(f"{s}_agrees", True) else " (disagrees!)"
            cells += [ms(p50) + mark, ms(row.get(f"{s}_p95")), f"{pandas / p50:,.0f}x" if p50 and pandas else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def growth_table(small: int, small_rows: list[dict[str, Any]], big: int, big_rows: list[dict[str, Any]], stores: list[str]) -> list[str]:
    """How each query's p50 grew from the smaller corpus to the bigger one, per store and pandas."""
    lines = [f"## Growth from {small:,} to {big:,} graphs (p50 ratio)", ""]
    lines += ["| query | " + " | ".join(stores) + " | pandas |", "|---|" + "---|" * (len(stores) + 1)]
    before = {r["query"]: r for r in small_rows}
    for row in big_rows:
        old = before.get(row["query"], {})
        cells = [row["query"]]
        for s in [*stores, "pandas"]:
            a, b = old.get(f"{s}_p50"), row.get(f"{s}_p50")
            cells.append(f"{b / a:.1f}x" if a and b else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def print_growth(runs: dict[int, dict[str, Any]]) -> None:
    """Print the growth table of the smallest and the largest size measured so far (each run a
    dict with ``rows`` and ``stores``), when there are two."""
    if len(runs) < 2:
        return
    small, big = min(runs), max(runs)
    print("\n".join(growth_table(small, runs[small]["rows"], big, runs[big]["rows"], runs[big]["stores"])))
