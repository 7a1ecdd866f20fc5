"""Neo4j's offline bulk importer (``neo4j-admin database import full``) for a development home.

The importer's classes come from the same Maven build as the server (``org.neo4j:neo4j-import-tool``
with the admin CLI ``org.neo4j.cli.AdminTool`` from ``org.neo4j:neo4j-command-line``), so no Neo4j
distribution is needed. It writes a new store into ``home/neo4j/data`` while the server is stopped;
start the server afterwards to query it.

CSV files use Neo4j's import header format, e.g. ``fid:ID(Feature),layer:long,:LABEL`` for nodes and
``:START_ID(Feature),:END_ID(Feature),weight:double,:TYPE`` for relationships.

Neo4j Community serves one user database, the default one, fixed by the first start of a home
(``start(..., database=...)``, default ``neo4j``): import into that name to query the result.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from pathlib import Path

from devserver.neo4j import is_running, log_tail
from devserver.neo4j_build import JVM_FLAGS, ensure_built, prepare_neo4j_home
from kb.errors import ServerError

__all__ = ["bulk_import"]

log = logging.getLogger(__name__)

# Neo4j's rule for database names (ASCII letter first, then letters, digits, dots and dashes; 3-63).
_DATABASE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9.\-]{2,62}$")
_ADMIN_TOOL = "org.neo4j.cli.AdminTool"


def bulk_import(
    home: Path,
    database: str,
    nodes_csv: list[Path],
    rels_csv: list[Path],
    *,
    heap: str = "1g",
    max_off_heap_memory: str | None = None,
) -> float:
    """Import CSV files into database ``database`` of ``home`` with the offline importer.

    Any existing store of that database is replaced (``--overwrite-destination``). Each file is its
    own input group, so each one starts with its own header line. The server of ``home`` must be
    stopped. ``max_off_heap_memory`` caps the importer's caches (Neo4j's default is 90% of free memory).

    Returns the wall-clock seconds of the import, JVM start included; the importer's own report
    goes to ``home/import.log`` and ``home/import-<database>.report``. Raises ServerError if the
    server is running, a file is missing, or the importer fails (with the log's last lines).
    """
    home = Path(home).resolve()
    _check_arguments(home, database, nodes_csv, rels_csv)
    build = ensure_built(home)
    neo4j_home = prepare_neo4j_home(home)

    command = [
        str(build.java),
        f"-Xmx{heap}",
        *JVM_FLAGS,
        "-cp",
        build.classpath,
        _ADMIN_TOOL,
        "database",
        "import",
        "full",
        database,  # before the file options: --relationships takes any number of values
        "--verbose",
        "--overwrite-destination=true",
        f"--report-file={home / f'import-{database}.report'}",
    ]
    if max_off_heap_memory is not None:
        command.append(f"--max-off-heap-memory={max_off_heap_memory}")
    command += [f"--nodes={Path(path).resolve()}" for path in nodes_csv]
    command += [f"--relationships={Path(path).resolve()}" for path in rels_csv]
    environment = {**os.environ, "NEO4J_HOME": str(neo4j_home), "NEO4J_CONF": str(neo4j_home / "conf")}

    log_path = home / "import.log"
    log.info("Bulk-importing %d node and %d relationship files into %s/%s",
             len(nodes_csv), len(rels_csv), home, database)
    started = time.monotonic()
    with open(log_path, "wb") as log_stream:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            cwd=home,
            env=environment,
            check=False,
        )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise ServerError(
            f"neo4j-admin database import full failed with exit code {result.returncode}; "
            f"last lines of {log_path}:\n{log_tail(log_path)}"
        )
    log.info("Bulk import into %s took %.2f s (%s)", database, elapsed, _importer_summary(log_path))
    return elapsed


def _check_arguments(home: Path, database: str, nodes_csv: list[Path], rels_csv: list[Path]) -> None:
    if is_running(home):
        raise ServerError(
            f"the Neo4j dev server of {home} is running: stop it (circuitkb neo4j stop --dir {home}) "
            "before an offline import"
        )
    if not _DATABASE_NAME.match(database):
        raise ServerError(f"invalid Neo4j database name {database!r}")
    if not nodes_csv:
        raise ServerError("bulk_import needs at least one node CSV file")
    for path in [*nodes_csv, *rels_csv]:
        if not Path(path).is_file():
            raise ServerError(f"CSV file not found: {path}")


def _importer_summary(log_path: Path) -> str:
    """The importer's own 'IMPORT DONE in ...' line, for the log."""
    text = log_path.read_text(errors="replace")
    match = re.search(r"IMPORT DONE in [^\n]*", text)
    return match.group(0).strip() if match else "no summary line"
