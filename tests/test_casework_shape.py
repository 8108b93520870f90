"""The shape of casework (issue 13): storage looks down only, casework parts stay small
and depend only on the parts built before them (handlers/casework/__init__.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASEWORK = ROOT / "handlers" / "casework"
#: The parts in the order CaseService builds them; a part may import earlier ones only.
ORDER = (
    "service",
    "availability",
    "relay",
    "lifecycle",
    "opening",
    "escalation",
    "teamwork",
    "notes",
    "erasure",
    "controls",
    "inactivity",
)


def imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports in functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_storage_and_config_never_import_handlers_or_bot() -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for layer in ("storage", "config")
        for path in sorted((ROOT / layer).rglob("*.py"))
        for name in sorted(imported(path))
        if name.split(".")[0] in ("handlers", "bot")
    ]
    assert bad == []


def test_the_case_service_module_is_gone_and_nobody_imports_it() -> None:
    assert not (ROOT / "handlers" / "cases.py").exists()
    users = [
        str(path.relative_to(ROOT))
        for layer in ("bot", "handlers", "storage", "config", "tests", "benchmarks")
        for path in sorted((ROOT / layer).rglob("*.py"))
        if "handlers.cases" in imported(path)
    ]
    assert users == []


def test_every_casework_part_is_placed_in_the_build_order() -> None:
    parts = {p.stem for p in CASEWORK.glob("*.py")} - {"__init__"}
    assert parts == set(ORDER)


def test_casework_parts_import_only_parts_built_before_them() -> None:
    upward = []
    for part in ORDER:
        for name in sorted(imported(CASEWORK / f"{part}.py")):
            if name == "handlers.casework":
                upward.append(f"{part} imports the facade")
            elif name.startswith("handlers.casework."):
                other = name.rsplit(".", 1)[1]
                if ORDER.index(other) >= ORDER.index(part):
                    upward.append(f"{part} imports {other}")
    assert upward == []


def test_casework_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in CASEWORK.glob("*.py")}
    assert sizes, "the package exists"
    assert {name: n for name, n in sizes.items() if n > 500} == {}
