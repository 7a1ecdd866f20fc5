"""The CLI's demo, the configuration, manifests, language detection, and exports the viewers accept."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import jsonschema
import pytest
from click.testing import CliRunner

from ingest.language import detect_language
from ingest.manifest import load_manifest
from kb.api import KB
import app
from kb.cli import app as app_command
from kb.cli import main
from kb.config import SETTINGS, Config
from kb.errors import CircuitKBError, ConfigError
from tests.conftest import DATA, GRAPHS


@pytest.mark.slow
def test_exports_validate_against_neuronpedias_schema(sqlite_kb: KB) -> None:
    schema = json.loads((DATA / "neuronpedia-graph-schema.json").read_text())
    report = sqlite_kb.ingest([GRAPHS])
    assert not report.failed
    graphs = sqlite_kb.select()
    assert len(graphs) == len(list(GRAPHS.glob("*.json"))) == 9
    for graph in graphs:
        jsonschema.validate(sqlite_kb.export(graph.slug), schema)


@pytest.mark.slow
def test_demo_generates_ingests_and_says_what_next(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "demo", "--graphs", "12"])
    assert result.exit_code == 0, result.output
    assert "holds 12 graphs" in result.output and "Try next" in result.output
    assert result.output.rstrip().endswith(f"circuitkb --home {tmp_path} app")
    with KB.open(Config.load(home=tmp_path, env={})) as kb:
        graphs = kb.select()
        assert len(graphs) == 12
        assert {g.language for g in graphs} > {"en"}  # families in several languages, tagged by the manifest
        assert all(g.slug.startswith("synth-") for g in graphs)


@pytest.mark.slow
def test_demo_on_a_folder_of_real_graphs(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "demo", str(GRAPHS)])
    assert result.exit_code == 0, result.output
    assert "holds 9 graphs" in result.output


def test_config_reads_the_environment_and_hides_secrets(tmp_path: Path) -> None:
    config = Config.load(env={})
    assert config.home == Path.home() / ".circuitkb" and config.graph_store == "embedded"
    config = Config.load(
        home=tmp_path,
        env={
            "CIRCUITKB_HOME": "/elsewhere",
            "CIRCUITKB_SQL_URL": "postgresql://u:pw-123@db/kb",
            "CIRCUITKB_NEO4J_URI": "neo4j+s://abc.databases.neo4j.io",
            "CIRCUITKB_NEO4J_PASSWORD": "neo-pw",
        },
    )
    assert config.home == tmp_path and config.graph_store == "neo4j"
    shown = json.dumps(config.describe()) + repr(config)
    assert "pw-123" not in shown and "neo-pw" not in shown
    with pytest.raises(ConfigError):
        Config.load(env={"CIRCUITKB_NEO4J_URI": "http://localhost:7474"})
    assert config.search_index is None and config.describe()["search_index"] == "neo4j"
    assert Config.load(env={"CIRCUITKB_SEARCH_INDEX": " Local "}).search_index == "local"
    with pytest.raises(ConfigError, match="CIRCUITKB_SEARCH_INDEX must be one of local, neo4j"):
        Config.load(env={"CIRCUITKB_SEARCH_INDEX": "pgvector"})
    with pytest.raises(ConfigError, match="needs the graphs in Neo4j"):
        Config.load(env={"CIRCUITKB_SEARCH_INDEX": "neo4j"})


def test_secrets_in_a_database_url_query_or_a_neo4j_address_are_never_shown(tmp_path: Path) -> None:
    # libpq takes the password as a query parameter too
    config = Config.load(home=tmp_path, env={"CIRCUITKB_SQL_URL": "postgresql://u@db/kb?password=q-pw-9&sslmode=require&sslpassword=k-pw-7"})
    shown = json.dumps(config.describe()) + repr(config)
    assert "q-pw-9" not in shown and "k-pw-7" not in shown
    assert config.describe()["sql"] == "postgresql://u@db/kb?password=***&sslmode=require&sslpassword=***"
    # the driver would print an address with credentials whole in its errors: refused, masked
    with pytest.raises(ConfigError, match="CIRCUITKB_NEO4J_USER and CIRCUITKB_NEO4J_PASSWORD") as refused:
        Config.load(home=tmp_path, env={"CIRCUITKB_NEO4J_URI": "bolt://neo4j:n4-pw-5@db.example:7687"})
    assert "n4-pw-5" not in str(refused.value)
    assert Config.load(home=tmp_path, env={"CIRCUITKB_NEO4J_URI": "neo4j://db.example:7687/"}).neo4j_uri == "neo4j://db.example:7687/"


def test_yaml_manifest_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("graphs:\n  - path: a/*.json\n    family: caps\n    language: FR\n    tags: [x, y]\n  - slug: s1\n    tags: 'p; q'\n")
    manifest = load_manifest(tmp_path / "m.yaml")
    hit = manifest.lookup(tmp_path / "a" / "one.json", "whatever")
    assert hit is not None and hit.family == "caps" and hit.language == "fr" and hit.tags == ("x", "y")
    assert manifest.lookup(tmp_path / "b.json", "s1").tags == ("p", "q")
    (tmp_path / "bad.csv").write_text("file,family\nx.json,f\n")
    with pytest.raises(CircuitKBError, match="line 1"):
        load_manifest(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("path,language\nx.json,english\n")
    with pytest.raises(CircuitKBError, match="line 2"):
        load_manifest(tmp_path / "bad2.csv")
    # a manifest saved in another encoding: the line, not a traceback; a byte-order mark is fine
    for name in ("latin1.csv", "latin1.yaml"):
        body = b"path,family\nx.json,caf\xe9\n" if name.endswith(".csv") else b"graphs:\n  - path: x.json\n    family: caf\xe9\n"
        (tmp_path / name).write_bytes(body)
        with pytest.raises(CircuitKBError, match=r"line [23]: not UTF-8 text \(byte 0xe9\)"):
            load_manifest(tmp_path / name)
    # two entries for one file, or more fields than the header: which was meant is unclear
    (tmp_path / "twice.csv").write_text("path,family\nx.json,a\ny.json,b\nx.json,c\n")
    with pytest.raises(CircuitKBError, match=r"line 4: path x.json is already tagged at line 2"):
        load_manifest(tmp_path / "twice.csv")
    (tmp_path / "twice.yaml").write_text("- slug: s1\n  family: a\n- slug: s1\n  family: b\n")
    with pytest.raises(CircuitKBError, match=r"entry 1: slug s1 is already tagged at entry 0"):
        load_manifest(tmp_path / "twice.yaml")
    (tmp_path / "wide.csv").write_text("path,family\nx.json,a,extra,cols\n")
    with pytest.raises(CircuitKBError, match=r"line 2: 4 fields, but the header names 2 columns"):
        load_manifest(tmp_path / "wide.csv")
    (tmp_path / "bom.csv").write_bytes("\ufeffpath,family\nx.json,café\n".encode("utf-8"))
    assert load_manifest(tmp_path / "bom.csv").lookup(tmp_path / "x.json", "any").family == "café"


@pytest.mark.parametrize(
    ("prompt", "language"),
    [
        ('<bos>The opposite of "small" is "', "en"),
        ('<bos>Le contraire de "petit" est "', "fr"),
        ('<bos>"小"的反义词是"', "zh"),
        ('<bos>「小さい」の反対は「', "ja"),
        ('<bos>Das Gegenteil von "klein" ist "', "de"),
        ("<bos>", None),
    ],
)
def test_language_detection(prompt: str, language: str | None) -> None:
    assert detect_language(prompt) == language


# --- the command's structure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["export", "nope"], {}, "no graph with slug 'nope'"),  # NotFoundError, raised inside a command
        (["subgraph", "nope"], {}, "either --top N or --around NODE"),  # CircuitKBError raised by the command itself
        (["stats"], {"CIRCUITKB_NEO4J_URI": "http://localhost:7474"}, "CIRCUITKB_NEO4J_URI must start with"),  # ConfigError, in the group
    ],
)
def test_the_group_turns_our_errors_into_one_line_and_exit_status_2(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path), *args], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_an_empty_folder_to_ingest_is_an_error_as_a_pattern_matching_nothing_is(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for what, message in ((tmp_path / "empty", "the folder holds no .json or .json.gz file"), (tmp_path / "empty" / "*.json", "the pattern matches no")):
        result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "ingest", str(what)])
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_errors_are_handled_only_by_the_group() -> None:
    sources = {p.name: p.read_text(encoding="utf-8") for p in Path(app_command.__file__).parent.glob("*.py")}
    assert len(sources) >= 8
    assert [name for name, text in sources.items() if "except CircuitKBError" in text] == ["__init__.py"]


def test_every_command_is_named_in_the_lazy_map_of_its_module() -> None:
    import importlib

    from kb.cli import COMMAND_MODULES

    found = {}
    for path in sorted(Path(app_command.__file__).parent.glob("[!_]*.py")):
        module = importlib.import_module(f"kb.cli.{path.stem}")
        found.update({command.name: module.__name__ for command in getattr(module, "COMMANDS", ())})
    assert found == COMMAND_MODULES
    assert sorted(main.list_commands(click.Context(main))) == sorted(COMMAND_MODULES)


def test_every_command_answers_help() -> None:
    def walk(command: click.Command, path: list[str]) -> list[list[str]]:
        found = [path]
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                found += walk(sub, [*path, name])
        return found

    paths = walk(main, [])
    assert ["app"] in paths and ["circuits", "two-hop"] in paths and ["neo4j", "status"] in paths
    for path in paths:
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, path


def test_other_exceptions_are_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Config, "describe", broken)
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "config"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_the_cli_runs_as_a_module(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "kb.cli", "--home", str(tmp_path), "config"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["home"] == str(tmp_path)


# --- circuitkb app -------------------------------------------------------------------------------


def test_app_runs_streamlit_on_the_configured_knowledge_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launched: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(app_command, "launch", lambda argv, env: launched.append((argv, env)))
    env = {"CIRCUITKB_SQL_URL": "postgresql://u:s3cret-pw@db/kb", "CIRCUITKB_NEO4J_URI": "bolt://127.0.0.1:7999", "CIRCUITKB_NEO4J_PASSWORD": "n30-secret"}
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "app", "--port", "8765"], env=env)
    assert result.exit_code == 0, result.output
    [(argv, child_env)] = launched
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(argv[4]) == Path(app.__file__).parent / "main.py"
    assert dict(zip(argv[5::2], argv[6::2])) == {
        "--server.port": "8765", "--server.address": "127.0.0.1", "--server.headless": "true",
        "--browser.gatherUsageStats": "false", "--client.toolbarMode": "minimal", "--runner.postScriptGC": "false",
    }
    assert Config.load(env=child_env) == Config.load(home=tmp_path, env=env)
    assert child_env["PATH"] == os.environ["PATH"]
    assert "http://127.0.0.1:8765" in result.output
    assert "s3cret-pw" not in result.output and "n30-secret" not in result.output


def test_app_environment_carries_every_setting_and_drops_stale_ones(tmp_path: Path) -> None:
    config = Config(
        home=tmp_path, sql_url="postgresql://u:pw@db/kb", neo4j_uri="neo4j://n:7687", neo4j_user="me",
        neo4j_password="pw2", neo4j_database="graphs", embedding_model="/models/m", search_index="local",
    )  # fmt: skip
    env = app_command.app_environment(config, {"KEEP": "1"})
    assert {s.env for s in SETTINGS if s.env != "CIRCUITKB_PASSWORD"} <= set(env) and env["KEEP"] == "1"
    assert "CIRCUITKB_PASSWORD" not in app_command.app_environment(config, {"CIRCUITKB_PASSWORD": "secret"})
    assert Config.load(env=env) == config
    stale = {"CIRCUITKB_NEO4J_URI": "bolt://elsewhere:1", "CIRCUITKB_NEO4J_PASSWORD": "old", "CIRCUITKB_EMBEDDING_MODEL": "old", "CIRCUITKB_SEARCH_INDEX": "neo4j"}
    env = app_command.app_environment(Config.load(home=tmp_path, env={}), stale)
    assert not set(stale) & set(env)
    assert Config.load(env=env).graph_store == "embedded"


@pytest.mark.slow
def test_app_really_starts_and_answers_its_health_check(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HOME": str(tmp_path)}  # Streamlit's own files stay out of the user's home
    proc = subprocess.Popen(
        [sys.executable, "-m", "kb.cli", "--home", str(tmp_path / "kb"), "app", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        answer, deadline = "", time.monotonic() + 120
        while answer != "ok" and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
                    answer = response.read().decode()
            except OSError:
                time.sleep(0.5)
        assert answer == "ok", f"exit status {proc.poll()}"
    finally:
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}" in output
