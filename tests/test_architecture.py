"""The shape of the code (issue 13): imports look down only, modules stay small.

* ``lint-imports`` checks the contracts in ``pyproject.toml`` ([tool.importlinter]):
  config <- storage <- handlers <- bot; nothing below ``bot`` imports ``bot.transports``,
  ``telegram`` or ``nio``; one platform's transport never imports another's.
* No module in bot/, handlers/, storage/, config/ is longer than 500 lines unless it says
  why in its first 30 lines (``# size: <why>``). Migrations and test fakes aside.

Known exceptions are listed (in pyproject.toml and in :data:`OVERSIZE` below) with a
comment; each is temporary, being removed in parallel (issue 13), and the checks fail
once an exception is no longer needed, so the list cannot outlive its reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "storage", "config")
MAX_LINES = 500
#: Lines at the top of a module where a ``# size: <why>`` comment counts.
HEAD_LINES = 30
#: Paths (relative to the repository) whose size is not checked.
NOT_CHECKED = ("storage/migrations/",)
#: The ``lint-imports`` console script, run by this interpreter (the test extra installs
#: import-linter; if it is missing the test fails with ModuleNotFoundError, never skips).
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"

#: Modules above 500 lines allowed without their own ``# size:`` reason: none since the
#: issue-13 splits landed. An entry added here must go once it is no longer needed (the
#: test below fails for a stale one).
OVERSIZE: frozenset[str] = frozenset()


def _lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` (import-linter, in this interpreter) on the packages under
    ``root`` with ``config``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--config", str(config), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_imports_follow_the_layers() -> None:
    """The contracts in pyproject.toml hold for the code as it is."""
    done = _lint_imports(ROOT, ROOT / "pyproject.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("storage/db.py", "import bot.app", "handlers <- bot"),
        ("config/settings.py", "import handlers.base", "handlers <- bot"),
        ("handlers/base.py", "import telegram", "no telegram or nio below bot"),
        ("storage/vault.py", "import nio", "no telegram or nio below bot"),
        ("bot/transports/telegram/render.py", "import bot.transports.matrix.render", "another's"),
    ],
)
def test_the_contracts_catch_a_wrong_import(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    """A copy of the code with one wrong import breaks the right contract (so the
    green run above means something); ``broken`` is the end of the contract's name."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    done = _lint_imports(tmp_path, tmp_path / "pyproject.toml")
    assert done.returncode != 0, done.stdout
    assert f"{broken} BROKEN" in done.stdout, done.stdout
    assert module.removesuffix(".py").replace("/", ".") in done.stdout, done.stdout


def _modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if not any(path.relative_to(ROOT).as_posix().startswith(p) for p in NOT_CHECKED)
    )


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _size_reason(lines: list[str]) -> str | None:
    """The ``# size: <why>`` comment in the first lines, if any (with a reason)."""
    for line in lines[:HEAD_LINES]:
        text = line.strip()
        if text.startswith("# size:") and text.removeprefix("# size:").strip():
            return text
    return None


def oversized(modules: list[Path], root: Path) -> list[str]:
    """Modules above the limit without a written reason."""
    found = []
    for path in modules:
        lines = _lines(path)
        if len(lines) > MAX_LINES and _size_reason(lines) is None:
            found.append(f"{path.relative_to(root).as_posix()} ({len(lines)} lines)")
    return found


def test_no_module_is_too_long_without_a_reason() -> None:
    """Above 500 lines a module says why (``# size: <why>`` in its first 30 lines)."""
    too_long = [m for m in oversized(_modules(), ROOT) if m.split(" ")[0] not in OVERSIZE]
    assert not too_long, (
        f"split these modules or write '# size: <why>' in their first {HEAD_LINES} lines: "
        + ", ".join(too_long)
    )


def test_every_size_exception_is_still_needed() -> None:
    """An entry of OVERSIZE that is gone, short or explained must leave the list."""
    long_ones = {m.split(" ")[0] for m in oversized(_modules(), ROOT)}
    stale = sorted(OVERSIZE - long_ones)
    assert not stale, f"remove from OVERSIZE in {Path(__file__).name}: {', '.join(stale)}"


def test_the_size_check_reads_the_reason(tmp_path: Path) -> None:
    """A long module fails without the comment, passes with it, and an empty reason or
    one below line 30 does not count."""
    body = [f"x{i} = {i}" for i in range(MAX_LINES + 1)]
    cases = {
        "plain.py": body,
        "why.py": ['"""Doc."""', "# size: one table of constants, read as a whole", *body],
        "empty.py": ["# size:", *body],
        "late.py": [*body[:HEAD_LINES], "# size: too late to count", *body[HEAD_LINES:]],
        "short.py": body[:MAX_LINES],
    }
    for name, lines in cases.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = oversized(sorted(tmp_path.glob("*.py")), tmp_path)
    assert [f.split(" ")[0] for f in found] == ["empty.py", "late.py", "plain.py"]
