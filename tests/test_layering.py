"""Data flows one way (model -> taps -> analyses -> results -> render/store, ../shared/DESIGN.md): no package
below the engine imports the engine or the command line, not even lazily inside a function."""

from __future__ import annotations

import ast

from conftest import REPO

LOWER = ("core", "analyses", "store", "taps", "render", "models", "data", "weights", "rf")
UPPER = ("satcli.engine", "satcli.cli")


def _imports(path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_no_lower_package_imports_the_engine_or_the_cli() -> None:
    upward = [
        f"{path.relative_to(REPO)} imports {name}"
        for package in LOWER
        for path in sorted((REPO / "satcli" / package).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(UPPER)
    ]
    assert upward == []
