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
    [("benchmarks.crisis", "--quick")],
)
def test_quick_mode_runs(args: tuple[str, ...]) -> None:
    assert _run(*args).strip()


def test_core_quick() -> None:
    """Mixed intake and relay over many conversations; several messages per transaction."""
    out = _run("benchmarks.core", "--conversations", "30", "--messages", "400", "--json")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["conversations"] == 30
    assert result["msgs_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["msgs_per_transaction"] > 1  # group commit under concurrent load


def test_core_open_loop_quick() -> None:
    """A fixed arrival rate (the latency measurement) completes every message."""
    out = _run(
        "benchmarks.core", "--conversations", "20", "--messages", "200", "--rate", "200", "--json"
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["msgs_per_s"] > 50  # arrivals end after ~1 s, so ~200/s unless it lags


def test_growth_quick() -> None:
    """1x and 10x stored data; the hot statements use indexes (no table scan)."""
    lines = _run("benchmarks.growth", "--quick").strip().splitlines()
    factors = [json.loads(line) for line in lines[:-1]]
    assert [f["factor"] for f in factors] == [1, 10]
    assert factors[1]["stored_conversations"] > factors[0]["stored_conversations"] * 5
    assert all(f["statements"] >= 4 for f in factors)  # dedup, load, outbox, ...
    assert json.loads(lines[-1])["scans"] == []
