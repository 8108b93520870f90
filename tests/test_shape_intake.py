"""Shape of the intake, CLI and directory packages (issue 13): small modules, one entry.

The router and casework talk to the intake through ``handlers.intake`` (its ``__all__``),
never through its inner modules; no module of these packages grows past the size a
newcomer reads in one go; the ``ausweg`` script still resolves to a working ``main``.
"""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The limit of issue 13 (bot/, handlers/, storage/): above it a module says why.
MAX_LINES = 500
PACKAGES = ("handlers/intake", "bot/cli", "config/directory")
SINGLE = ("handlers/options.py", "handlers/synonyms.py")


def modules() -> list[Path]:
    found = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))]
    return found + [ROOT / f for f in SINGLE]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_code_outside_the_intake_uses_only_its_package_entry() -> None:
    inner = {p.stem for p in (ROOT / "handlers" / "intake").glob("*.py")} - {"__init__"}
    offenders = []
    for layer in ("bot", "handlers", "storage", "config"):
        for path in (ROOT / layer).rglob("*.py"):
            if (ROOT / "handlers" / "intake") in path.parents:
                continue
            for name in imported_modules(path):
                if any(name.startswith(f"handlers.intake.{m}") for m in inner):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_the_intake_entry_names_exist_and_the_router_needs_no_others() -> None:
    intake = importlib.import_module("handlers.intake")
    assert all(hasattr(intake, name) for name in intake.__all__)
    router = (ROOT / "bot" / "router.py").read_text(encoding="utf-8")
    used = {
        node.attr
        for node in ast.walk(ast.parse(router))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "intake"
    }
    assert used, "the router no longer reads handlers.intake (test out of date)"
    assert used <= set(intake.__all__), used - set(intake.__all__)


def test_inner_intake_modules_never_import_the_package_entry() -> None:
    """A module inside importing ``handlers.intake`` itself would be a cycle."""
    for path in (ROOT / "handlers" / "intake").glob("*.py"):
        if path.name == "__init__.py":
            continue
        assert "handlers.intake" not in imported_modules(path), path.name


def test_the_ausweg_script_resolves_to_main(capsys: pytest.CaptureFixture[str]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["ausweg"].partition(":")
    main = getattr(importlib.import_module(module), attr)
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "run", "check-config", "migrate", "keys", "report"):
        assert command in out
