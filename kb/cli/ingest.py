"""``circuitkb`` commands that put graphs in, list them and take them out: ingest, graphs, remove, stats, export, config."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from kb.cli.options import actor_of, as_option, json_option, open_kb, selection_options
from kb.cli.output import echo_json, echo_more, echo_table, short_text
from kb.errors import CircuitKBError
from kb.selection import Selection


@click.command("config")
@click.pass_context
def config_cmd(ctx: click.Context) -> None:
    """Show the configuration in force (secrets masked)."""
    echo_json(ctx.obj["config"].describe())


class _IngestBar:
    """A progress bar over graphs that also shows links/s."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="graph", disable=not enabled, file=sys.stderr, dynamic_ncols=True)
        self.links = 0
        self.started = time.perf_counter()

    def on_links(self, n: int) -> None:
        self.links += n
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{self.links / elapsed:,.0f} links/s", refresh=False)

    def on_graph(self, path: str, outcome: str) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_ingest(ctx: click.Context, paths: tuple[str, ...], manifest: Path | None, on_change: str, as_json: bool, as_name: str | None = None) -> int:
    from ingest import graphfile
    from ingest.paths import expand_paths
    from kb.ingestion import IngestProgress

    total = len(expand_paths(paths))
    bar = _IngestBar(total, enabled=not as_json and sys.stderr.isatty())
    # a file's warnings are in the report, printed once below (or in the JSON), not logged as well
    reader_log = logging.getLogger(graphfile.__name__)
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    try:
        with open_kb(ctx) as kb:
            actor = actor_of(kb, as_name)
            report = kb.ingest(paths, manifest=manifest, on_change=on_change, progress=IngestProgress(bar.on_links, bar.on_graph), actor=actor)
    finally:
        reader_log.setLevel(level)
        bar.close()
    if as_json:
        echo_json(report.as_dict())
    else:
        rate = report.links / report.seconds if report.seconds else 0.0
        click.echo(
            f"ingested {len(report.ingested)}, skipped {len(report.skipped)}, failed {len(report.failed)} "
            f"({report.links:,} links in {report.seconds:.1f} s, {rate:,.0f} links/s)"
        )
        for item in report.failed:
            click.echo(f"  failed: {item['error']}", err=True)
        for warning in report.warnings:
            click.echo(f"  warning: {warning}", err=True)
    return 1 if report.failed else 0


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="CSV or YAML tagging files with family, language, tags.")
@click.option("--on-change", type=click.Choice(["replace", "skip", "fail"]), default="replace", show_default=True, help="What to do when a slug is stored with other content.")
@as_option
@json_option
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], manifest: Path | None, on_change: str, as_name: str | None, as_json: bool) -> None:
    """Ingest graph files (.json, .json.gz), folders or globs. Exit status 1 if any file failed.

    Once the knowledge base has accounts, only an admin may add graphs (--as NAME).
    """
    sys.exit(run_ingest(ctx, paths, manifest, on_change, as_json, as_name))


@click.command()
@click.argument("slugs", nargs=-1, required=True)
@as_option
@json_option
@click.pass_context
def remove(ctx: click.Context, slugs: tuple[str, ...], as_name: str | None, as_json: bool) -> None:
    """Remove graphs by slug: their nodes, links, clerps and their part of the aggregates.

    All or none: an unknown slug is an error and nothing is removed. Once the knowledge base
    has accounts, only an admin may remove graphs (--as NAME).
    """
    with open_kb(ctx) as kb:
        report = kb.remove(slugs, actor_of(kb, as_name))
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(f"removed {len(report.removed)} graph{'' if len(report.removed) == 1 else 's'}: {', '.join(report.removed)}")


@click.command("graphs")
@selection_options
@click.option("--limit", default=40, show_default=True, help="Rows to print (--json prints every graph).")
@json_option
@click.pass_context
def graphs_cmd(ctx: click.Context, selection: Selection, limit: int, as_json: bool) -> None:
    """The stored graphs (all, or those the options choose): slug, language, family, tags, prompt."""
    with open_kb(ctx) as kb:
        chosen = kb.select(selection)
    if as_json:
        echo_json([g.as_dict() for g in chosen])
        return
    if not chosen:
        click.echo("no graph matches" if not selection.is_empty() else "no graph yet: circuitkb ingest FILES (or circuitkb demo)")
        return
    echo_table(
        [
            {
                "slug": g.slug,
                "language": g.language or "",
                "family": g.family or "",
                "tags": ",".join(g.tags),
                "transcoder set": g.transcoder_set,
                "prompt": short_text(g.prompt, 60),
            }
            for g in chosen[:limit]
        ]
    )
    echo_more(min(limit, len(chosen)), len(chosen))


@click.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts of graphs, nodes, links, features and descriptions."""
    with open_kb(ctx) as kb:
        data = kb.stats()
    if as_json:
        echo_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key:>20}: {value:,}" if isinstance(value, int) else f"{key:>20}: {value}")


@click.command()
@click.argument("slug")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: standard output). A name ending .gz is compressed.")
@click.pass_context
def export(ctx: click.Context, slug: str, output: Path | None) -> None:
    """Write a stored graph back as graph JSON (loads in circuit-tracer's and Neuronpedia's viewers)."""
    with open_kb(ctx) as kb:
        doc = kb.export(slug)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    if output is None:
        click.echo(text)
        return
    try:
        if output.name.endswith(".gz"):
            import gzip

            with gzip.open(output, "wt", encoding="utf-8") as fh:
                fh.write(text)
        else:
            output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CircuitKBError(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"wrote {output}", err=True)


COMMANDS: list[click.Command] = [config_cmd, ingest, graphs_cmd, remove, stats, export]
