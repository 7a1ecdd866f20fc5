"""``circuitkb users`` and ``circuitkb labels``: accounts and collaborative labelling.

Writes act as a user: ``--as NAME`` with the password from ``CIRCUITKB_PASSWORD`` or a prompt.
A knowledge base without accounts is single-user and needs neither (``--as`` then only names
the author). An edit that conflicts with someone else's exits with status 3 and prints their
text; a write the user's role does not allow exits with status 2 and names the role needed.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from kb.cli.options import actor_of, as_option, json_option, model_option, open_kb
from kb.cli.output import echo_json, echo_table
from kb.errors import EditConflict

CONFLICT_STATUS = 3


def _reader(kb: Any, name: str | None) -> Any:
    from kb.labels.labels import can_read

    actor = actor_of(kb, name)
    can_read(kb, actor)
    return actor


def _feature(ref: str, model: str | None) -> Any:
    from kb.featureref import parse_feature_ref

    return parse_feature_ref(ref, model=model)


def conflicts_exit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An EditConflict prints the other editor's text and exits with status 3."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EditConflict as exc:
            click.echo(f"conflict: {exc}", err=True)
            if kwargs.get("as_json"):
                echo_json({"conflict": True, "current_version": exc.current_version, "current_text": exc.current_text, "edited_by": exc.edited_by})
            else:
                click.echo(exc.current_text)
            sys.exit(CONFLICT_STATUS)

    return wrapper


# --- users ------------------------------------------------------------------------------------------------


@click.group("users")
def users() -> None:
    """Accounts and roles (viewer, labeller, admin). The first account must be an admin: creating it turns sign-in on."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "labeller", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input instead of a prompt.")
@as_option
@json_option
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str, password_stdin: bool, as_name: str | None, as_json: bool) -> None:
    """Create an account NAME with a role (admins only)."""
    from kb.labels import accounts

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True, err=True)
    with open_kb(ctx) as kb:
        made = accounts.add_user(kb, actor_of(kb, as_name), name, password, role)
    if as_json:
        echo_json(made)
    else:
        click.echo(f"added {made['name']} ({made['role']})")


@users.command("list")
@as_option
@json_option
@click.pass_context
def users_list(ctx: click.Context, as_name: str | None, as_json: bool) -> None:
    """Every account and its role."""
    from kb.labels import accounts

    with open_kb(ctx) as kb:
        _reader(kb, as_name)
        rows = accounts.list_users(kb)
    if as_json:
        echo_json(rows)
    elif rows:
        echo_table(rows)
    else:
        click.echo("no accounts: this knowledge base is single-user")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(["viewer", "labeller", "admin"]))
@as_option
@json_option
@click.pass_context
def users_set_role(ctx: click.Context, name: str, role: str, as_name: str | None, as_json: bool) -> None:
    """Give account NAME another role (admins only)."""
    from kb.labels import accounts

    with open_kb(ctx) as kb:
        accounts.set_role(kb, actor_of(kb, as_name), name, role)
    echo_json({"name": name, "role": role}) if as_json else click.echo(f"{name} is now {role}")


@users.command("remove")
@click.argument("name")
@as_option
@json_option
@click.pass_context
def users_remove(ctx: click.Context, name: str, as_name: str | None, as_json: bool) -> None:
    """Remove account NAME (admins only)."""
    from kb.labels import accounts

    with open_kb(ctx) as kb:
        accounts.remove_user(kb, actor_of(kb, as_name), name)
    echo_json({"removed": name}) if as_json else click.echo(f"removed {name}")


# --- labels -----------------------------------------------------------------------------------------------


@click.group("labels")
def labels() -> None:
    """Labels on features: add, edit, vote, discuss, review, share."""


@labels.command("add")
@click.argument("feature")
@click.argument("text")
@click.option("--note", help="A longer explanation.")
@click.option("--confidence", type=click.FloatRange(0, 1), help="How sure you are, 0 to 1.")
@click.option("--graph", "graph_slug", help="Only about the feature in this graph.")
@click.option("--node", "node_id", help="Only about this node of --graph.")
@model_option
@as_option
@json_option
@click.pass_context
def labels_add(ctx: click.Context, feature: str, text: str, note, confidence, graph_slug, node_id, model, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Label FEATURE with TEXT; prints the new label's id and version."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        ref = api.add(kb, actor_of(kb, as_name), _feature(feature, model), text, note=note, confidence=confidence, graph_slug=graph_slug, node_id=node_id)
    echo_json(ref.as_dict()) if as_json else click.echo(f"label {ref.id} version {ref.version}")


@labels.command("edit")
@click.argument("label_id", type=int)
@click.argument("text")
@click.option("--base-version", type=int, required=True, help="The version your edit starts from (from `labels show`).")
@click.option("--note", help="A new note (default: keep it).")
@click.option("--confidence", type=click.FloatRange(0, 1), help="A new confidence (default: keep it).")
@as_option
@json_option
@click.pass_context
@conflicts_exit
def labels_edit(ctx: click.Context, label_id: int, text: str, base_version: int, note, confidence, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Save TEXT as a new version of label LABEL_ID. Exit status 3 if someone saved since --base-version."""
    from kb import labels as api

    changes: dict[str, Any] = {}
    if note is not None:
        changes["note"] = note
    if confidence is not None:
        changes["confidence"] = confidence
    with open_kb(ctx) as kb:
        ref = api.edit(kb, actor_of(kb, as_name), label_id, text, base_version, **changes)
    echo_json(ref.as_dict()) if as_json else click.echo(f"label {ref.id} version {ref.version}")


@labels.command("revert")
@click.argument("label_id", type=int)
@click.option("--to-version", type=int, required=True)
@click.option("--base-version", type=int, help="The version you saw (default: the current one).")
@as_option
@json_option
@click.pass_context
@conflicts_exit
def labels_revert(ctx: click.Context, label_id: int, to_version: int, base_version, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Make an old version of LABEL_ID current again (as a new version)."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        ref = api.revert(kb, actor_of(kb, as_name), label_id, to_version, base_version)
    echo_json(ref.as_dict()) if as_json else click.echo(f"label {ref.id} version {ref.version}")


@labels.command("vote")
@click.argument("label_id", type=int)
@click.option("--down", is_flag=True, help="Vote down (default: up).")
@click.option("--reason", help="Why.")
@as_option
@json_option
@click.pass_context
def labels_vote(ctx: click.Context, label_id: int, down: bool, reason, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Vote on LABEL_ID (one vote per person: voting again replaces your vote)."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        result = api.vote(kb, actor_of(kb, as_name), label_id, up=not down, reason=reason)
    if as_json:
        echo_json(result)
    else:
        click.echo(f"label {label_id}: +{result['up_votes']} -{result['down_votes']}, {result['status']}")


@labels.command("status")
@click.argument("label_id", type=int)
@click.argument("status", type=click.Choice(["proposed", "accepted", "rejected"]))
@as_option
@json_option
@click.pass_context
def labels_status(ctx: click.Context, label_id: int, status: str, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Accept or reject LABEL_ID (admins only)."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        api.set_status(kb, actor_of(kb, as_name), label_id, status)
    echo_json({"id": label_id, "status": status}) if as_json else click.echo(f"label {label_id} is {status}")


@labels.command("comment")
@click.argument("feature")
@click.argument("text")
@model_option
@as_option
@json_option
@click.pass_context
def labels_comment(ctx: click.Context, feature: str, text: str, model, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Add TEXT to FEATURE's discussion."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        comment_id = api.comment(kb, actor_of(kb, as_name), _feature(feature, model), text)
    echo_json({"id": comment_id}) if as_json else click.echo(f"comment {comment_id}")


@labels.command("show")
@click.argument("feature")
@click.option("--graph", "graph_slug", help="Only labels that apply in this graph.")
@click.option("--node", "node_id", help="... and on this node of it.")
@model_option
@as_option
@json_option
@click.pass_context
def labels_show(ctx: click.Context, feature: str, graph_slug, node_id, model, as_name, as_json: bool) -> None:  # noqa: ANN001
    """FEATURE's labels (most up-voted first) with votes, status and history; its discussion and imported descriptions."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        _reader(kb, as_name)
        data = api.show(kb, _feature(feature, model), graph_slug, node_id)
    if as_json:
        echo_json(data)
        return
    if not data["labels"]:
        click.echo("no labels")
    for item in data["labels"]:
        scope = "" if item["graph_slug"] is None else f" [{item['graph_slug']}{'/' + item['node_id'] if item['node_id'] else ''}]"
        click.echo(f"label {item['id']} v{item['version']} {item['status']} +{item['up_votes']} -{item['down_votes']}{scope}: {json.dumps(item['text'], ensure_ascii=False)}")
        for v in item["history"]:
            click.echo(f"    v{v['version']} {v['action']} by {v['editor']} at {v['created_at']}: {json.dumps(v['text'], ensure_ascii=False)}")
        for v in item["votes"]:
            click.echo(f"    {'+' if v['value'] > 0 else '-'} {v['voter']}{': ' + v['reason'] if v['reason'] else ''}")
    for c in data["comments"]:
        click.echo(f"comment by {c['author']} at {c['created_at']}: {c['text']}")
    for d in data["descriptions"]:
        click.echo(f"{d['source']}{' ' + d['graph_slug'] if d['graph_slug'] else ''}: {d['text']}")


@labels.command("activity")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@as_option
@json_option
@click.pass_context
def labels_activity(ctx: click.Context, limit: int, as_name, as_json: bool) -> None:  # noqa: ANN001
    """The newest label versions and votes."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        _reader(kb, as_name)
        rows = api.activity(kb, limit)
    echo_json(rows) if as_json else echo_table(rows)


@labels.command("audit")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@as_option
@json_option
@click.pass_context
def labels_audit(ctx: click.Context, limit: int, as_name, as_json: bool) -> None:  # noqa: ANN001
    """The audit log, newest first (admins only)."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        rows = api.audit_log(kb, actor_of(kb, as_name), limit)
    echo_json(rows) if as_json else echo_table([{**r, "detail": json.dumps(r["detail"], ensure_ascii=False)} for r in rows])


@labels.command("settings")
@click.argument("name", required=False)
@click.argument("value", required=False)
@as_option
@json_option
@click.pass_context
def labels_settings(ctx: click.Context, name, value, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Show the labelling settings, or set NAME to VALUE (admins only)."""
    from kb import labels as api
    from kb.labels import settings

    with open_kb(ctx) as kb:
        if value is not None:
            api.set_setting(kb, actor_of(kb, as_name), name, value)
        else:
            _reader(kb, as_name)
        data = settings.all_settings(kb)
    if as_json:
        echo_json(data)
    else:
        for key, setting in settings.SETTINGS.items():
            click.echo(f"{key} = {data[key]}    ({setting.help})")


@labels.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The .jsonl file to write.")
@as_option
@json_option
@click.pass_context
def labels_export(ctx: click.Context, output: Path, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Write every label (with versions), vote, comment and subgraph to a JSONL file."""
    from kb import labels as api

    with open_kb(ctx) as kb, open(output, "w", encoding="utf-8") as fh:
        n = api.export_jsonl(kb, actor_of(kb, as_name), fh)
    echo_json({"output": str(output), "records": n}) if as_json else click.echo(f"wrote {n} records to {output}", err=True)


@labels.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@as_option
@json_option
@click.pass_context
def labels_import(ctx: click.Context, path: Path, as_name, as_json: bool) -> None:  # noqa: ANN001
    """Add the labels, votes, comments and subgraphs of a JSONL file that this knowledge base lacks (admins only)."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        report = api.import_jsonl(kb, actor_of(kb, as_name), path)
    data = report.as_dict()
    if as_json:
        echo_json(data)
    else:
        click.echo(", ".join(f"{k}: {v if not isinstance(v, list) else len(v)}" for k, v in data.items()))


@labels.command("subgraphs")
@click.argument("slug")
@as_option
@json_option
@click.pass_context
def labels_subgraphs(ctx: click.Context, slug: str, as_name, as_json: bool) -> None:  # noqa: ANN001
    """The saved subgraphs of graph SLUG (the view saved in its file first)."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        _reader(kb, as_name)
        rows = api.subgraphs_of(kb, slug)
    if as_json:
        echo_json(rows)
    else:
        echo_table([{"name": s["name"], "author": s["author"], "version": s["version"], "pinned": len(s["pinned_ids"]), "supernodes": len(s["supernodes"])} for s in rows])


@labels.command("viewer")
@click.argument("slug")
@click.option("--subgraph", "subgraph_name", default="saved in file", show_default=True, help="The saved subgraph to open the viewer on.")
@click.option("--no-labels", is_flag=True, help="Keep the file's clerps instead of the team's labels.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: standard output).")
@as_option
@click.pass_context
def labels_viewer(ctx: click.Context, slug: str, subgraph_name: str, no_labels: bool, output, as_name) -> None:  # noqa: ANN001
    """Graph SLUG as graph JSON for circuit-tracer's and Neuronpedia's viewers, with a subgraph and the team's labels as clerps."""
    from kb import labels as api

    with open_kb(ctx) as kb:
        _reader(kb, as_name)
        doc = api.viewer_json(kb, slug, subgraph_name, team_labels=not no_labels)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    if output is None:
        click.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


COMMANDS: list[click.Command] = [users, labels]
