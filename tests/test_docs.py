"""The documentation is tested, as datasette tests its own.

- Every ``circuitkb`` command line in a fenced code block of README.md or docs/*.md runs, through
  click's CliRunner, against one small demo knowledge base (``circuitkb demo --graphs 8``), and
  exits 0 (or the status the docs give it, ``EXIT_STATUS``) with something printed. Commands
  that start a server (``SERVERS``) are only parsed: command, options and values must be valid.
- Every ``circuitkb ...`` synopsis in inline code names a real command and real options.
- Every command and option of the CLI is documented: each command is named, and each option
  appears in a paragraph (a bullet, a table, one line of a code block) that names its command;
  an option that several commands share through ``kb.cli.options`` may be documented once.

The examples are written for a reader, so some words stand for data. Here they become:

    SLUG, SLUG_A, SLUG_B   graphs of the demo corpus (A and B: two languages of one family)
    NODE_ID                the most influential feature node of SLUG
    FOLDER, corpus/        the demo corpus (graph files and their manifest.csv) in the
                           working folder, where files the commands write (-o ...) land too
    features/*.json        a small Neuronpedia explanations file, written by the test
    --family opposite      a family of the demo corpus in several languages
    PROPOSAL               a family `circuitkb families propose` finds in the demo corpus
    gemma-2-2b/clt-hp/20/1234   a feature of SLUG (described in features/)

Globs are expanded as a shell would. Each ``circuitkb demo`` line runs in a fresh home.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import click
import pytest
from click.testing import CliRunner

from kb.api import KB
from kb.cli import main, options
from kb.config import SETTINGS, Config
from kb.families import propose_families

# builds a demo knowledge base and runs every documented command: about 20 s
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SERVERS = {("neo4j", "start"), ("app",)}
EXIT_STATUS = {("neo4j", "status"): 1}  # "exit status 1 when it does not run"
OUTPUT_OPTIONS = {"-o", "--output", "--csv"}


@dataclass(frozen=True)
class Example:
    where: str  # file:line
    line: str


def fenced_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line inside a fenced code block that is not Python."""
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
        elif fence is not None and fence not in ("python", "py"):
            yield number, line


def examples() -> list[Example]:
    found = []
    for path in DOCS:
        for number, line in fenced_lines(path):
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words.pop(0)
            if words[:1] == ["circuitkb"]:
                found.append(Example(f"{path.relative_to(ROOT)}:{number}", line))
    return found


def command_path(words: list[str]) -> tuple[click.Command, tuple[str, ...]]:
    """The command the words after ``circuitkb`` name (skipping the group's own options)."""
    command: click.Command = main
    path: list[str] = []
    rest = list(words)
    while isinstance(command, click.Group) and rest:
        word = rest.pop(0)
        if word in ("--home",):
            rest.pop(0)
        elif word in command.commands:
            command = command.commands[word]
            path.append(word)
        elif not word.startswith("-"):
            raise AssertionError(f"no command {' '.join([*path, word])!r}")
    return command, tuple(path)


def parse_only(words: list[str]) -> click.Command:
    """Parse a command line as ``circuitkb`` would, converting every value, without running it."""
    command: click.Command = main
    name, parent, rest = "circuitkb", None, list(words)
    while True:
        ctx = click.Context(command, info_name=name, parent=parent)
        rest = click.Command.parse_args(command, ctx, rest)  # the group's options only, for a group
        if not isinstance(command, click.Group):
            return command
        name, found, rest = command.resolve_command(ctx, rest)
        assert found is not None and name is not None
        command, parent = found, ctx


# --- the demo knowledge base the examples run on --------------------------------------------------


@dataclass(frozen=True)
class Demo:
    home: Path
    work: Path  # the working folder: corpus/, features/, and what the commands write
    names: dict[str, str]  # placeholder -> value, for whole words
    values: dict[tuple[str, str], str]  # (option, value in the docs) -> value here


def clean_env(home: Path) -> dict[str, str | None]:
    """The embedded default in ``home``, whatever CIRCUITKB_* variables the test run has."""
    return {**{s.env: None for s in SETTINGS}, "CIRCUITKB_HOME": str(home)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    home = tmp_path_factory.mktemp("docs-home")
    work = tmp_path_factory.mktemp("docs-work")
    built = CliRunner().invoke(main, ["demo", "--graphs", "8"], env=clean_env(home))
    assert built.exit_code == 0, built.output
    shutil.copytree(home / "demo-corpus", work / "corpus")
    (work / "features").mkdir()
    with KB.open(Config.load(env={"CIRCUITKB_HOME": str(home)})) as kb:
        graphs = kb.select()
        by_family: dict[str, list] = {}
        for graph in graphs:
            by_family.setdefault(graph.family or "", []).append(graph)
        family = next(name for name, members in by_family.items() if len({g.language for g in members}) > 1)
        pair = by_family[family][:2]
        slug = graphs[0].slug
        doc = kb.export(slug)
        proposal = propose_families(kb).proposals[0].name
    node = min((n for n in doc["nodes"] if n.get("feature_type") == "cross layer transcoder"), key=lambda n: n["influence"])
    shared = CliRunner().invoke(main, ["shared", "--graph", slug, "--json"], env=clean_env(home))
    feature = json.loads(shared.output)["features"][0]["feature"]
    assert feature["transcoder_set"] == "gemma-2-2b/clt-hp"
    layer, index = feature["layer"], feature["index"]
    (work / "features" / f"np_explanations_gemma-2-2b_{layer}-clt-hp.json").write_text(
        json.dumps({str(index): [{"type": "oai_token-act-pair", "author": "alice", "text": "the opposite of a word"}]}), encoding="utf-8"
    )
    names = {
        "SLUG": slug,
        "SLUG_A": pair[0].slug,
        "SLUG_B": pair[1].slug,
        "NODE_ID": node["node_id"],
        "FOLDER": "corpus",
        "PROPOSAL": proposal,
        "gemma-2-2b/clt-hp/20/1234": f"gemma-2-2b/clt-hp/{layer}/{index}",
    }
    return Demo(home, work, names, {("--family", "opposite"): family})


def substitute(words: list[str], demo: Demo) -> list[str]:
    out: list[str] = []
    for word in words:
        if out and (out[-1], word) in demo.values:
            word = demo.values[(out[-1], word)]
        word = demo.names.get(word, word)
        if any(c in word for c in "*?["):
            matches = sorted(glob.glob(word))
            assert matches, f"{word} matches no file"
            out.extend(matches)
        else:
            out.append(word)
    return out


# --- the tests ---------------------------------------------------------------------------------


def test_the_docs_show_commands() -> None:
    where = {e.where.split(":")[0] for e in examples()}
    assert {"README.md", "docs/analyses.md", "docs/search.md"} <= where


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.where)
def test_every_command_in_the_docs_runs(example: Example, demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(demo.work)
    words = shlex.split(example.line, comments=True)
    env: dict[str, str | None] = {}
    while re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    words = substitute(words[1:], demo)
    command, path = command_path(words)
    if path in SERVERS:
        assert parse_only(words) is command
        return
    home = tmp_path / "home" if path == ("demo",) else demo.home
    result = CliRunner().invoke(main, words, env={**clean_env(home), **env}, catch_exceptions=False)
    assert result.exit_code == EXIT_STATUS.get(path, 0), f"{example.line}\n{result.output}"
    assert result.output.strip(), example.line
    for option, value in zip(words, words[1:]):
        if option in OUTPUT_OPTIONS:
            assert Path(value).stat().st_size > 0, f"{example.line}: {value} not written"


def inline_synopses() -> Iterator[tuple[str, str]]:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        for match in re.finditer(r"`(circuitkb\s[^`]*)`", text):
            yield str(path.relative_to(ROOT)), match.group(1)


def test_every_synopsis_in_the_docs_names_real_commands_and_options() -> None:
    checked = 0
    for where, synopsis in inline_synopses():
        words = [w.strip("[]|") for w in synopsis.split()[1:]]
        command, path = command_path(words)
        known = {opt for p in [*command.params, *main.params] for opt in [*p.opts, *p.secondary_opts]}
        for word in words[len(path):]:
            if word.startswith("-") and len(word) > 1:
                assert word.split("=")[0] in known, f"{where}: `{synopsis}`: circuitkb {' '.join(path)} has no option {word}"
        checked += 1
    assert checked > 20


def paragraphs() -> list[str]:
    """The docs cut into paragraphs: blank-line blocks, each bullet, each line of a code block."""
    found: list[str] = []
    for path in DOCS:
        current: list[str] = []
        in_code = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("```"):
                in_code = not in_code
                found.append("\n".join(current))
                current = []
            elif in_code:
                found.append(line)
            elif not line.strip() or line.lstrip().startswith(("- ", "* ", "#")):
                found.append("\n".join(current))
                current = [line]
            else:
                current.append(line)
        found.append("\n".join(current))
    return [p for p in found if p.strip()]


def all_commands(command: click.Command = main, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from all_commands(sub, (*path, name))


def shared_options() -> set[tuple[tuple[str, ...], str | None]]:
    """The options that kb.cli.options gives to several commands, as (names, help)."""

    @click.command()
    @options.selection_options
    @options.json_option
    @options.transcoder_set_option
    @options.token_options
    @options.neo4j_dir_option
    @options.as_option
    @options.model_option
    def probe(**kwargs: object) -> None: ...

    return {(tuple(p.opts), getattr(p, "help", None)) for p in probe.params}


def mentions(text: str, word: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


def test_every_command_and_option_is_documented() -> None:
    parts = paragraphs()
    everything = "\n".join(parts)
    shared = shared_options()
    missing = []
    for path, command in all_commands():
        name = " ".join(("circuitkb", *path))
        own = [p for p in parts if mentions(p, name)] if path else parts
        if path and not own:
            missing.append(name)
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            anywhere = not path or (tuple(param.opts), param.help) in shared
            where = [everything] if anywhere else own
            if not any(mentions(text, opt) for text in where for opt in param.opts):
                missing.append(f"{name} {'/'.join(param.opts)}")
    assert not missing, "not documented in README.md or docs/*.md: " + ", ".join(missing)
