"""``circuitkb`` commands for circuits, comparison, scores and pieces of graphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kb.cli.options import echo_json, echo_table, feature_text, handles_errors, json_option, number, open_kb, selection_options
from kb.errors import CircuitKBError
from kb.selection import Selection


def _more(shown: int, total: int) -> None:
    if total > shown:
        click.echo(f"... {total - shown} more (--limit, or --json for all)")


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
@handles_errors
def edges_cmd(ctx: click.Context, selection: Selection, min_graphs: int, limit: int, as_json: bool) -> None:
    """Feature-to-feature edges present in at least K graphs, with their count and mean/min weight.

    A graph's edge A -> B sums the weights of every link from a node of A to a node of B.
    """
    from kb.analysis.circuits import recurring_edges

    with open_kb(ctx) as kb:
        result = recurring_edges(kb, selection, min_graphs=min_graphs, limit=limit or None)
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(f"{result.n_found} feature edges in at least {min_graphs} of {len(result.graphs)} graphs")
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
    _more(len(result.edges), result.n_found)


@circuits_group.command("backfill")
@click.pass_context
@handles_errors
def backfill_cmd(ctx: click.Context) -> None:
    """Store the feature edges of graphs ingested before circuitkb kept them (run once after upgrading)."""
    from kb.analysis.circuits import backfill_feature_edges

    with open_kb(ctx) as kb:
        done = backfill_feature_edges(kb)
    click.echo(f"stored the feature edges of {done} graphs")


def _token_options(fn: Any) -> Any:
    fn = click.option("--position", type=int, help="The prompt position (0 is <bos>; -1 the last token).")(fn)
    return click.option("--token", help="The prompt token, by its text (e.g. Dallas).")(fn)


@circuits_group.command("paths")
@click.argument("slug")
@_token_options
@click.option("--top", default=5, show_default=True, help="Paths to list.")
@click.option("--max-hops", default=6, show_default=True, help="Longest path, in links.")
@click.option("--with-embedding", is_flag=True, help="Also start at the token's embedding node.")
@json_option
@click.pass_context
@handles_errors
def paths_cmd(ctx: click.Context, slug: str, token: str | None, position: int | None, top: int, max_hops: int, with_embedding: bool, as_json: bool) -> None:
    """The strongest paths from the features at a prompt token to the target logit.

    A path's score is the product of each link's share of its target's input (|w| over the sum
    of |w| into the target).
    """
    from kb.analysis.circuits import strongest_paths

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
@_token_options
@click.option("--via", help="Keep intermediate features whose names contain this word (e.g. Texas).")
@click.option("--top", default=10, show_default=True, help="Paths per graph (0: all).")
@json_option
@click.pass_context
@handles_errors
def two_hop_cmd(ctx: click.Context, selection: Selection, token: str | None, position: int | None, via: str | None, top: int, as_json: bool) -> None:
    """Two-hop paths token -> intermediate feature -> target logit, plus the direct shortcut.

    The intermediate feature sits at no position whose token names it (by its labels, clerps or
    explanations): e.g. a "Texas" feature reached from "Dallas" in a prompt without "Texas".
    """
    from kb.analysis.circuits import two_hop_paths

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
@click.option("--transcoder-set", help="Transcoder set of short references like L20/1234.")
@click.option("--limit", default=40, show_default=True, help="Rows to list (0: all).")
@json_option
@click.pass_context
@handles_errors
def pattern_cmd(ctx: click.Context, steps: tuple[str, ...], selection: Selection, transcoder_set: str | None, limit: int, as_json: bool) -> None:
    """Match "A -> B -> answer logit" across graphs, with A among the first step's features and B
    among the second's.

    A feature is written gemma-2-2b/clt-hp/20/1234, gemma-2-2b/20-clt-hp/1234 (Neuronpedia), or
    L20/1234 with --transcoder-set.
    """
    from kb.analysis.circuits import match_pattern

    parsed = [None if s.strip().lower() == "any" else [r for r in (p.strip() for p in s.split(",")) if r] for s in steps]
    with open_kb(ctx) as kb:
        result = match_pattern(kb, parsed, selection, transcoder_set=transcoder_set, model=selection.model)
    if as_json:
        echo_json(result.as_dict())
        return
    n = len(steps)
    n_graphs = result.matches["slug"].nunique() if len(result.matches) else 0
    click.echo(f"{len(result.matches)} matching paths, {len(result.summary)} sequences of features, in {n_graphs} of {len(result.graphs)} graphs")
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
    _more(len(shown), len(result.summary))


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
@handles_errors
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
@click.option("--transcoder-set", help="Transcoder set of short references like L20/1234.")
@json_option
@click.pass_context
@handles_errors
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
@handles_errors
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


COMMANDS: list[click.Command] = [circuits_group, compare_cmd, scores_cmd, subgraph_cmd]
