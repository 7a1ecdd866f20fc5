"""Turning the paths a user names (files, folders, globs) into graph files."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterable

from kb.errors import CircuitKBError

GRAPH_SUFFIXES = (".json", ".json.gz")
_NOT_GRAPHS = {"manifest.json"}


def is_graph_file(path: Path) -> bool:
    return path.name.endswith(GRAPH_SUFFIXES) and path.name not in _NOT_GRAPHS


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Every graph file named by ``paths``, each once, in a stable order.

    A folder means every ``.json`` / ``.json.gz`` file below it; a pattern with ``*``, ``?``
    or ``[`` is a glob (``**`` recursive). A name that matches nothing is an error.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for item in paths:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            matches = [m for m in matches if m.is_file() and is_graph_file(m)]
            if not matches:
                raise CircuitKBError(f"{text}: the pattern matches no .json or .json.gz file")
        else:
            path = Path(text)
            if path.is_dir():
                matches = sorted(p for p in path.rglob("*") if p.is_file() and is_graph_file(p))
                if not matches:
                    raise CircuitKBError(f"{text}: the folder holds no .json or .json.gz file")
            elif path.is_file():
                matches = [path]
            else:
                raise CircuitKBError(f"{text}: no such file or folder")
        for m in matches:
            key = m.resolve()
            if key not in seen:
                seen.add(key)
                found.append(m)
    return found
