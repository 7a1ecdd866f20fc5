"""``circuitkb circuits``: recurring circuits across graphs (edges, paths, two-hop paths, patterns)."""

from __future__ import annotations

import click

from kb.cli.options import json_option, open_kb, selection_options, token_options, transcoder_set_option
from kb.cli.output import echo_json, echo_more, echo_table, feature_text, number
from kb.selection import Selection


# --- circuits ------------------------------------------------------------------------------------


@click.group("circuits")
def circuits_group() -> None:
    """Recurring circuits: shared feature edges, strongest paths, two-hop paths, patterns."""


@circuits_group.command("edges")
@selection_options
@click.option("-k", "--min-graphs", default=2, show_default=True, help="Edges present in at least K of the chosen graphs.")
@click.option("--limit", default=40, show_default=True, help="Edges to list (0: all).")
@json_option
@click.pass_context
def edges_cmd(ctx: click.Context, selection: Selection, min_graphs: int, limit: int, as_json: bool) -> None:
    """Feature-to-feature edges present in at least K graphs, with their count and mean/min weight.

    A graph's edge A -> B sums the weights of every link from a node of A to a node of B.
    """
    from kb.analysis.edges import recurring_edges

    with open_kb(ctx) as kb:
        result = recurring_edges(kb, selection, min_graphs=min_graphs, limit=limit or None)
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(f"{result.n_found} feature edges in at least {min_graphs} of {result.n_graphs} graphs")
    echo_table(
        [
            {
                "source": feature_text(r, "src_", with_set=False),
                "target": feature_text(r, "tgt_", with_set=False),
                "graphs": int(r.n_graphs),
                "mean w": number(r.mean_weight),
                "min w": number(r.min_weight),
                "max w": number(r.max_weight),
            }
            for r in result.edges.itertuples()
        ]
    )
    echo_more(len(result.edges), result.n_found)


@circuits_group.command("backfill")
@click.pass_context
def backfill_cmd(ctx: click.Context) -> None:
    """Store the feature edges of graphs ingested before circuitkb kept them (run once after upgrading)."""
    from kb.analysis.edges import backfill_feature_edges

    with open_kb(ctx) as kb:
        done = backfill_feature_edges(kb)
    click.echo(f"stored the feature edges of {done} graphs")


@circuits_group.command("paths")
@click.argument("slug")
@token_options
@click.option("--top", default=5, show_default=True, help="Paths to list.")
@click.option("--max-hops", default=6, show_default=True, help="Longest path, in links.")
@click.option("--with-embedding", is_flag=True, help="Also start at the token's embedding node.")
@json_option
@click.pass_context
def paths_cmd(ctx: click.Context, slug: str, token: str | None, position: int | None, top: int, max_hops: int, with_embedding: bool, as_json: bool) -> None:
    """The strongest paths from the features at a prompt token to the target logit.

    A path's score is the product of each link's share of its target's input (|w| over the sum
    of |w| into the target).
    """
    from kb.analysis.paths import strongest_paths

    with open_kb(ctx) as kb:
        result = strongest_paths(kb, slug, token=token, position=position, top=top, max_hops=max_hops, include_embedding=with_embedding)
    if as_json:
        echo_json(result.as_dict())
        return
    target = result.target.clerp or result.target.node_id if result.target else "none"
    click.echo(f"{slug}: paths from positions {', '.join(map(str, result.positions)) or 'none'} to {target}")
    frame = result.frame()
    if frame.empty:
        click.echo("no path")
    else:
        click.echo(frame.to_string(index=False))


@circuits_group.command("two-hop")
@selection_options
@token_options
@click.option("--via", help="Keep intermediate features whose names contain this word (e.g. Texas).")
@click.option("--top", default=10, show_default=True, help="Paths per graph (0: all).")
@json_option
@click.pass_context
def two_hop_cmd(ctx: click.Context, selection: Selection, token: str | None, position: int | None, via: str | None, top: int, as_json: bool) -> None:
    """Two-hop paths token -> intermediate feature -> target logit, plus the direct shortcut.

    The intermediate feature sits at no position whose token names it (by its labels, clerps or
    explanations): e.g. a "Texas" feature reached from "Dallas" in a prompt without "Texas".
    """
    from kb.analysis.twohop import two_hop_paths

    with open_kb(ctx) as kb:
        result = two_hop_paths(kb, selection, token=token, position=position, via=via, top=top or None)
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(f"{len(result.paths)} two-hop paths in {result.paths['slug'].nunique() if len(result.paths) else 0} of {len(result.graphs)} graphs ({result.unnamed} skipped: intermediate feature without a name)")
    echo_table(
        [
            {
                "slug": r["slug"][:40],
                "score": number(r["score"]),
                "from": r["n0_node_id"],
                "via": f"{feature_text(r, 'n1_', with_set=False)} {r['mid_name'][:30]!r}",
                "at": ",".join(t.strip() for t in r["mid_tokens"]),
                "to": r["t_node_id"],
                "shortcut": number(r["shortcut_weight"]),
            }
            for r in result.paths.to_dict("records")
        ]
    )


@circuits_group.command("pattern")
@click.option(
    "--step",
    "steps",
    multiple=True,
    required=True,
    help="Features allowed at one step, comma-separated references, or 'any' (repeat: A, then B, ...; the answer logit comes last).",
)
@selection_options
@transcoder_set_option
@click.option("--limit", default=40, show_default=True, help="Rows to list (0: all).")
@click.option("--top", default=10, show_default=True, help="Matching paths per graph in --json (0: all); the summary counts every path.")
@json_option
@click.pass_context
def pattern_cmd(ctx: click.Context, steps: tuple[str, ...], selection: Selection, transcoder_set: str | None, limit: int, top: int, as_json: bool) -> None:
    """Match "A -> B -> answer logit" across graphs, with A among the first step's features and B
    among the second's.

    A feature is written gemma-2-2b/clt-hp/20/1234, gemma-2-2b/20-clt-hp/1234 (Neuronpedia), or
    L20/1234 with --transcoder-set.
    """
    from kb.analysis.twohop import match_pattern

    parsed = [None if s.strip().lower() == "any" else [r for r in (p.strip() for p in s.split(",")) if r] for s in steps]
    with open_kb(ctx) as kb:
        result = match_pattern(kb, parsed, selection, transcoder_set=transcoder_set, model=selection.model, top=top or None)
    if as_json:
        echo_json(result.as_dict())
        return
    n = len(steps)
    n_graphs = result.matches["slug"].nunique() if len(result.matches) else 0
    click.echo(f"{result.n_matches} matching paths, {len(result.summary)} sequences of features, in {n_graphs} of {len(result.graphs)} graphs")
    shown = result.summary.head(limit or None)
    echo_table(
        [
            {
                "path": " -> ".join(feature_text(r, f"n{i}_", with_set=False) for i in range(n)) + " -> answer",
                "graphs": int(r["n_graphs"]),
                "mean score": number(r["mean_score"]),
                "best score": number(r["best_score"]),
            }
            for r in shown.to_dict("records")
        ]
    )
    echo_more(len(shown), len(result.summary))


COMMANDS: list[click.Command] = [circuits_group]
