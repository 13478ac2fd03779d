"""Rules of the layout that keep it readable (docs/architecture.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("bridge", "adapters", "jira_link")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return names


def sources(*skip: str) -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not any(part in path.relative_to(ROOT).parts for part in skip)
    ]


def test_only_the_storage_package_and_migrations_import_sqlalchemy():
    offenders = [
        str(path.relative_to(ROOT))
        for path in sources("storage", "migrations")
        if any(name.split(".")[0] == "sqlalchemy" for name in imported_modules(path))
    ]
    assert offenders == []


def test_the_domain_imports_only_the_standard_library_and_itself():
    allowed_roots = {"bridge"}
    for path in [*sorted((ROOT / "bridge" / "domain").glob("*.py")), ROOT / "bridge" / "sla.py"]:
        for name in imported_modules(path):
            root = name.split(".")[0]
            if root in allowed_roots:
                assert name.startswith(("bridge.domain", "bridge.sla")), f"{path.name} imports {name}"
            else:
                assert root in sys.stdlib_module_names, f"{path.name}: {name}"


def test_no_module_is_much_over_five_hundred_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in sources("migrations")
        if (n := len(path.read_text().splitlines())) > 550
    }
    assert long == {}
