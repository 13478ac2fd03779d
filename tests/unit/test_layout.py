"""Rules of the layout that keep it readable (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("bridge", "adapters", "jira_link")

# The rooms and root modules, highest first: each may import only what stands below it.
ORDER = (
    "bridge/__main__.py",
    "bridge/cli.py",
    "bridge/asgi.py",
    "bridge/app.py",
    "bridge/worker.py",
    "bridge/pages/",
    "bridge/api/",
    "bridge/web/",
    "bridge/tickets/",
    "bridge/watch/",
    "bridge/ingest/",
    "bridge/jira/",
    "bridge/problems/",
    "bridge/reports/",
    "bridge/metrics.py",
    "bridge/outbox/",
    "bridge/rules/",
    "bridge/shapes.py",
    "bridge/migrations/",
    "bridge/storage/",
    "jira_link/",
    "bridge/config.py",
    "adapters/",
    "bridge/domain/",
    "bridge/validation.py",
    "bridge/errors.py",
    "bridge/logs.py",
    "bridge/__init__.py",
)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, type-checking imports included; `from a import b` counts a.b too."""
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def sources(*skip: str) -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not any(part in path.relative_to(ROOT).parts for part in skip)
    ]


def unit_of_path(path: Path) -> str:
    """The room or root module a file belongs to, as ORDER names it."""
    parts = path.relative_to(ROOT).parts
    if parts[0] != "bridge":
        return f"{parts[0]}/"
    return f"bridge/{parts[1]}/" if len(parts) > 2 else f"bridge/{parts[1]}"


def unit_of_module(name: str) -> str | None:
    """The room or root module a dotted import names, or None outside the project."""
    parts = name.split(".")
    if parts[0] in ("adapters", "jira_link"):
        return f"{parts[0]}/"
    if parts[0] != "bridge" or len(parts) == 1:
        return None
    if (ROOT / "bridge" / parts[1]).is_dir():
        return f"bridge/{parts[1]}/"
    if (ROOT / "bridge" / f"{parts[1]}.py").exists():
        return f"bridge/{parts[1]}.py"
    return None


def rooms_and_root_modules() -> set[str]:
    bridge = ROOT / "bridge"
    return {
        f"bridge/{path.name}/" if path.is_dir() else f"bridge/{path.name}"
        for path in bridge.iterdir()
        if (path.is_dir() and any(path.glob("*.py"))) or path.suffix == ".py"
    } | {"adapters/", "jira_link/"}


def test_every_room_and_root_module_has_its_place_in_the_order():
    assert rooms_and_root_modules() == set(ORDER)


def test_no_import_runs_from_a_lower_room_to_a_higher_one():
    rank = {unit: index for index, unit in enumerate(ORDER)}
    upward = []
    for path in sources():
        own = unit_of_path(path)
        for name in imported_modules(path):
            target = unit_of_module(name)
            if target is not None and target != own and rank[target] < rank[own]:
                upward.append(f"{path.relative_to(ROOT)} imports {name} ({own} stands below {target})")
    assert upward == []


def test_every_room_says_what_lives_there_and_re_exports_nothing():
    for init in sorted((ROOT / "bridge").glob("*/__init__.py")):
        tree = ast.parse(init.read_text())
        docstring = ast.get_docstring(tree)
        assert docstring and "\n" not in docstring.strip(), f"{init.relative_to(ROOT)}: one line saying what lives here"
        assert len(tree.body) == 1, f"{init.relative_to(ROOT)}: holds its docstring only"


def test_no_filename_prefix_stands_in_for_a_room():
    prefixed = [
        path.name for path in (ROOT / "bridge").glob("*.py") if re.match(r"(rules|api|ui|jira|tickets)_", path.name)
    ]
    assert prefixed == []


def test_api_views_import_no_other_views():
    """Each resource of the API has its own blueprint and reaches shared helpers in web/, never another view."""
    views = {path.stem for path in (ROOT / "bridge" / "api").glob("*.py") if "Blueprint(" in path.read_text()}
    crossing = [
        f"{path.name} imports {name}"
        for path in sorted((ROOT / "bridge" / "api").glob("*.py"))
        for name in imported_modules(path)
        if name.startswith("bridge.api.") and name.split(".")[2] in views - {path.stem}
    ]
    assert crossing == []


def test_the_architecture_map_names_every_room_and_root_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text[text.index("## Where to find") :]
    missing = [unit for unit in ORDER if f"`{unit}`" not in table]
    assert missing == []


def test_only_the_storage_package_and_migrations_import_sqlalchemy():
    offenders = [
        str(path.relative_to(ROOT))
        for path in sources("storage", "migrations")
        if any(name.split(".")[0] == "sqlalchemy" for name in imported_modules(path))
    ]
    assert offenders == []


def test_the_domain_imports_only_the_standard_library_and_itself():
    for path in sorted((ROOT / "bridge" / "domain").glob("*.py")):
        for name in imported_modules(path):
            root = name.split(".")[0]
            if root == "bridge":
                assert name.startswith("bridge.domain"), f"{path.name} imports {name}"
            else:
                assert root in sys.stdlib_module_names or root == "__future__", f"{path.name}: {name}"


def test_no_module_is_much_over_five_hundred_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in sources("migrations")
        if (n := len(path.read_text().splitlines())) > 550
    }
    assert long == {}
