"""A real Neo4j Community 5.26 LTS server for development and tests, started by circuitkb itself.

Neo4j runs embedded in a small Java launcher (``devserver/java/src/main/java/circuitkb/DevServer.java``,
built by :mod:`devserver.neo4j_build`) whose dependencies Maven resolves from Maven Central; no Neo4j
distribution is downloaded or installed.
Everything lives in one *home* folder::

    home/
      build/          classpath file and compiled launcher (built once, reused while sources match)
      neo4j/          the Neo4j home: data/ (stores, transaction logs), logs/ (debug.log), conf/
      neo4j.log       the launcher's stdout and stderr
      neo4j.pid       pid of the running JVM (its own process group)
      neo4j.port      the Bolt port it listens on (127.0.0.1 only)
      password        password of user ``neo4j``, generated once, mode 0600

Auth is enabled. Before the first start the launcher sets the password of ``neo4j`` the way
``neo4j-admin dbms set-initial-password`` does (in its own process, reading the password file), so
the user is never in the "password change required" state.

Needs Java 17 or 21 (``java`` and ``javac``, or ``$JAVA_HOME``) and Maven 3 (``mvn``) on the machine.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, DriverError, Neo4jError

from devserver.neo4j_build import JVM_FLAGS, LAUNCHER_CLASS, NEO4J_VERSION, Build, ensure_built, prepare_neo4j_home
from kb.errors import ServerError

__all__ = [
    "NEO4J_VERSION",
    "USER",
    "ServerInfo",
    "is_running",
    "log_tail",
    "start",
    "status",
    "stop",
]

log = logging.getLogger(__name__)

USER = "neo4j"

_SIZE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_LOG_TAIL_LINES = 30

# JVMs started by this Python process, so that stop() can reap them instead of leaving zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a running development server. The password is left out of repr()."""

    uri: str
    user: str
    password: str = field(repr=False)
    pid: int
    home: Path


def start(
    home: Path,
    port: int = 7687,
    heap: str = "1g",
    timeout: float = 180.0,
    *,
    pagecache: str = "512m",
    database: str = "neo4j",
) -> ServerInfo:
    """Start the development server in ``home`` (building the launcher if needed) and wait for Bolt.

    Idempotent: when a server of this home is already running and answering, its info is returned
    and nothing is started. ``heap`` is the JVM heap (``-Xms``/``-Xmx``, e.g. ``"1g"``), ``pagecache``
    Neo4j's page cache. ``database`` names the default database, which Neo4j fixes on the first start
    of a home (Community serves that one user database only).

    Raises ServerError when Java or Maven is missing, the port is taken, the JVM exits, the password
    in ``home/password`` does not open the stored database, or Bolt does not answer within ``timeout``
    seconds; the message carries the last lines of ``home/neo4j.log``.
    """
    home = Path(home).resolve()
    _check_size("heap", heap)
    _check_size("pagecache", pagecache)
    home.mkdir(parents=True, exist_ok=True)

    pid = _read_int(_pid_file(home))
    if pid is not None and _is_server_process(pid, home):
        port_in_use = _read_int(_port_file(home))
        if port_in_use is None:
            raise ServerError(f"a Neo4j dev server (pid {pid}) runs in {home} without {_port_file(home)}: stop(home) it")
        log.info("Neo4j dev server already running in %s (pid %d)", home, pid)
        return _wait_until_ready(home, pid, port_in_use, timeout, log_offset=0)
    _clear_runtime_files(home)

    _check_port_free(port)
    build = ensure_built(home)
    _ensure_password(home)
    log_path = _log_file(home)
    log_offset = log_path.stat().st_size if log_path.exists() else 0
    started = time.monotonic()
    pid = _launch(home, build, port, heap, pagecache, database)
    log.info("Starting Neo4j %s dev server in %s (pid %d, port %d)", NEO4J_VERSION, home, pid, port)
    try:
        info = _wait_until_ready(home, pid, port, timeout, log_offset)
    except ServerError:
        stop(home, timeout=30.0)
        raise
    log.info("Neo4j dev server answers on %s after %.1f s", info.uri, time.monotonic() - started)
    return info


def stop(home: Path, timeout: float = 60.0) -> bool:
    """Stop the development server of ``home``: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Returns True if a server was running, False if there was none (stale pid files are removed).
    """
    home = Path(home).resolve()
    pid = _read_int(_pid_file(home))
    if pid is None or not _is_server_process(pid, home):
        _clear_runtime_files(home)
        return False

    log.info("Stopping Neo4j dev server in %s (pid %d)", home, pid)
    _signal_group(pid, signal.SIGTERM)
    if not _wait_for_exit(pid, timeout):
        log.warning("Neo4j dev server (pid %d) ignored SIGTERM for %.0f s; killing it", pid, timeout)
        _signal_group(pid, signal.SIGKILL)
        if not _wait_for_exit(pid, 10.0):
            raise ServerError(f"Neo4j dev server (pid {pid}) survived SIGKILL; see {_log_file(home)}")
    _clear_runtime_files(home)
    return True


def status(home: Path) -> ServerInfo | None:
    """Info of the server of ``home`` if it is running and answers over Bolt, else None.

    Raises ServerError if it answers but refuses the password in ``home/password``.
    """
    home = Path(home).resolve()
    pid = _read_int(_pid_file(home))
    port = _read_int(_port_file(home))
    if pid is None or port is None or not _is_server_process(pid, home):
        return None
    password_file = _password_file(home)
    if not password_file.exists():
        return None
    info = ServerInfo(_bolt_uri(port), USER, _read_password(password_file), pid, home)
    return info if _answers(info) else None


def is_running(home: Path) -> bool:
    """True if the JVM of ``home``'s server is alive, whether or not it answers yet."""
    home = Path(home).resolve()
    pid = _read_int(_pid_file(home))
    return pid is not None and _is_server_process(pid, home)


def log_tail(path: Path, offset: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file from byte ``offset`` on, for error messages."""
    try:
        with open(path, "rb") as stream:
            stream.seek(offset)
            text = stream.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _launch(home: Path, build: Build, port: int, heap: str, pagecache: str, database: str) -> int:
    """Start the launcher JVM in the background, writing home/neo4j.pid and home/neo4j.port."""
    command = [
        str(build.java),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        *JVM_FLAGS,
        "-cp",
        build.classpath,
        LAUNCHER_CLASS,
        "--home", str(prepare_neo4j_home(home)),
        "--port", str(port),
        "--password-file", str(_password_file(home)),
        "--pagecache", pagecache,
        "--database", database,
    ]
    with open(_log_file(home), "ab") as log_stream:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            cwd=home,
            start_new_session=True,  # own process group: a Ctrl-C in the caller does not reach it
        )
    _children[process.pid] = process
    _pid_file(home).write_text(f"{process.pid}\n")
    _port_file(home).write_text(f"{port}\n")
    return process.pid


def _wait_until_ready(home: Path, pid: int, port: int, timeout: float, log_offset: int) -> ServerInfo:
    info = ServerInfo(_bolt_uri(port), USER, _read_password(_password_file(home)), pid, home)
    deadline = time.monotonic() + timeout
    while True:
        if not _is_server_process(pid, home):
            code = _children[pid].returncode if pid in _children else None
            raise ServerError(
                f"Neo4j dev server exited during start (exit code {code}); last lines of "
                f"{_log_file(home)}:\n{log_tail(_log_file(home), log_offset)}"
            )
        if _answers(info):
            return info
        if time.monotonic() > deadline:
            raise ServerError(
                f"Neo4j dev server did not answer on {info.uri} within {timeout:.0f} s; last lines of "
                f"{_log_file(home)}:\n{log_tail(_log_file(home), log_offset)}"
            )
        time.sleep(0.5)


def _answers(info: ServerInfo) -> bool:
    """True once Bolt accepts the password and the default database runs a query."""
    try:
        with GraphDatabase.driver(info.uri, auth=(info.user, info.password), connection_timeout=5.0) as driver:
            driver.verify_connectivity()
            driver.execute_query("RETURN 1")
        return True
    except AuthError as error:
        raise ServerError(
            f"Neo4j in {info.home} refused the password in {_password_file(info.home)}: the stored database "
            f"was created with another one. Delete {info.home / 'neo4j'} to start from an empty database."
        ) from error
    except (DriverError, Neo4jError, OSError):
        return False


def _ensure_password(home: Path) -> str:
    path = _password_file(home)
    if path.exists():
        os.chmod(path, 0o600)
        return _read_password(path)
    password = secrets.token_urlsafe(24)
    while password.startswith("-"):  # would look like an option to the admin command's parser
        password = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(password + "\n")
    return password


def _read_password(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:
        raise ServerError(f"cannot read the Neo4j password file {path}: {error}") from error


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Netty binds with SO_REUSEADDR too, so a port in TIME_WAIT is usable and not reported.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise ServerError(f"port {port} on 127.0.0.1 is in use ({error.strerror}): pass another port") from error


def _check_size(name: str, value: str) -> None:
    if not _SIZE.match(value):
        raise ServerError(f"{name} must look like 512m or 2g, not {value!r}")


def _is_server_process(pid: int, home: Path) -> bool:
    """True if pid is alive and is this home's launcher (guards against a pid reused by another program)."""
    child = _children.get(pid)
    if child is not None:
        # Our own child: its /proc cmdline can still be the pre-exec one for a moment after Popen.
        return child.poll() is None
    if not _alive(pid):
        return False
    cmdline = Path("/proc") / str(pid) / "cmdline"
    if not cmdline.parent.exists():  # no procfs (macOS): trust the pid file
        return True
    try:
        arguments = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return LAUNCHER_CLASS.encode() in arguments and str(home / "neo4j").encode() in arguments


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(") ", 1)[-1]
    except OSError:
        return True
    return not state.startswith("Z")


def _wait_for_exit(pid: int, timeout: float) -> bool:
    child = _children.get(pid)
    if child is not None:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        del _children[pid]
        return True
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the JVM leads its own process group (start_new_session)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _clear_runtime_files(home: Path) -> None:
    for path in (_pid_file(home), _port_file(home)):
        path.unlink(missing_ok=True)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _bolt_uri(port: int) -> str:
    return f"bolt://127.0.0.1:{port}"


def _pid_file(home: Path) -> Path:
    return home / "neo4j.pid"


def _port_file(home: Path) -> Path:
    return home / "neo4j.port"


def _password_file(home: Path) -> Path:
    return home / "password"


def _log_file(home: Path) -> Path:
    return home / "neo4j.log"
