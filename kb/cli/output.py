"""How ``circuitkb`` commands print: JSON, aligned tables, and the numbers and features in them."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_table(rows: list[dict[str, Any]]) -> None:
    """Print rows as an aligned text table (nothing for no rows)."""
    if rows:
        import pandas as pd  # heavy: only the commands that print tables pay for it

        click.echo(pd.DataFrame(rows).to_string(index=False))


def echo_more(shown: int, total: int) -> None:
    """Say how many rows a table left out."""
    if total > shown:
        click.echo(f"... {total - shown} more (--limit, or --json for all)")


def number(value: Any, digits: int = 3) -> str:
    """A number in ``digits`` significant digits for a table; blank when missing."""
    return "" if _missing(value) else f"{value:.{digits}g}"


def feature_text(row: Any, prefix: str = "", *, with_set: bool = True) -> str:
    """A feature as ``set/L{layer}/{index}`` (or ``L{layer}/{index}``) from the columns
    {prefix}transcoder_set, layer and index of a dict or a named tuple; blank for no feature."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    tset = get(f"{prefix}transcoder_set")
    if _missing(tset):
        return ""
    short = f"L{int(get(prefix + 'layer'))}/{int(get(prefix + 'index'))}"
    return f"{tset}/{short}" if with_set else short


def _missing(value: Any) -> bool:
    """None, NaN, or pandas' NA / NaT (a blank cell of a data frame)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT; pd.NA answers NA, which bool() refuses
    except TypeError:
        return True


def short_text(text: str, width: int = 100) -> str:
    """Text on one line, cut to ``width`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
