"""``circuitkb`` commands for feature search by concept."""

from __future__ import annotations

import re

import click

from kb.cli.options import json_option, open_kb, selection_options
from kb.cli.output import echo_json, short_text
from kb.errors import CircuitKBError
from kb.selection import Selection

_LAYERS = re.compile(r"^\s*(\d+)?\s*(?:(-|\.\.)\s*(\d+)?)?\s*$")


def parse_layers(text: str | None) -> tuple[int | None, int | None]:
    """``"20"`` -> (20, 20); ``"10-20"`` -> (10, 20); ``"10-"`` -> (10, None); ``"-5"`` -> (None, 5)."""
    if text is None:
        return None, None
    match = _LAYERS.match(text)
    if not match or (match.group(1) is None and match.group(3) is None):
        raise CircuitKBError(f"--layers takes a layer or a range like 10-20, got {text!r}")
    low = int(match.group(1)) if match.group(1) is not None else None
    high = int(match.group(3)) if match.group(3) is not None else None
    if match.group(2) is None:
        high = low
    return low, high


@click.command("search")
@click.argument("query", required=False)
@click.option("--like", "like", metavar="FEATURE", help="Search by example: features described like this one (L20/1234, 20-clt-hp/1234, a URL).")
@click.option("--cooccurring", is_flag=True, help="With --like: only features that appear in a graph with the example.")
@click.option("-k", "--k", "k", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many features to return.")
@click.option("--transcoder-set", help="Only features of this set: gemma-2-2b/clt-hp, a model id (gemma-2-2b) or a source set (clt-hp).")
@click.option("--layers", help="Only features in these layers: 20, 10-20, 10- or -5.")
@click.option("--source", "sources", multiple=True, type=click.Choice(["neuronpedia", "clerp", "label"]), help="Only match descriptions from this source (repeatable).")
@click.option("--author", "authors", multiple=True, help="Only match descriptions or labels by this author (repeatable).")
@click.option("--mode", type=click.Choice(["blend", "semantic", "keyword"]), default="blend", show_default=True, help="How to rank.")
@selection_options
@json_option
@click.pass_context
def search_cmd(
    ctx: click.Context,
    query: str | None,
    like: str | None,
    cooccurring: bool,
    k: int,
    transcoder_set: str | None,
    layers: str | None,
    sources: tuple[str, ...],
    authors: tuple[str, ...],
    mode: str,
    selection: Selection,
    as_json: bool,
) -> None:
    """Find features by concept ("say a capital city"), words, or id (L20/1234, 20-clt-hp/1234, a Neuronpedia URL),
    in any language; or by example (--like FEATURE).

    The graph options (--tag, --family, --language, --prompt, ...) keep only features that
    appear in the graphs they select.
    """
    from kb.search import SearchFilters, search
    from kb.search import like as search_like

    if (query is None) == (like is None):
        raise click.UsageError("give a QUERY, or --like FEATURE")
    if cooccurring and like is None:
        raise click.UsageError("--cooccurring goes with --like")
    low, high = parse_layers(layers)
    filters = SearchFilters(
        transcoder_set=transcoder_set,
        min_layer=low,
        max_layer=high,
        sources=sources,
        authors=authors,
        graphs=None if selection.is_empty() else selection,
    )
    with open_kb(ctx) as kb:
        if like is not None:
            hits = search_like(kb, like, k=k, filters=filters, cooccurring=cooccurring)
        else:
            hits = search(kb, query or "", k=k, filters=filters, mode=mode)
    if as_json:
        asked = {"like": like, "cooccurring": cooccurring} if like is not None else {"query": query, "mode": mode}
        echo_json({**asked, "hits": [h.as_dict() for h in hits]})
        return
    if not hits:
        click.echo("no matching features")
        return
    for rank, hit in enumerate(hits, 1):
        name = hit.neuronpedia or str(hit.feature)
        click.echo(f"{rank:>3}. {hit.score:.3f}  {name}  ({hit.match}; in {hit.n_graphs} graph{'s' if hit.n_graphs != 1 else ''})")
        for d in hit.descriptions:
            where = f" in {', '.join(d['graphs'][:2])}" if d["graphs"] else ""
            by = f" by {d['author']}" if d["author"] else ""
            click.echo(f"       {d['source']}{by}{where}: {short_text(d['text'])}")
        for label in hit.labels[:3]:
            click.echo(f"       label by {label['author']}: {short_text(label['text'])}")
        if hit.top_active:
            tops = ", ".join(f"{g['slug']} ({g['activation']:.3g})" for g in hit.top_active)
            click.echo(f"       most active in: {tops}")


COMMANDS: list[click.Command] = [search_cmd]
