"""``circuitkb aggregates``: check the aggregates over all graphs against the graph store, or rebuild them."""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from kb.cli.options import json_option, open_kb
from kb.cli.output import echo_json


@click.group("aggregates")
def aggregates_group() -> None:
    """The per-feature and per-edge aggregates that the questions over all graphs read."""


def _bar(total: int, enabled: bool) -> tuple[Any, Callable[[str], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="graph", disable=not enabled, file=sys.stderr, dynamic_ncols=True)
    return bar, lambda _slug: bar.update(1)


@aggregates_group.command("check")
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, as_json: bool) -> None:
    """Recompute the aggregates from every graph's nodes and links and compare them with the
    kept ones; print the differences. Exit status 1 when there is any."""
    from kb.aggregates.check import check

    with open_kb(ctx) as kb:
        bar, tick = _bar(len(kb.graph_ids()), not as_json and sys.stderr.isatty())
        try:
            report = check(kb, tick)
        finally:
            bar.close()
    if as_json:
        echo_json(report.as_dict())
    elif report.ok:
        click.echo(f"the aggregates are exact over the {report.graphs} visible graphs")
    else:
        click.echo(f"{report.n_differences} differences over the {report.graphs} visible graphs:")
        for line in report.differences:
            click.echo(f"  {line}")
        if report.n_differences > len(report.differences):
            click.echo(f"  ... and {report.n_differences - len(report.differences)} more")
        click.echo("(`circuitkb aggregates rebuild` recomputes them)")
    if not as_json:
        for note in report.notes:
            click.echo(f"note: {note}")
    sys.exit(0 if report.ok else 1)


@aggregates_group.command("rebuild")
@click.pass_context
def rebuild_cmd(ctx: click.Context) -> None:
    """Recompute the aggregates from every graph's nodes and links in the graph store (after an
    upgrade that could not fill them, or when `check` finds differences)."""
    from kb.aggregates.check import rebuild

    with open_kb(ctx) as kb:
        bar, tick = _bar(len(kb.graph_ids()), sys.stderr.isatty())
        try:
            n = rebuild(kb, tick)
        finally:
            bar.close()
    click.echo(f"rebuilt the aggregates of {n} graphs")


COMMANDS: list[click.Command] = [aggregates_group]
