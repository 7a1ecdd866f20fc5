"""``circuitkb families``: families of prompts proposed from the graphs, accepted or edited by a person.

Changes act as a user (``--as NAME``, as ``circuitkb labels`` does) and need the labeller role once
the knowledge base has accounts. A graph already in another family (from a manifest or accepted
before) keeps it unless the change says ``--replace``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kb.cli.options import actor_of, as_option, json_option, open_kb, selection_options
from kb.cli.output import echo_json, echo_table, short_text
from kb.selection import Selection

if TYPE_CHECKING:
    from kb.families import FamilyChange


@click.group("families")
def families() -> None:
    """Families of prompts: proposed from the prompts and features of the graphs, accepted or edited by you."""


@families.command("propose")
@selection_options
@json_option
@click.pass_context
def families_propose(ctx: click.Context, selection: Selection, as_json: bool) -> None:
    """Groups of graphs that ask the same thing (in any language), with the evidence, to accept as families."""
    from kb.families import propose_families

    with open_kb(ctx) as kb:
        found = propose_families(kb, selection)
    if as_json:
        echo_json(found.as_dict())
        return
    limits = f"prompt similarity >= {found.thresholds['prompt_similarity']}, shared features >= {found.thresholds['shared_features']}"
    if not found.proposals:
        click.echo(f"no family proposed among {found.n_graphs} graphs ({limits})")
    for number, p in enumerate(found.proposals, 1):
        click.echo(f"{number}. {p.name} ({p.status}): {len(p.slugs)} graphs in {', '.join(p.languages) or '?'}, {p.transcoder_set}")
        click.echo(
            f"   prompt similarity >= {p.prompt_similarity:.3f}, shared features (Jaccard) >= {p.shared_features:.3f}, "
            f"{p.common_features} features in every graph; outputs in every graph: {', '.join(repr(t) for t in p.shared_outputs) or 'none'}"
        )
        for slug in p.slugs:
            family = f" [family {p.current[slug]}]" if p.current[slug] else ""
            outputs = ", ".join(repr(t) for t in p.outputs[slug])
            click.echo(f"   - {slug}{family}: {short_text(p.prompts[slug], 70)!r} -> {outputs}")
        if p.status != "accepted":
            click.echo(f"   accept: circuitkb families accept {p.name} [--name NAME]")
    if found.kept_apart:
        click.echo("\nsame question, kept apart (their features cannot be compared):")
        for k in found.kept_apart:
            click.echo(f"   {k.slug_a} ~ {k.slug_b} (prompt similarity {k.prompt_similarity:.3f}): {k.reason}")


@families.command("accept")
@click.argument("proposal")
@click.option("--name", help="The family's name (default: the name proposed).")
@click.option("--replace", is_flag=True, help="Move graphs that are in another family already (from a manifest or accepted before).")
@selection_options
@as_option
@json_option
@click.pass_context
def families_accept(ctx: click.Context, proposal: str, name: str | None, replace: bool, selection: Selection, as_name: str | None, as_json: bool) -> None:
    """Make the graphs of proposal PROPOSAL (its name as `families propose`, with the same options, prints it) one family."""
    from kb.families import accept_proposal, propose_families

    with open_kb(ctx) as kb:
        chosen = propose_families(kb, selection).named(proposal)
        change = accept_proposal(kb, actor_of(kb, as_name), chosen, name, replace=replace)
    _print_change(change, as_json)


@families.command("list")
@selection_options
@json_option
@click.pass_context
def families_list(ctx: click.Context, selection: Selection, as_json: bool) -> None:
    """The families of the chosen graphs, with their graphs and languages."""
    from kb.families import list_families

    with open_kb(ctx) as kb:
        found = list_families(kb, selection)
    if as_json:
        echo_json([f.as_dict() for f in found])
    elif found:
        echo_table([{"family": f.name, "graphs": len(f.slugs), "languages": ",".join(f.languages), "transcoder sets": ",".join(f.transcoder_sets), "slugs": short_text(" ".join(f.slugs), 80)} for f in found])
    else:
        click.echo("no families yet: `circuitkb families propose` finds some in the prompts")


@families.command("add")
@click.argument("name")
@click.argument("slugs", nargs=-1, required=True)
@click.option("--replace", is_flag=True, help="Move graphs that are in another family already (from a manifest or accepted before).")
@as_option
@json_option
@click.pass_context
def families_add(ctx: click.Context, name: str, slugs: tuple[str, ...], replace: bool, as_name: str | None, as_json: bool) -> None:
    """Put the graphs SLUGS in family NAME (made if new)."""
    from kb.families import add_to_family

    with open_kb(ctx) as kb:
        change = add_to_family(kb, actor_of(kb, as_name), name, slugs, replace=replace)
    _print_change(change, as_json)


@families.command("remove")
@click.argument("slugs", nargs=-1, required=True)
@as_option
@json_option
@click.pass_context
def families_remove(ctx: click.Context, slugs: tuple[str, ...], as_name: str | None, as_json: bool) -> None:
    """Take the graphs SLUGS out of their family."""
    from kb.families import remove_from_family

    with open_kb(ctx) as kb:
        change = remove_from_family(kb, actor_of(kb, as_name), slugs)
    _print_change(change, as_json)


@families.command("rename")
@click.argument("old")
@click.argument("new")
@as_option
@json_option
@click.pass_context
def families_rename(ctx: click.Context, old: str, new: str, as_name: str | None, as_json: bool) -> None:
    """Call family OLD by the name NEW."""
    from kb.families import rename_family

    with open_kb(ctx) as kb:
        change = rename_family(kb, actor_of(kb, as_name), old, new)
    _print_change(change, as_json)


@families.command("clear")
@click.argument("name")
@as_option
@json_option
@click.pass_context
def families_clear(ctx: click.Context, name: str, as_name: str | None, as_json: bool) -> None:
    """Take every graph out of family NAME (the family is gone; its graphs stay)."""
    from kb.families import clear_family

    with open_kb(ctx) as kb:
        change = clear_family(kb, actor_of(kb, as_name), name)
    _print_change(change, as_json)


def _print_change(change: FamilyChange, as_json: bool) -> None:
    if as_json:
        echo_json(change.as_dict())
        return
    moved, unchanged = change.moved, change.unchanged
    if not moved:
        click.echo(f"nothing to change: {len(unchanged)} graph(s) already as asked")
        return
    click.echo(f"{change.action}: {len(moved)} graph(s) changed, {len(unchanged)} already as asked")
    echo_table([{"graph": m.slug, "family before": m.before or "-", "family now": m.after or "-"} for m in moved])


COMMANDS: list[click.Command] = [families]
