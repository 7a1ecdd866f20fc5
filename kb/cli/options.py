"""Options shared by several ``circuitkb`` commands, each written once as a decorator."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import click

from kb.config import Config


def open_kb(ctx: click.Context):  # noqa: ANN201
    """The KB of the configuration the ``circuitkb`` group read."""
    from kb.api import KB

    config: Config = ctx.find_root().obj["config"]
    return KB.open(config)


PASSWORD_ENV = "CIRCUITKB_PASSWORD"


def as_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--as", "as_name", metavar="NAME", help=f"Act as this user (password from ${PASSWORD_ENV} or a prompt).")(fn)


def acting_user(kb: Any, name: str | None) -> Any:
    """Who a command acts as, given its ``--as`` (see :func:`kb.labels.accounts.acting_user`)."""
    from kb.labels import accounts

    if not accounts.has_accounts(kb) or name is None:
        return accounts.acting_user(kb, name)
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = click.prompt(f"password for {name}", hide_input=True, err=True)
    return accounts.authenticate(kb, name, password)


def model_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--model", help="Model id for short feature references like 20-clt-hp/1234.")(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(fn)


def selection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options that choose graphs; the command receives them as one ``selection`` argument."""
    from kb.selection import Selection

    @click.option("--graph", "slugs", multiple=True, help="A graph slug (repeatable).")
    @click.option("--tag", "tags", multiple=True, help="Graphs with this tag (repeatable: all must match).")
    @click.option("--family", help="Graphs of this prompt family.")
    @click.option("--language", "languages", multiple=True, help="Graphs in this language, e.g. en (repeatable: any).")
    @click.option("--model", help="Model id or transcoder set.")
    @click.option("--prompt", "prompt_contains", help="Graphs whose prompt contains this text.")
    @click.option("--set", "saved_set", help="A saved set of graphs.")
    @functools.wraps(fn)
    def wrapper(*args: Any, slugs, tags, family, languages, model, prompt_contains, saved_set, **kwargs: Any) -> Any:  # noqa: ANN001
        kwargs["selection"] = Selection(
            slugs=tuple(slugs),
            tags=tuple(tags),
            family=family,
            languages=tuple(languages),
            model=model,
            prompt_contains=prompt_contains,
            saved_set=saved_set,
        )
        return fn(*args, **kwargs)

    return wrapper


def transcoder_set_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The transcoder set that short feature references (``L20/1234``) belong to."""
    return click.option("--transcoder-set", help="Transcoder set of short references like L20/1234 (e.g. gemma-2-2b/clt-hp).")(fn)


def token_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A prompt token, by its text or its position."""
    fn = click.option("--position", type=int, help="The prompt position (0 is <bos>; -1 the last token).")(fn)
    return click.option("--token", help="The prompt token, by its text (e.g. Dallas).")(fn)


def neo4j_dir_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The folder of the development Neo4j server."""
    return click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), help="Server folder (default HOME/neo4j).")(fn)
