"""Writing graph files: compact JSON, and gzip that gives the same bytes from run to run."""

from __future__ import annotations

import gzip as gzip_module
import io
import json
from pathlib import Path
from typing import Any, TextIO

from synth.graph import Graph


def compact_json(value: Any) -> str:
    """JSON without spaces, non-ASCII kept, as the real files are written."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def write_graph(graph: Graph, fh: TextIO) -> None:
    """The same text as ``compact_json(graph.as_dict())``, without building the link dicts."""
    fh.write('{"metadata":' + compact_json(graph.metadata) + ',"qParams":' + compact_json(graph.qparams) + ',"nodes":[')
    fh.write(",".join(compact_json(n) for n in graph.nodes))
    fh.write('],"links":[')
    prefix = [f'{{"source":"{n["node_id"]}","target":"' for n in graph.nodes]
    middle = [f'{n["node_id"]}","weight":' for n in graph.nodes]
    fh.write(",".join(prefix[s] + middle[t] + repr(w) + "}"
                      for s, t, w in zip(graph.sources, graph.targets, graph.weights)))
    fh.write("]}")


def open_text(path: Path, compress: bool) -> TextIO:
    """A text file to write, gzip-compressed with a fixed header when ``compress``."""
    if compress:
        raw = open(path, "wb")
        # mtime=0 and no file name keep .gz files byte-identical from run to run.
        gz = gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        return _ClosingText(gz, raw)
    return open(path, "w", encoding="utf-8", newline="")


class _ClosingText(io.TextIOWrapper):
    """A text wrapper over a GzipFile that also closes the underlying file."""

    def __init__(self, gz: gzip_module.GzipFile, raw: io.BufferedWriter) -> None:
        super().__init__(gz, encoding="utf-8", newline="")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


# --------------------------------------------------------------------------------------------
