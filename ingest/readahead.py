"""Parsing graph files in a child process, ahead of the one that writes them.

An ingest spends its time in two places: parsing files (JSON decoding and validation, Python)
and writing them to the database. With a child process parsing the next files while the
writer stores the current one, both run at once on two cores. Files are parsed and given back
in the order they were submitted, with the same results, warnings and errors as
:func:`read_graph` (warnings are logged by the parent); the child detects each prompt's
language too.

The child reads requests from a socket pair and ends when the parent closes it or dies (its
read then ends), so a parent killed with ``kill -9`` leaves no process behind. It ignores
Ctrl-C, which the parent handles.
"""

from __future__ import annotations

import json
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.graphfile import log_warnings, read_graph
from ingest.language import detect_language
from ingest.records import ParsedGraph


class ReadAhead:
    """Parses the files handed to :meth:`submit` in a child process; :meth:`take` gives them back in order."""

    def __init__(self) -> None:
        # a plain child interpreter running serve(), not multiprocessing's spawn: that would run
        # the caller's main script again in the child, which a script without a __main__ guard
        # cannot survive; and a fork would copy the parent's threads, locks and connections
        parent, child = socket.socketpair()
        code = "import sys, json; sys.path[:] = json.loads(sys.argv[1]); from ingest.readahead import serve; serve(int(sys.argv[2]))"
        with child:
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", code, json.dumps(sys.path), str(child.fileno())],
                    pass_fds=(child.fileno(),),
                    stdin=subprocess.DEVNULL,
                )
            except BaseException:
                parent.close()
                raise
        self._conn = Connection(parent.detach())
        self._pending: deque[str] = deque()

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The parsing process's id."""
        return self._process.pid

    @property
    def pending(self) -> int:
        """Files submitted and not yet taken."""
        return len(self._pending)

    def submit(self, path: Path, digest: str) -> None:
        self._conn.send((str(path), digest))
        self._pending.append(str(path))

    def take(self) -> tuple[ParsedGraph, float, str | None]:
        """The oldest submitted file: the graph, the seconds parsing took and the language of its
        prompt (:func:`ingest.language.detect_language`); raises what parsing it raised."""
        path = self._pending.popleft()
        try:
            ok, value, seconds, language = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"the parsing process ended while it read {path} (exit status {self._process.poll()})") from None
        if not ok:
            raise value
        log_warnings(value)
        return value, seconds, language

    def close(self) -> None:
        self._conn.close()  # the child's next read ends, and so does the child
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def serve(fd: int) -> None:
    """The child's loop: parse each (path, digest) received, send back (ok, graph or error, seconds, language)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    while True:
        try:
            path, digest = conn.recv()
        except (EOFError, OSError):
            return
        started = time.perf_counter()
        answer: tuple[bool, Any, float, str | None]
        try:
            graph = read_graph(Path(path), digest=digest, quiet=True)  # warnings are logged by the parent
            answer = (True, graph, time.perf_counter() - started, detect_language(graph.header.prompt))
        except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises it as read_graph would have
            answer = (False, exc, time.perf_counter() - started, None)
        try:
            conn.send(answer)
        except OSError:  # the parent is gone
            return
        except (pickle.PicklingError, TypeError, AttributeError):  # an error that cannot travel: its text can
            conn.send((False, RuntimeError(f"{path}: {answer[1]!r}"), answer[2], None))
