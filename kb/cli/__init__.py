"""The ``circuitkb`` command. Every command calls the ``kb`` API; none talks to a database itself.

One click group, ``main``; each family of commands lives in its own module and is added here.
Options that several commands share are in ``kb.cli.options``; how results print, in
``kb.cli.output``. Errors are handled once, by the group.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from kb.cli import aggregates, analysis, app, circuits, demo, families, features, ingest, labels, neo4j_server, search
from kb.config import SETTINGS, Config
from kb.errors import CircuitKBError


class CircuitKBGroup(click.Group):
    """The root group: our own errors, wherever a command raises them, become one line on
    stderr and exit status 2, without a traceback. Other exceptions are bugs and show theirs."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CircuitKBError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=CircuitKBGroup, epilog="Settings: " + "; ".join(f"{s.env}: {s.help}" for s in SETTINGS))
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Data folder (default $CIRCUITKB_HOME or ~/.circuitkb).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.pass_context
def main(ctx: click.Context, home: Path | None, verbose: bool) -> None:
    """circuitkb: a knowledge base of traced attribution graphs."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["config"] = Config.load(home=home)


for _module in (ingest, features, search, analysis, families, circuits, aggregates, labels, demo, app, neo4j_server):
    for _command in _module.COMMANDS:
        main.add_command(_command)
