"""``circuitkb demo``: a sample corpus (or a folder of real graphs) ingested, and what to try next."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kb.cli.ingest import run_ingest
from kb.cli.options import open_kb
from kb.config import Config


@click.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--graphs", "n_graphs", default=60, show_default=True, help="Size of the generated sample corpus.")
@click.option("--seed", default=0, show_default=True, help="Seed of the generated corpus.")
@click.pass_context
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
        f"Open it in the browser:\n"
        f"  circuitkb --home {home} app"
    )
    sys.exit(status)


COMMANDS: list[click.Command] = [demo]
