"""``circuitkb features``: feature metadata (explanations, feature files, labels)."""

from __future__ import annotations

import sys

import click

from kb.cli.options import actor_of, as_option, json_option, open_kb
from kb.cli.output import echo_json


@click.group()
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
@as_option
@json_option
@click.pass_context
def features_import(ctx: click.Context, paths: tuple[str, ...], model, source, transcoder_set, schema, author, kind, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Import Neuronpedia explanations, circuit-tracer feature files or a CSV of labels.

    Once the knowledge base has accounts, only an admin may import (--as NAME).
    """
    from kb.featuremeta import import_feature_metadata

    with open_kb(ctx) as kb:
        report = import_feature_metadata(
            kb, list(paths), model=model, source=source, transcoder_set=transcoder_set, schema=schema, author=author, kind=kind,
            actor=actor_of(kb, as_name),
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


COMMANDS: list[click.Command] = [features]
