"""The ``circuitkb`` command. Every command calls the ``kb`` API; none talks to a database itself."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from kb.cli_options import echo_json, handles_errors, json_option, open_kb
from kb.config import SETTINGS, Config

log = logging.getLogger("circuitkb")


@click.group(epilog="Settings: " + "; ".join(f"{s.env}: {s.help}" for s in SETTINGS))
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Data folder (default $CIRCUITKB_HOME or ~/.circuitkb).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.pass_context
@handles_errors
def main(ctx: click.Context, home: Path | None, verbose: bool) -> None:
    """circuitkb: a knowledge base of traced attribution graphs."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["config"] = Config.load(home=home)


@main.command("config")
@click.pass_context
def config_cmd(ctx: click.Context) -> None:
    """Show the configuration in force (secrets masked)."""
    echo_json(ctx.obj["config"].describe())


# --- ingest ----------------------------------------------------------------------------------


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


def run_ingest(ctx: click.Context, paths: tuple[str, ...], manifest: Path | None, on_change: str, as_json: bool) -> int:
    from ingest.paths import expand_paths
    from kb.ingestion import Progress

    total = len(expand_paths(paths))
    bar = _IngestBar(total, enabled=not as_json and sys.stderr.isatty())
    try:
        with open_kb(ctx) as kb:
            report = kb.ingest(paths, manifest=manifest, on_change=on_change, progress=Progress(bar.on_links, bar.on_graph))
    finally:
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


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="CSV or YAML tagging files with family, language, tags.")
@click.option("--on-change", type=click.Choice(["replace", "skip", "fail"]), default="replace", show_default=True, help="What to do when a slug is stored with other content.")
@json_option
@click.pass_context
@handles_errors
def ingest(ctx: click.Context, paths: tuple[str, ...], manifest: Path | None, on_change: str, as_json: bool) -> None:
    """Ingest graph files (.json, .json.gz), folders or globs. Exit status 1 if any file failed."""
    sys.exit(run_ingest(ctx, paths, manifest, on_change, as_json))


# --- feature metadata ----------------------------------------------------------------------------


@main.group()
def features() -> None:
    """Feature metadata: explanations, feature files, labels."""


@features.command("import")
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", help="Model id (e.g. gemma-2-2b) for Neuronpedia files that do not say it.")
@click.option("--source", help="Neuronpedia source id (e.g. 20-clt-hp) for files that do not say it.")
@click.option("--transcoder-set", help="Transcoder set of circuit-tracer feature files (e.g. mntss/clt-gemma-2-2b-2.5M).")
@click.option("--schema", type=click.IntRange(0, 1), default=1, show_default=True, help="Feature-id encoding of circuit-tracer feature files.")
@click.option("--author", help="Author of labels whose CSV row names none.")
@click.option("--kind", help="Explanation type to record when the file does not say it.")
@json_option
@click.pass_context
@handles_errors
def features_import(ctx: click.Context, paths: tuple[str, ...], model, source, transcoder_set, schema, author, kind, as_json: bool) -> None:  # noqa: ANN001
    """Import Neuronpedia explanations, circuit-tracer feature files or a CSV of labels."""
    from kb.featuremeta import import_feature_metadata

    with open_kb(ctx) as kb:
        report = import_feature_metadata(
            kb, list(paths), model=model, source=source, transcoder_set=transcoder_set, schema=schema, author=author, kind=kind
        )
    data = report.as_dict()
    if as_json:
        echo_json(data)
    else:
        summary = {k: v for k, v in data.items() if k not in ("failed", "files")}
        click.echo(f"files: {len(data.get('files', []))}, " + ", ".join(f"{k}: {v}" for k, v in summary.items()))
        for item in data.get("failed", []):
            click.echo(f"  failed: {item['error']}", err=True)
    sys.exit(1 if data.get("failed") else 0)


# --- inspecting ------------------------------------------------------------------------------


@main.command()
@json_option
@click.pass_context
@handles_errors
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts of graphs, nodes, links, features and descriptions."""
    with open_kb(ctx) as kb:
        data = kb.stats()
    if as_json:
        echo_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key:>20}: {value:,}" if isinstance(value, int) else f"{key:>20}: {value}")


@main.command()
@click.argument("slug")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: standard output). A name ending .gz is compressed.")
@click.pass_context
@handles_errors
def export(ctx: click.Context, slug: str, output: Path | None) -> None:
    """Write a stored graph back as graph JSON (loads in circuit-tracer's and Neuronpedia's viewers)."""
    with open_kb(ctx) as kb:
        doc = kb.export(slug)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    if output is None:
        click.echo(text)
        return
    if output.name.endswith(".gz"):
        import gzip

        with gzip.open(output, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)


# --- demo ------------------------------------------------------------------------------------


@main.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--graphs", "n_graphs", default=60, show_default=True, help="Size of the generated sample corpus.")
@click.option("--seed", default=0, show_default=True)
@click.pass_context
@handles_errors
def demo(ctx: click.Context, folder: Path | None, n_graphs: int, seed: int) -> None:
    """Generate a sample corpus and ingest it (or ingest FOLDER of real graphs), then say what to try."""
    config: Config = ctx.obj["config"]
    manifest: Path | None = None
    if folder is None:
        from synth import generate_corpus

        folder = config.home / "demo-corpus"
        click.echo(f"generating {n_graphs} synthetic graphs (seed {seed}) in {folder} ...")
        generate_corpus(folder, n_graphs, seed=seed)
    for name in ("manifest.csv", "manifest.yaml", "manifest.yml"):
        if (folder / name).is_file():
            manifest = folder / name
            break
    status = run_ingest(ctx, (str(folder),), manifest, "replace", as_json=False)
    with open_kb(ctx) as kb:
        data = kb.stats()
        graphs = kb.select()
    example = graphs[0].slug if graphs else "<slug>"
    family = next((g.family for g in graphs if g.family), "<family>")
    home = config.home
    click.echo(
        f"\nThe knowledge base in {home} holds {data['graphs']} graphs, {data['links']:,} links, "
        f"{data['features']:,} features.\nTry next:\n"
        f"  circuitkb --home {home} search \"say a capital\"\n"
        f"  circuitkb --home {home} shared --family {family} --json\n"
        f"  circuitkb --home {home} languages\n"
        f"  circuitkb --home {home} export {example} -o graph.json\n"
        f"  CIRCUITKB_HOME={home} streamlit run app/main.py"
    )
    sys.exit(status)


# --- development Neo4j -------------------------------------------------------------------------


@main.group()
def neo4j() -> None:
    """A local Neo4j Community server for development and tests (from Maven Central)."""


def _neo4j_home(ctx: click.Context, folder: Path | None) -> Path:
    return folder or ctx.obj["config"].home / "neo4j"


@neo4j.command("start")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), help="Server folder (default HOME/neo4j).")
@click.option("--port", default=7687, show_default=True)
@click.option("--heap", default="1g", show_default=True)
@click.pass_context
@handles_errors
def neo4j_start(ctx: click.Context, folder: Path | None, port: int, heap: str) -> None:
    """Start it (building it on first use) and wait until Bolt answers."""
    from devserver import neo4j as neo4j_dev

    info = neo4j_dev.start(_neo4j_home(ctx, folder), port=port, heap=heap)
    click.echo(f"Neo4j is up at {info.uri} (user {info.user}; password in {info.home / 'password'})")
    click.echo(f"  export CIRCUITKB_NEO4J_URI={info.uri} CIRCUITKB_NEO4J_USER={info.user}")
    click.echo(f"  export CIRCUITKB_NEO4J_PASSWORD=$(cat {info.home / 'password'})")


@neo4j.command("stop")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
@handles_errors
def neo4j_stop(ctx: click.Context, folder: Path | None) -> None:
    """Stop it."""
    from devserver import neo4j as neo4j_dev

    was_running = neo4j_dev.stop(_neo4j_home(ctx, folder))
    click.echo("stopped" if was_running else "was not running")


@neo4j.command("status")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
@handles_errors
def neo4j_status(ctx: click.Context, folder: Path | None) -> None:
    """Say whether it runs, and where. Exit status 1 if it does not."""
    from devserver import neo4j as neo4j_dev

    info = neo4j_dev.status(_neo4j_home(ctx, folder))
    if info is None:
        click.echo("not running")
        sys.exit(1)
    click.echo(f"running at {info.uri} (pid {info.pid})")


def _register_area_commands() -> None:
    from kb import cli_analysis, cli_circuits, cli_search

    for module in (cli_search, cli_analysis, cli_circuits):
        for command in module.COMMANDS:
            main.add_command(command)


_register_area_commands()

if __name__ == "__main__":
    main()
