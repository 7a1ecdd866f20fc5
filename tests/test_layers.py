"""The layers point one way (docs/architecture.md): each package imports only those below it.

Read from the source with ``ast``, so the check sees imports inside functions and under
TYPE_CHECKING as well as the ones at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package (or module) -> what it must never import
FORBIDDEN = {
    "schema": ("ingest", "kb", "app", "synth", "devserver"),
    "ingest": ("kb.api", "kb.core", "kb.stores", "kb.analysis", "kb.search", "kb.labels", "kb.cli", "app", "synth", "devserver"),
    "synth": ("kb", "app", "devserver"),
    "devserver": ("kb.api", "kb.core", "kb.stores", "kb.analysis", "kb.search", "kb.labels", "kb.cli", "app"),
    "kb": ("kb.api", "kb.cli", "app", "synth", "devserver"),
}
# the facade and the commands sit above the questions
ALLOWED_ABOVE = {"kb/api.py": ("kb.api",), "kb/cli": ("kb.api", "kb.cli", "synth", "devserver")}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def allowed_above(relative: str) -> tuple[str, ...]:
    return next((names for prefix, names in ALLOWED_ABOVE.items() if relative == prefix or relative.startswith(prefix + "/")), ())


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_a_layer_above_it(package: str) -> None:
    wrong = []
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        relative = str(path.relative_to(ROOT))
        allowed = allowed_above(relative)
        for name in sorted(imported(path)):
            for above in FORBIDDEN[package]:
                if under(name, above) and not any(under(name, ok) for ok in allowed):
                    wrong.append(f"{relative} imports {name}")
    assert wrong == []


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from kb.api import KB\n    return KB\n", encoding="utf-8")
    assert "kb.api" in imported(sample)


CORE = ("kb/config.py", "kb/errors.py", "kb/sqldb.py", "kb/registry.py", "kb/selection.py", "kb/sqlqueries.py", "kb/featureref.py", "kb/qk_store.py", "kb/core.py", "kb/stores", "kb/aggregates")
QUESTIONS = ("kb.ingestion", "kb.removal", "kb.analysis", "kb.families", "kb.search", "kb.featuremeta", "kb.labels", "kb.export", "kb.descriptions", "kb.overview")


def test_the_kb_core_imports_no_question() -> None:
    files = [path for place in CORE for path in ([ROOT / place] if place.endswith(".py") else sorted((ROOT / place).rglob("*.py")))]
    wrong = [f"{path.relative_to(ROOT)} imports {name}" for path in files for name in sorted(imported(path)) if any(under(name, q) for q in QUESTIONS)]
    assert len(files) > 10 and wrong == []
