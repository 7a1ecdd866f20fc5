"""Options and helpers shared by every ``circuitkb`` command."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click
import pandas as pd

from kb.config import Config
from kb.errors import CircuitKBError


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our own errors into one line on stderr and exit status 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CircuitKBError as exc:
            _fail(str(exc))

    return wrapper


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(fn)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def open_kb(ctx: click.Context):  # noqa: ANN201
    """The KB of the configuration the ``circuitkb`` group read."""
    from kb.api import KB

    config: Config = ctx.find_root().obj["config"]
    return KB.open(config)


def selection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options that choose graphs; the command receives them as one ``selection`` argument."""
    from kb.selection import Selection

    @click.option("--graph", "slugs", multiple=True, help="A graph slug (repeatable).")
    @click.option("--tag", "tags", multiple=True, help="Graphs with this tag (repeatable: all must match).")
    @click.option("--family", help="Graphs of this prompt family.")
    @click.option("--language", "languages", multiple=True, help="Graphs in this language, e.g. en (repeatable: any).")
    @click.option("--model", help="Model id or transcoder set.")
    @click.option("--prompt", "prompt_contains", help="Graphs whose prompt contains this text.")
    @click.option("--set", "saved_set", help="A saved set of graphs.")
    @functools.wraps(fn)
    def wrapper(*args: Any, slugs, tags, family, languages, model, prompt_contains, saved_set, **kwargs: Any) -> Any:  # noqa: ANN001
        kwargs["selection"] = Selection(
            slugs=tuple(slugs),
            tags=tuple(tags),
            family=family,
            languages=tuple(languages),
            model=model,
            prompt_contains=prompt_contains,
            saved_set=saved_set,
        )
        return fn(*args, **kwargs)

    return wrapper


def echo_table(rows: list[dict[str, Any]]) -> None:
    """Print rows as an aligned text table (nothing for no rows)."""
    if rows:
        click.echo(pd.DataFrame(rows).to_string(index=False))


def number(value: Any, digits: int = 3) -> str:
    """A number in ``digits`` significant digits for a table; blank when missing."""
    return "" if value is None or pd.isna(value) else f"{value:.{digits}g}"


def feature_text(row: Any, prefix: str = "", *, with_set: bool = True) -> str:
    """A feature as ``set/L{layer}/{index}`` (or ``L{layer}/{index}``) from the columns
    {prefix}transcoder_set, layer and index of a dict or a named tuple; blank for no feature."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    tset = get(f"{prefix}transcoder_set")
    if tset is None or pd.isna(tset):
        return ""
    short = f"L{int(get(prefix + 'layer'))}/{int(get(prefix + 'index'))}"
    return f"{tset}/{short}" if with_set else short
