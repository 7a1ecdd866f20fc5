"""The CLI's demo, the configuration, manifests, language detection, and exports the viewers accept."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from ingest.language import detect_language
from ingest.manifest import load_manifest
from kb.api import KB
from kb.cli import main
from kb.config import Config
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
