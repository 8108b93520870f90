"""The benchmarks' quick modes run in CI (seconds), so they keep working (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_scale_quick() -> None:
    result = json.loads(_run("benchmarks.scale", "--quick").strip().splitlines()[-1])
    assert result["cases_with_followups"] == 10_000
    assert result["purged_rows"] == 10_000
    # The window: only the follow-ups due within hours are jobs, not all 10,000.
    assert 0 < result["jobs_in_memory"] < 1_000


@pytest.mark.parametrize(
    "args",
    [("benchmarks.crisis", "--quick"), ("benchmarks.core", "--messages", "300", "--people", "20")],
)
def test_quick_mode_runs(args: tuple[str, ...]) -> None:
    assert _run(*args).strip()
