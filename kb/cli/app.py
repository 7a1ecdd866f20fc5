"""``circuitkb app``: the Streamlit front end (``app/main.py``) on the configured knowledge base.

The configuration reaches the app through the environment (the ``CIRCUITKB_*`` variables that
``Config.load`` reads), so ``--home`` and every other setting hold in the browser as on the
command line. Secrets travel in the child's environment only and are never printed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Mapping, NoReturn

import click

from kb.config import Config
from kb.errors import CircuitKBError


def app_script() -> Path:
    """``main.py`` of the installed ``app`` package, found without importing it."""
    spec = importlib.util.find_spec("app")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        script = Path(folder) / "main.py"
        if script.is_file():
            return script
    raise CircuitKBError("the Streamlit app (the package 'app' with main.py) is not installed beside kb; reinstall circuitkb")


def app_environment(config: Config, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the ``CIRCUITKB_*`` variables set so that ``Config.load()`` in the app
    reads ``config`` again (unset ones removed, so nothing of ``base`` contradicts it). A CLI
    user's ``CIRCUITKB_PASSWORD`` is never handed on: people sign in to the app themselves."""
    values = {
        "CIRCUITKB_HOME": str(config.home),
        "CIRCUITKB_SQL_URL": config.sql_url,
        "CIRCUITKB_NEO4J_URI": config.neo4j_uri,
        "CIRCUITKB_NEO4J_USER": config.neo4j_user,
        "CIRCUITKB_NEO4J_PASSWORD": config.neo4j_password,
        "CIRCUITKB_NEO4J_DATABASE": config.neo4j_database,
        "CIRCUITKB_EMBEDDING_MODEL": config.embedding_model,
        "CIRCUITKB_SEARCH_INDEX": config.search_index,
    }
    env = dict(base)
    env.pop("CIRCUITKB_PASSWORD", None)
    for name, value in values.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def streamlit_command(config: Config, port: int, host: str, base_env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run the app with this interpreter's Streamlit."""
    argv = [
        sys.executable, "-m", "streamlit", "run", str(app_script()),
        "--server.port", str(port),
        "--server.address", host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",  # nothing leaves the machine
        "--client.toolbarMode", "minimal",  # no "Deploy" button: this app is served here
        # no full garbage collection after every run of a page: with the models and tables this
        # process holds it took 60 ms and the interpreter lock, on every page and every click
        "--runner.postScriptGC", "false",
    ]  # fmt: skip
    return argv, app_environment(config, base_env)


def launch(argv: list[str], env: dict[str, str]) -> NoReturn:
    """Become the Streamlit server, so that Ctrl+C and signals reach it directly."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)


@click.command("app")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="Port of the web server.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.pass_context
def app_cmd(ctx: click.Context, port: int, host: str) -> None:
    """Open the knowledge base in the browser (the Streamlit app), at http://HOST:PORT."""
    config: Config = ctx.find_root().obj["config"]
    argv, env = streamlit_command(config, port, host, os.environ)
    shown = config.describe()
    click.echo(f"circuitkb app on {shown['home']} ({shown['graph_store']} graph store, SQL {shown['sql']}) at http://{host}:{port}", err=True)
    launch(argv, env)


COMMANDS: list[click.Command] = [app_cmd]
