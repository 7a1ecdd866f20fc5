"""Manifests: a CSV or YAML file that tags graph files with a family, a language and tags.

CSV columns: ``path`` (or ``slug``), ``family``, ``language``, ``tags`` (separated by ``;``).
YAML: a list of mappings with the same keys (``tags`` a list or a ``;`` string), or a mapping
``{graphs: [...]}``. A ``path`` is relative to the manifest's folder and may be a glob.
"""

from __future__ import annotations

import csv
import fnmatch
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.textfile import not_utf8
from kb.errors import CircuitKBError

_LANG_CODE_LEN = (2, 3)


@dataclass(frozen=True)
class Tagging:
    family: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()


@dataclass
class Manifest:
    folder: Path
    by_path: list[tuple[str, Tagging]] = field(default_factory=list)
    by_slug: dict[str, Tagging] = field(default_factory=dict)

    def lookup(self, path: Path, slug: str) -> Tagging | None:
        """The entry for a file: an exact path first, then a glob, then its slug."""
        resolved = str(path.resolve())
        for pattern, tagging in self.by_path:
            if pattern == resolved:
                return tagging
        for pattern, tagging in self.by_path:
            if any(ch in pattern for ch in "*?[") and fnmatch.fnmatch(resolved, pattern):
                return tagging
        return self.by_slug.get(slug)


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise CircuitKBError(f"{path}: manifest not found")
    if path.suffix.lower() in (".yaml", ".yml"):
        entries = _yaml_entries(path)
    elif path.suffix.lower() == ".csv":
        entries = _csv_entries(path)
    else:
        raise CircuitKBError(f"{path}: a manifest is a .csv or .yaml file")
    manifest = Manifest(folder=path.parent.resolve())
    named: dict[str, str] = {}  # what an entry names -> where
    for where, entry in entries:
        tagging = _tagging(path, where, entry)
        target_path, slug = entry.get("path"), entry.get("slug")
        if target_path:
            full = Path(str(target_path)).expanduser()
            if not full.is_absolute():
                full = manifest.folder / full
            pattern = str(full) if any(ch in str(full) for ch in "*?[") else str(full.resolve())
            _once(path, named, f"path {target_path}", where)
            manifest.by_path.append((pattern, tagging))
        elif slug:
            _once(path, named, f"slug {slug}", where)
            manifest.by_slug[str(slug)] = tagging
        else:
            raise CircuitKBError(f"{path}: {where}: an entry needs a path or a slug")
    return manifest


def _text(path: Path) -> str:
    """The manifest's text (UTF-8, with or without a byte-order mark); an error names the line."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CircuitKBError(f"{path}: {not_utf8(exc)}: save the manifest as UTF-8") from exc


def _once(path: Path, named: dict[str, str], what: str, where: str) -> None:
    """Refuse a second entry for the same file or slug: which of two taggings was meant is unclear."""
    if what in named:
        raise CircuitKBError(f"{path}: {where}: {what} is already tagged at {named[what]}; keep one entry for it")
    named[what] = where


def _csv_entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    if not reader.fieldnames or not ({"path", "slug"} & set(reader.fieldnames)):
        raise CircuitKBError(f"{path}: line 1: the header needs a 'path' or 'slug' column (and family, language, tags)")
    entries = []
    for row in reader:
        where = f"line {reader.line_num}"
        if None in row:  # DictReader keeps fields beyond the header under None
            raise CircuitKBError(f"{path}: {where}: {len(reader.fieldnames) + len(row[None])} fields, but the header names {len(reader.fieldnames)} columns")
        entries.append((where, row))
    return entries


def _yaml_entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    import yaml

    try:
        doc = yaml.safe_load(_text(path))
    except yaml.YAMLError as exc:
        raise CircuitKBError(f"{path}: invalid YAML: {exc}") from exc
    if isinstance(doc, dict):
        doc = doc.get("graphs")
    if not isinstance(doc, list):
        raise CircuitKBError(f"{path}: expected a list of entries (or graphs: [...])")
    out = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise CircuitKBError(f"{path}: entry {i}: expected a mapping with path, family, language, tags")
        out.append((f"entry {i}", entry))
    return out


def _tagging(path: Path, where: str, entry: dict[str, Any]) -> Tagging:
    tags = entry.get("tags") or ()
    if isinstance(tags, str):
        tags = [t for t in (s.strip() for s in tags.split(";")) if t]
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise CircuitKBError(f"{path}: {where}: tags must be a list of strings or a ';'-separated string")
    language = (entry.get("language") or "").strip().lower() or None
    if language is not None and (len(language) not in _LANG_CODE_LEN or not language.isalpha()):
        raise CircuitKBError(f"{path}: {where}: language must be an ISO 639 code like 'en' or 'fr', got {language!r}")
    family = (str(entry.get("family") or "")).strip() or None
    return Tagging(family=family, language=language, tags=tuple(tags))
