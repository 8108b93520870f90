"""The Telegram benchmarks in a few seconds each, so they keep working (issue 14).

Numbers are not asserted here (timings on a shared machine say nothing); that every
mode runs end to end - the bots in their own processes, every reply arriving - is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def _run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("ausweg", ()), ("ausweg", ("--chats", "30")), ("ptb", ("--chats", "30"))],
)
def test_echo_benchmark_runs(kind: str, extra: tuple[str, ...]) -> None:
    out = _run(
        "benchmarks.telegram_echo", "--only", kind, "--http", "aiohttp", "--repeat", "1",
        "--users", "3", "--messages", "30", *extra,
    )  # fmt: skip
    line = out.strip().splitlines()[-1]
    assert line.strip().startswith(f"{kind}/aiohttp")
    assert "msg/s" in line


def test_flood_benchmark_runs() -> None:
    out = _run(
        "benchmarks.telegram_flood", "--flooders", "3", "--burst", "3", "--people", "2",
        "--rounds", "2",
    )  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert result["flood_messages"] == 9
    assert result["ordinary"]["n"] == 4
    assert result["crisis_reply_ms"] > 0
