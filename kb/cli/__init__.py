"""The ``circuitkb`` command. Every command calls the ``kb`` API; none talks to a database itself.

One click group, ``main``; each family of commands lives in its own module, named here in
:data:`COMMAND_MODULES` and imported only when one of its commands runs (or ``--help`` lists
them), so that ``circuitkb search`` loads neither pandas nor the other families' code.
Options that several commands share are in ``kb.cli.options``; how results print, in
``kb.cli.output``. Errors are handled once, by the group.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Iterator, Mapping

import click

from kb.config import SETTINGS, Config
from kb.errors import CircuitKBError

# every command of `circuitkb`, and the module whose COMMANDS list holds it
COMMAND_MODULES: dict[str, str] = {
    "config": "kb.cli.ingest",
    "ingest": "kb.cli.ingest",
    "graphs": "kb.cli.ingest",
    "stats": "kb.cli.ingest",
    "export": "kb.cli.ingest",
    "remove": "kb.cli.ingest",
    "features": "kb.cli.features",
    "search": "kb.cli.search",
    "shared": "kb.cli.analysis",
    "used-by": "kb.cli.analysis",
    "languages": "kb.cli.analysis",
    "sets": "kb.cli.analysis",
    "compare": "kb.cli.analysis",
    "scores": "kb.cli.analysis",
    "subgraph": "kb.cli.analysis",
    "families": "kb.cli.families",
    "circuits": "kb.cli.circuits",
    "aggregates": "kb.cli.aggregates",
    "users": "kb.cli.labels",
    "labels": "kb.cli.labels",
    "demo": "kb.cli.demo",
    "app": "kb.cli.app",
    "neo4j": "kb.cli.neo4j_server",
}


class LazyCommands(Mapping[str, click.Command]):
    """The root group's commands by name; a command's module is imported when it is first asked for."""

    def __init__(self, modules: Mapping[str, str]) -> None:
        self._modules = dict(modules)

    def __getitem__(self, name: str) -> click.Command:
        module = importlib.import_module(self._modules[name])
        for command in module.COMMANDS:
            if command.name == name:
                return command
        raise KeyError(f"{self._modules[name]} has no command {name!r} in its COMMANDS")

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


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


main.commands = LazyCommands(COMMAND_MODULES)  # type: ignore[assignment]
