"""The development Neo4j server (devserver/): start, query with the password, idempotence, stop, bulk import.

These start real JVMs (Java 17+ and Maven needed; the first build fetches Neo4j's jars) and take
about a minute in all: they are marked slow, but for the few that start no server.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j import GraphDatabase

from devserver import neo4j as neo4j_server
from devserver.neo4j_bulk import bulk_import
from kb.errors import ServerError

if (shutil.which("java") is None or shutil.which("mvn") is None) and os.environ.get("CI") == "true":
    pytest.fail("the development Neo4j needs Java 17+ and Maven, and CI must have them", pytrace=False)

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("mvn") is None, reason="needs Java 17+ and Maven"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(info: neo4j_server.ServerInfo, query: str) -> list[dict]:
    with GraphDatabase.driver(info.uri, auth=(info.user, info.password)) as driver:
        records, _, _ = driver.execute_query(query)
    return [record.data() for record in records]


@pytest.fixture(scope="module")
def first_start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, str]]:
    """A dev server started for this module, with what the start logged (every level)."""
    home = tmp_path_factory.mktemp("neo4j-dev")
    port = free_port()
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    logger = logging.getLogger("devserver")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        neo4j_server.start(home, port=port)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    yield home, port, logged.getvalue()
    neo4j_server.stop(home)


@pytest.fixture(scope="module")
def server_home(first_start: tuple[Path, int, str]) -> tuple[Path, int]:
    return first_start[0], first_start[1]


@pytest.mark.slow
def test_start_answers_with_the_generated_password(server_home: tuple[Path, int]) -> None:
    home, port = server_home
    info = neo4j_server.start(home, port=port)
    assert info.uri == f"bolt://127.0.0.1:{port}"
    assert info.user == "neo4j"
    assert info.password == (home / "password").read_text().strip()
    assert run(info, "RETURN 1 AS one") == [{"one": 1}]


@pytest.mark.slow
def test_user_must_not_change_password(server_home: tuple[Path, int]) -> None:
    info = neo4j_server.start(*server_home)
    with GraphDatabase.driver(info.uri, auth=(info.user, info.password)) as driver:
        records, _, _ = driver.execute_query("SHOW CURRENT USER YIELD user, passwordChangeRequired")
    assert [record.data() for record in records] == [{"user": "neo4j", "passwordChangeRequired": False}]
    assert run(info, "CALL dbms.components() YIELD versions, edition RETURN versions, edition") == [
        {"versions": [neo4j_server.NEO4J_VERSION], "edition": "community"}
    ]


@pytest.mark.slow
def test_wrong_password_is_refused(server_home: tuple[Path, int]) -> None:
    info = neo4j_server.start(*server_home)
    with GraphDatabase.driver(info.uri, auth=(info.user, info.password + "x")) as driver:
        with pytest.raises(Exception, match="unauthorized|authentication"):
            driver.verify_connectivity()


@pytest.mark.slow
def test_status_reports_the_running_server(server_home: tuple[Path, int]) -> None:
    info = neo4j_server.start(*server_home)
    assert neo4j_server.status(server_home[0]) == info
    assert (server_home[0] / "neo4j.pid").read_text().strip() == str(info.pid)


@pytest.mark.slow
def test_start_twice_is_idempotent(server_home: tuple[Path, int]) -> None:
    first = neo4j_server.start(*server_home)
    second = neo4j_server.start(*server_home)
    assert second == first


@pytest.mark.slow
def test_password_is_private_and_never_logged(
    first_start: tuple[Path, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    home, port, start_log = first_start
    assert "Starting Neo4j" in start_log  # the real start, which makes the password, was logged
    with caplog.at_level(logging.DEBUG):
        info = neo4j_server.start(home, port=port)
    password_file = home / "password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert info.password not in repr(info)
    assert info.password not in start_log and info.password not in caplog.text
    logs = [home / "neo4j.log", *(home / "neo4j" / "logs").glob("*.log")]
    for log_file in logs:
        assert info.password not in log_file.read_text(errors="replace"), log_file


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ServerError, match="in use"):
            neo4j_server.start(tmp_path, port=taken.getsockname()[1])


@pytest.mark.slow
def test_stop_then_status_is_none(server_home: tuple[Path, int]) -> None:
    home, port = server_home
    neo4j_server.start(home, port=port)
    assert neo4j_server.stop(home) is True
    assert neo4j_server.status(home) is None
    assert not (home / "neo4j.pid").exists()
    assert neo4j_server.stop(home) is False


@pytest.mark.slow
def test_server_outlives_the_process_that_started_it(server_home: tuple[Path, int]) -> None:
    home, port = server_home
    neo4j_server.stop(home)
    script = f"from pathlib import Path; from devserver import neo4j; neo4j.start(Path({str(home)!r}), port={port})"
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    try:
        info = neo4j_server.status(home)
        assert info is not None
        assert run(info, "RETURN 2 AS two") == [{"two": 2}]
        assert neo4j_server.start(home, port=port) == info
    finally:
        assert neo4j_server.stop(home) is True
    assert neo4j_server.status(home) is None


def test_bad_arguments_and_missing_java_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServerError, match="heap"):
        neo4j_server.start(tmp_path, port=free_port(), heap="lots")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(ServerError, match="JAVA_HOME"):
        neo4j_server.start(tmp_path, port=free_port())


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_bulk_import_then_serve_the_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    nodes = write_csv(tmp_path / "nodes.csv", ["fid:ID(Feature),layer:long,:LABEL", "a,0,Feature", "b,1,Feature"])
    edges = write_csv(
        tmp_path / "edges.csv", [":START_ID(Feature),:END_ID(Feature),weight:double,:TYPE", "a,b,0.5,EDGE"]
    )

    elapsed = bulk_import(home, "neo4j", [nodes], [edges])
    assert 0 < elapsed < 300
    assert (home / "neo4j" / "data" / "databases" / "neo4j").is_dir()

    port = free_port()
    try:
        info = neo4j_server.start(home, port=port)
        query = "MATCH (a:Feature)-[e:EDGE]->(b:Feature) RETURN a.fid AS a, a.layer AS layer, e.weight AS w, b.fid AS b"
        assert run(info, query) == [{"a": "a", "layer": 0, "w": 0.5, "b": "b"}]
        with pytest.raises(ServerError, match="running"):
            bulk_import(home, "neo4j", [nodes], [edges])
    finally:
        neo4j_server.stop(home)

    # Re-import over the existing store of a home whose system database already exists.
    more = write_csv(tmp_path / "more.csv", ["fid:ID(Feature),layer:long,:LABEL", "c,2,Feature", "d,3,Feature"])
    more_edges = write_csv(tmp_path / "more_edges.csv", [":START_ID(Feature),:END_ID(Feature),:TYPE", "c,d,EDGE"])
    bulk_import(home, "neo4j", [nodes, more], [edges, more_edges])
    try:
        info = neo4j_server.start(home, port=port)
        assert run(info, "MATCH (n:Feature) RETURN count(n) AS n") == [{"n": 4}]
        assert run(info, "MATCH ()-[e:EDGE]->() RETURN count(e) AS n") == [{"n": 2}]
    finally:
        neo4j_server.stop(home)


def test_bulk_import_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="not found"):
        bulk_import(tmp_path, "neo4j", [tmp_path / "absent.csv"], [])
