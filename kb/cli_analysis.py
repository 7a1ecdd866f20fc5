"""``circuitkb`` commands for features across graphs: shared, used-by, languages, sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pandas as pd

from kb.cli_options import echo_json, echo_table, feature_text, handles_errors, json_option, number, open_kb, selection_options
from kb.selection import Selection


# --- shared ------------------------------------------------------------------------------------


@click.command("shared")
@selection_options
@click.option("-k", "--min-graphs", type=int, help="Features in at least K of the chosen graphs (default: in all of them).")
@click.option("--core", is_flag=True, help="The common core of the chosen graphs (a family) and what each member adds.")
@click.option("--limit", default=40, show_default=True, help="Rows to print per table (--json prints everything).")
@json_option
@click.pass_context
@handles_errors
def shared_cmd(ctx: click.Context, selection: Selection, min_graphs: int | None, core: bool, limit: int, as_json: bool) -> None:
    """Features present in at least K of the chosen graphs, with activation, influence and positions in each."""
    from kb.analysis import family_core, shared_features

    with open_kb(ctx) as kb:
        result = family_core(kb, selection) if core else shared_features(kb, selection, min_graphs)
    if as_json:
        echo_json(result.as_dict())
        return
    if core:
        click.echo(f"common core of {len(result.graphs)} graphs: {len(result.core)} features")
        _print_shared(result.core, result.core_presence, limit)
        for graph in result.graphs:
            added = result.additions[result.additions["slug"] == graph.slug]
            click.echo(f"\n{graph.slug} ({graph.language or '?'}) adds {len(added)} features, {int(added['unique'].sum())} in no other member")
            echo_table(
                [
                    {"feature": feature_text(r), "members": int(r.n_members), "activation": number(r.activation), "influence": number(r.influence), "positions": ",".join(map(str, r.positions))}
                    for r in added.head(limit).itertuples()
                ]
            )
        return
    click.echo(f"{len(result.features)} features in at least {result.min_graphs} of {len(result.graphs)} graphs")
    _print_shared(result.features, result.presence, limit)


def _print_shared(summary: pd.DataFrame, presence: pd.DataFrame, limit: int) -> None:
    where = presence.groupby("fid").apply(lambda rows: "; ".join(f"{r.slug}@{','.join(map(str, r.positions))}" for r in rows.itertuples()), include_groups=False)
    echo_table(
        [
            {
                "feature": feature_text(r),
                "graphs": int(r.n_graphs),
                "mean act": number(r.mean_activation),
                "best infl": number(r.best_influence),
                "where (slug@positions)": where.get(r.fid, "")[:90],
            }
            for r in summary.head(limit).itertuples()
        ]
    )
    if len(summary) > limit:
        click.echo(f"... {len(summary) - limit} more (--limit, or --json for all)")


# --- used-by -----------------------------------------------------------------------------------


@click.command("used-by")
@click.argument("features", nargs=-1, required=True)
@selection_options
@click.option("--transcoder-set", help="Transcoder set of short references like L20/1234 (e.g. gemma-2-2b/clt-hp).")
@click.option("--any", "any_feature", is_flag=True, help="Graphs with any of the features (default: with all of them).")
@click.option("--rank-by", type=click.Choice(["activation", "influence"]), default="activation", show_default=True)
@click.option("--limit", default=20, show_default=True, help="Graphs to list (0: all).")
@click.option("--neighbours", default=5, show_default=True, help="Strongest neighbours per graph and direction, and in the summary.")
@json_option
@click.pass_context
@handles_errors
def used_by_cmd(
    ctx: click.Context,
    features: tuple[str, ...],
    selection: Selection,
    transcoder_set: str | None,
    any_feature: bool,
    rank_by: str,
    limit: int,
    neighbours: int,
    as_json: bool,
) -> None:
    """The graphs that contain FEATURES, ranked, with each feature's strongest neighbours.

    A feature is written gemma-2-2b/clt-hp/20/1234, gemma-2-2b/20-clt-hp/1234 (Neuronpedia),
    20-clt-hp/1234 with --model, or L20/1234 with --transcoder-set. --model also chooses the
    graphs of that model. For a Lorsa (attention) feature of a CRM graph, the output also says
    which features drive its queries and keys (QK tracing; "qk" in --json).
    """
    from kb.analysis import qk_drivers, used_by

    with open_kb(ctx) as kb:
        usage = used_by(
            kb,
            list(features),
            selection,
            transcoder_set=transcoder_set,
            model=selection.model,
            require_all=not any_feature,
            rank_by=rank_by,
            limit=limit or None,
            neighbours=neighbours,
        )
        qk = qk_drivers(kb, usage.features, selection, limit=neighbours)
    if as_json:
        echo_json({**usage.as_dict(), "qk": qk.as_dict()})
        return
    named = ", ".join(str(k) for k in usage.features)
    click.echo(f"{named}: in {usage.n_graphs} graphs ({'any' if any_feature else 'all'} of the features), ranked by {rank_by}")
    echo_table(
        [
            {"rank": int(r.rank), "graph": r.slug, "lang": r.language or "", "score": number(r.score), "feature": feature_text(r), "activation": number(r.activation), "influence": number(r.influence), "positions": ",".join(map(str, r.positions))}
            for r in usage.graphs.itertuples()
        ]
    )
    if not usage.neighbours.empty:
        click.echo("\nstrongest neighbours in each graph (summed link weight):")
        echo_table(
            [
                {"graph": r.slug, "feature": f"L{r.layer}/{r.index}", "dir": r.direction, "#": int(r.rank), "neighbour": feature_text(r, "neighbour_") or f"{r.kind} {r.node_id}", "weight": number(r.weight), "links": int(r.n_links)}
                for r in usage.neighbours.itertuples()
            ]
        )
    if not usage.summary.empty:
        click.echo(f"\nover all {usage.n_graphs} graphs:")
        echo_table(
            [
                {"feature": f"L{r.layer}/{r.index}", "dir": r.direction, "#": int(r.rank), "neighbour": feature_text(r, "neighbour_"), "graphs": int(r.n_graphs), "mean weight": number(r.mean_weight)}
                for r in usage.summary.itertuples()
            ]
        )
    if qk.n_graphs:
        _echo_qk(qk)


def _echo_qk(qk: Any) -> None:
    """What drives the queries and keys of Lorsa features: per graph, then over all graphs."""
    click.echo(f"\nwhat drives the queries and keys (QK tracing, {qk.n_graphs} graphs; * pruned from the graph):")

    def contributor(r: Any, side: str) -> str:
        node_id = getattr(r, f"{side}_node_id")
        if node_id is None:
            return ""
        return (feature_text(r, f"{side}_") or node_id) + ("*" if getattr(r, f"{side}_pruned") else "")

    echo_table(
        [
            {"graph": r.slug, "feature": f"L{int(r.layer)}/{int(r.index)}", "node": r.target_node_id, "role": r.role, "#": int(r.rank) + 1, "query": contributor(r, "q"), "key": contributor(r, "k"), "attribution": number(r.weight)}
            for r in qk.rows.itertuples()
        ]
    )
    if not qk.summary.empty:
        click.echo(f"\nQK contributors over all {qk.n_graphs} graphs:")
        echo_table(
            [
                {"feature": f"L{int(r.layer)}/{int(r.index)}", "role": r.role, "query": feature_text(r, "q_"), "key": feature_text(r, "k_"), "graphs": int(r.n_graphs), "mean attribution": number(r.mean_weight)}
                for r in qk.summary.itertuples()
            ]
        )


# --- languages ---------------------------------------------------------------------------------


@click.command("languages")
@selection_options
@click.option("--baseline-pairs", default=100, show_default=True, help="About how many unrelated graph pairs per language pair make the baseline.")
@click.option("--seed", default=0, show_default=True, help="Seed of the baseline draw.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the per-layer curves (long format, ready to plot) to this CSV file.")
@json_option
@click.pass_context
@handles_errors
def languages_cmd(ctx: click.Context, selection: Selection, baseline_pairs: int, seed: int, csv_path: Path | None, as_json: bool) -> None:
    """Per layer, how much each language pair of a family shares (IoU), against unrelated prompts."""
    from kb.analysis import language_overlap

    with open_kb(ctx) as kb:
        result = language_overlap(kb, selection, max_baseline_pairs=baseline_pairs, seed=seed)
    if csv_path is not None:
        result.curves.to_csv(csv_path, index=False)
        click.echo(f"wrote {csv_path}", err=True)
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo("IoU of the features present per layer (baseline: unrelated prompts of the same languages)")
    click.echo(result.table().round(3).to_string())
    click.echo("\nfeatures present in every language (shared) or not (specific), per layer:")
    click.echo(result.layers.round(3).to_string(index=False))


# --- saved sets --------------------------------------------------------------------------------


@click.group("sets")
def sets_group() -> None:
    """Saved sets of graphs, to choose them again with --set NAME."""


@sets_group.command("save")
@click.argument("name")
@selection_options
@json_option
@click.pass_context
@handles_errors
def sets_save(ctx: click.Context, name: str, selection: Selection, as_json: bool) -> None:
    """Save the graphs the selection matches now under NAME."""
    with open_kb(ctx) as kb:
        slugs = kb.save_set(name, selection)
    if as_json:
        echo_json({"name": name, "slugs": slugs})
    else:
        click.echo(f"saved {len(slugs)} graphs as {name!r}; use --set {name}")


COMMANDS: list[click.Command] = [shared_cmd, used_by_cmd, languages_cmd, sets_group]
