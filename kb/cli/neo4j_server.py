"""``circuitkb neo4j``: a local Neo4j Community server for development and tests."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kb.cli.options import neo4j_dir_option


@click.group()
def neo4j() -> None:
    """A local Neo4j Community server for development and tests (from Maven Central)."""


def _neo4j_home(ctx: click.Context, folder: Path | None) -> Path:
    return folder or ctx.obj["config"].home / "neo4j"


@neo4j.command("start")
@neo4j_dir_option
@click.option("--port", default=7687, show_default=True, help="Bolt port.")
@click.option("--heap", default="1g", show_default=True, help="Java heap size.")
@click.pass_context
def neo4j_start(ctx: click.Context, folder: Path | None, port: int, heap: str) -> None:
    """Start it (building it on first use) and wait until Bolt answers."""
    from devserver import neo4j as neo4j_dev

    info = neo4j_dev.start(_neo4j_home(ctx, folder), port=port, heap=heap)
    click.echo(f"Neo4j is up at {info.uri} (user {info.user}; password in {info.home / 'password'})")
    click.echo(f"  export CIRCUITKB_NEO4J_URI={info.uri} CIRCUITKB_NEO4J_USER={info.user}")
    click.echo(f"  export CIRCUITKB_NEO4J_PASSWORD=$(cat {info.home / 'password'})")


@neo4j.command("stop")
@neo4j_dir_option
@click.pass_context
def neo4j_stop(ctx: click.Context, folder: Path | None) -> None:
    """Stop it."""
    from devserver import neo4j as neo4j_dev

    was_running = neo4j_dev.stop(_neo4j_home(ctx, folder))
    click.echo("stopped" if was_running else "was not running")


@neo4j.command("status")
@neo4j_dir_option
@click.pass_context
def neo4j_status(ctx: click.Context, folder: Path | None) -> None:
    """Say whether it runs, and where. Exit status 1 if it does not."""
    from devserver import neo4j as neo4j_dev

    info = neo4j_dev.status(_neo4j_home(ctx, folder))
    if info is None:
        click.echo("not running")
        sys.exit(1)
    click.echo(f"running at {info.uri} (pid {info.pid})")


COMMANDS: list[click.Command] = [neo4j]
