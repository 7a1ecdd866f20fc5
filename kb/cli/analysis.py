"""``circuitkb`` questions about features and graphs: shared, used-by, languages, sets, compare, scores, subgraph."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click
import pandas as pd

from kb.cli.options import actor_of, as_option, json_option, open_kb, selection_options, transcoder_set_option
from kb.cli.output import echo_json, echo_more, echo_table, feature_text, number
from kb.errors import CircuitKBError
from kb.selection import Selection


# --- shared ------------------------------------------------------------------------------------


@click.command("shared")
@selection_options
@click.option("-k", "--min-graphs", type=int, help="Features in at least K of the chosen graphs (default: in all of them).")
@click.option("--core", is_flag=True, help="The common core of the chosen graphs (a family) and what each member adds.")
@click.option("--limit", default=40, show_default=True, help="Rows to print per table (--json prints everything).")
@json_option
@click.pass_context
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
    click.echo(f"{len(result.features)} features in at least {result.min_graphs} of {result.n_graphs} graphs")
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
    echo_more(limit, len(summary))


# --- used-by -----------------------------------------------------------------------------------


@click.command("used-by")
@click.argument("features", nargs=-1, required=True)
@selection_options
@transcoder_set_option
@click.option("--any", "any_feature", is_flag=True, help="Graphs with any of the features (default: with all of them).")
@click.option("--rank-by", type=click.Choice(["activation", "influence"]), default="activation", show_default=True)
@click.option("--limit", default=20, show_default=True, help="Graphs to list (0: all).")
@click.option("--neighbours", default=5, show_default=True, help="Strongest neighbours per graph and direction, and in the summary.")
@json_option
@click.pass_context
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
    click.echo(f"{named}: in {usage.n_graphs} graph{'' if usage.n_graphs == 1 else 's'} ({'any' if any_feature else 'all'} of the features), ranked by {rank_by}")
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
@as_option
@json_option
@click.pass_context
def sets_save(ctx: click.Context, name: str, selection: Selection, as_name: str | None, as_json: bool) -> None:
    """Save the graphs the selection matches now under NAME (a labeller's act once there are accounts: --as NAME)."""
    with open_kb(ctx) as kb:
        slugs = kb.save_set(name, selection, actor_of(kb, as_name))
    if as_json:
        echo_json({"name": name, "slugs": slugs})
    else:
        click.echo(f"saved {len(slugs)} graph{'' if len(slugs) == 1 else 's'} as {name!r}; use --set {shlex.quote(name)}")


def _minute(moment: Any) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@sets_group.command("list")
@json_option
@click.pass_context
def sets_list(ctx: click.Context, as_json: bool) -> None:
    """The saved sets: name, graphs, when saved."""
    from kb.sets import saved_sets

    with open_kb(ctx) as kb:
        found = saved_sets(kb)
    if as_json:
        echo_json([s.as_dict() for s in found])
        return
    if not found:
        click.echo("no saved set yet: circuitkb sets save NAME --family F (or --tag, --language, --graph ...)")
        return
    echo_table(
        [
            {"name": s.name, "graphs": len(s.stored), "removed since": len(s.missing) or "", "saved": _minute(s.created_at)}
            for s in found
        ]
    )


@sets_group.command("show")
@click.argument("name")
@json_option
@click.pass_context
def sets_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """The graphs of the saved set NAME (those removed since are marked)."""
    from kb.sets import saved_sets

    with open_kb(ctx) as kb:
        (found,) = saved_sets(kb, name)
    if as_json:
        echo_json(found.as_dict())
        return
    missing = set(found.missing)
    click.echo(f"{found.name}: {len(found.stored)} graph{'' if len(found.stored) == 1 else 's'}, saved {_minute(found.created_at)}")
    for slug in found.slugs:
        click.echo(f"  {slug}{'  (removed since)' if slug in missing else ''}")


@sets_group.command("delete")
@click.argument("name")
@as_option
@json_option
@click.pass_context
def sets_delete(ctx: click.Context, name: str, as_name: str | None, as_json: bool) -> None:
    """Forget the saved set NAME; its graphs stay (a labeller's act once there are accounts: --as NAME)."""
    with open_kb(ctx) as kb:
        kb.delete_set(name, actor_of(kb, as_name))
    echo_json({"deleted": name}) if as_json else click.echo(f"deleted the saved set {name!r}")


# --- compare ----------------------------------------------------------------------------------


@click.command("compare")
@click.argument("pair", nargs=-1, metavar="[SLUG_A SLUG_B]")
@selection_options
@click.option("--measure", type=click.Choice(["features", "edges"]), default="features", show_default=True, help="Similarity of many graphs: Jaccard of their features or feature edges.")
@click.option("--clusters", "n_clusters", type=int, help="Cut the clustering into this many clusters (default: at distance --threshold).")
@click.option("--threshold", type=float, help="Distance (1 - similarity) at which clusters split; default 0.5.")
@click.option("--limit", default=25, show_default=True, help="Rows per table.")
@json_option
@click.pass_context
def compare_cmd(
    ctx: click.Context,
    pair: tuple[str, ...],
    selection: Selection,
    measure: str,
    n_clusters: int | None,
    threshold: float | None,
    limit: int,
    as_json: bool,
) -> None:
    """Compare two graphs (SLUG_A SLUG_B), or cluster many (chosen with the options).

    Two graphs are aligned by feature; embeddings and logits by token (positions counted from the
    end when the prompts differ in length).
    """
    from kb.analysis.compare import compare_graphs, graph_similarity

    if pair and len(pair) != 2:
        raise CircuitKBError("give two slugs to compare two graphs, or choose many with --graph/--tag/--family/...")
    with open_kb(ctx) as kb:
        if pair:
            result = compare_graphs(kb, pair[0], pair[1])
        else:
            many = graph_similarity(kb, selection, measure=measure, n_clusters=n_clusters, threshold=threshold)
    if pair:
        _print_comparison(result, limit, as_json)
        return
    if as_json:
        echo_json(many.as_dict())
        return
    click.echo(f"{len(many.graphs)} graphs, similarity = Jaccard of {measure}; {many.clusters['cluster'].nunique()} clusters")
    for cluster, rows in many.clusters.sort_values("order").groupby("cluster", sort=False):
        click.echo(f"  cluster {cluster}: {', '.join(rows['slug'])}")
    if len(many.graphs) <= 12:
        click.echo(many.matrix.round(2).to_string())


def _print_comparison(result: Any, limit: int, as_json: bool) -> None:
    if as_json:
        echo_json(result.as_dict())
        return
    s = result.summary
    click.echo(f"A = {result.a.slug}: {result.a.prompt!r}\nB = {result.b.slug}: {result.b.prompt!r}")
    click.echo(
        f"features: {s['features_shared']} shared of {s['features_a']} (A) and {s['features_b']} (B), Jaccard {number(s['features_jaccard'])}\n"
        f"feature edges: {s['feature_edges_shared']} shared, Jaccard {number(s['feature_edges_jaccard'])}, weighted overlap {number(s['weighted_overlap'])}\n"
        f"influence rank correlation (shared features): {number(s['influence_spearman'])} over {s['influence_pairs']}"
    )
    nodes = result.nodes
    both = nodes[nodes["in_a"] & nodes["in_b"] & (nodes["kind"] == "feature")]
    both = both.reindex(both["activation_diff"].abs().sort_values(ascending=False).index)
    for title, frame in (("only in A", result.only_in("a")), ("only in B", result.only_in("b")), ("in both, largest activation change", both)):
        click.echo(f"\n{title}: {len(frame)}")
        echo_table(
            [
                {"node": r.key, "positions": ",".join(map(str, r.positions_a or r.positions_b)), "act A": number(r.activation_a), "act B": number(r.activation_b), "clerp": (r.clerp_a or r.clerp_b or "")[:30]}
                for r in frame.head(limit).itertuples()
            ]
        )
    if len(result.supernodes):
        click.echo("\nsupernodes (A | B):")
        for r in result.supernodes.itertuples():
            click.echo(f"  {r.label}: {len(r.members_a)} | {len(r.members_b)} members, {len(r.shared)} shared")


# --- scores -----------------------------------------------------------------------------------


@click.command("scores")
@click.argument("slug")
@click.option("--feature", "features", multiple=True, help="Keep this feature in the subgraph (repeatable).")
@click.option("--node", "node_ids", multiple=True, help="Keep this feature node (node_id) in the subgraph (repeatable).")
@click.option("--pinned", is_flag=True, help="Keep the feature nodes pinned in the graph's saved view.")
@click.option("--supernodes", is_flag=True, help="Keep the members of the graph's saved supernodes.")
@transcoder_set_option
@json_option
@click.pass_context
def scores_cmd(
    ctx: click.Context,
    slug: str,
    features: tuple[str, ...],
    node_ids: tuple[str, ...],
    pinned: bool,
    supernodes: bool,
    transcoder_set: str | None,
    as_json: bool,
) -> None:
    """Replacement and completeness scores of a graph, or of a subgraph (unchosen features fold
    into the error node of their layer and position). Computed on the stored, pruned graph."""
    from kb.analysis.scores import graph_scores, pinned_node_ids, supernode_node_ids

    with open_kb(ctx) as kb:
        chosen = list(node_ids)
        if pinned:
            chosen += pinned_node_ids(kb, slug)
        if supernodes:
            chosen += supernode_node_ids(kb, slug)
        subgraph = bool(features or chosen)
        result = graph_scores(kb, slug, features=list(features) if subgraph else None, node_ids=chosen if subgraph else None, transcoder_set=transcoder_set)
    if as_json:
        echo_json(result.as_dict())
        return
    what = f"subgraph of {result.n_features_kept} features ({result.n_feature_nodes_kept} nodes)" if result.kept is not None else f"whole graph ({result.n_features} features)"
    click.echo(f"{slug}, {what}:\n  replacement  {number(result.replacement, 4)}\n  completeness {number(result.completeness, 4)}")


# --- subgraph -----------------------------------------------------------------------------------


@click.command("subgraph")
@click.argument("slug")
@click.option("--top", "top_n", type=int, help="The N most influential nodes (plus the logits) and the links among them.")
@click.option("--around", help="The neighbourhood of this node (a node_id, or an idx as #123).")
@click.option("--hops", default=1, show_default=True, help="Steps from the --around node.")
@click.option("--min-weight", default=0.0, show_default=True, help="Follow links with |weight| at least this.")
@click.option("--direction", type=click.Choice(["down", "up", "both"]), default="both", show_default=True)
@click.option("--max-nodes", default=500, show_default=True)
@click.option("--no-logits", is_flag=True, help="With --top: leave out the logit nodes.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the piece as graph JSON to this file.")
@json_option
@click.pass_context
def subgraph_cmd(
    ctx: click.Context,
    slug: str,
    top_n: int | None,
    around: str | None,
    hops: int,
    min_weight: float,
    direction: str,
    max_nodes: int,
    no_logits: bool,
    output: Path | None,
    as_json: bool,
) -> None:
    """A piece of a graph, read without loading the whole graph, as graph JSON the viewers load."""
    from kb.analysis.pieces import neighbourhood_piece, top_piece

    if (top_n is None) == (around is None):
        raise CircuitKBError("choose the piece with either --top N or --around NODE")
    with open_kb(ctx) as kb:
        if top_n is not None:
            piece = top_piece(kb, slug, top_n, include_logits=not no_logits)
        else:
            node: str | int = int(around[1:]) if around and around.startswith("#") and around[1:].isdigit() else str(around)
            piece = neighbourhood_piece(kb, slug, node, hops=hops, min_abs_weight=min_weight, direction=direction, max_nodes=max_nodes)
    if output is not None:
        output.write_text(json.dumps(piece.doc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        click.echo(f"wrote {output}: {len(piece.nodes)} nodes, {len(piece.links)} links", err=True)
    if as_json:
        echo_json(piece.doc)
    elif output is None:
        click.echo(f"{len(piece.nodes)} nodes, {len(piece.links)} links (-o FILE or --json for the graph JSON)")
        echo_table([{"node_id": n["node_id"], "layer": n["layer"], "pos": n["ctx_idx"], "influence": number(n.get("influence")), "clerp": (n.get("clerp") or "")[:40]} for n in piece.doc["nodes"][:40]])


COMMANDS: list[click.Command] = [shared_cmd, used_by_cmd, languages_cmd, sets_group, compare_cmd, scores_cmd, subgraph_cmd]
