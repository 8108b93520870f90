"""The funder report (issue 15, part 5): counts below 5 hidden and never derivable
from totals; CSV and one self-contained HTML page with charts, rendered in a real
headless Chromium."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from datetime import date
from itertools import product
from pathlib import Path

import pytest

from bot.cli import main as cli_main
from bot.funders import write_report
from storage.stats import HIDDEN, MIN_COUNT, funder_report, suppress
from tests.conftest import REQUIRE_SERVICES
from tests.world import World


def _derivable(counts: dict[str, int]) -> bool:
    """Whether some hidden cell can be told exactly from what is shown: try every
    assignment of 0..4 to the hidden cells that matches the shown total."""
    b = suppress(counts)
    if b.total == HIDDEN:
        return False
    hidden = [k for k, c in b.cells.items() if c == HIDDEN]
    shown = sum(c for c in b.cells.values() if isinstance(c, int))
    assert isinstance(b.total, int)
    fits = [
        combo
        for combo in product(range(MIN_COUNT), repeat=len(hidden))
        if shown + sum(combo) == b.total
    ]
    # A cell is derivable when it has the same value in every assignment that fits
    # and that value is not 0 (a 0 singles out nobody).
    return any(len({c[i] for c in fits}) == 1 and fits[0][i] > 0 for i in range(len(hidden)))


@pytest.mark.parametrize(
    "counts",
    [
        {"a": 20, "b": 3},
        {"a": 20, "b": 1, "c": 9},
        {"a": 7, "b": 1, "c": 1},
        {"a": 12, "b": 0, "c": 6},
        {"a": 5, "b": 5, "c": 4},
        {"a": 30, "b": 2, "c": 2, "d": 40},
    ],
)
def test_small_counts_are_hidden_and_not_derivable(counts: dict[str, int]) -> None:
    b = suppress(counts)
    for key, n in counts.items():
        if n < MIN_COUNT:
            assert b.cells[key] == HIDDEN
    assert not _derivable(counts), b.cells


def test_a_single_small_cell_pulls_a_second_one_into_hiding() -> None:
    b = suppress({"a": 20, "b": 3, "c": 9})
    assert b.cells == {"a": 20, "b": HIDDEN, "c": HIDDEN}
    assert b.total == 32


def test_a_small_total_hides_everything() -> None:
    b = suppress({"a": 3, "b": 1})
    assert b.total == HIDDEN
    assert set(b.cells.values()) == {HIDDEN}


async def _cases(w: World, n: int, state: str, scene: str) -> list[str]:
    codes = []
    for i in range(n):
        codes.append(await w.open(f"{state}{scene}{i}", state=state, scene=scene))
    return codes


async def test_report_counts_cases_from_the_events(world: World, tmp_path: Path) -> None:
    w = world
    mv = await _cases(w, 6, "MV", "right")
    nw = await _cases(w, 2, "NW", "left")
    by = await _cases(w, 5, "BY", "right")
    for code in mv[:5]:
        await w.staff("a1", f"/claim {code}")
        await w.staff("a1", f"/r {code} Hallo")
    for code in mv[:5]:
        await w.staff("a1", f"/close {code} exit")
    assert w.app.db is not None
    today = w.clock.now().date()
    report = await funder_report(w.app.db, date(today.year, today.month, 1), today)
    b = report.breakdowns
    assert b["month"].total == len(mv) + len(nw) + len(by) == 13
    assert b["region"].cells["MV"] == 6
    assert b["region"].cells["NW"] == HIDDEN  # 2 people: hidden
    assert b["region"].cells["BY"] == HIDDEN  # else NW = 13 - 6 - 5
    assert b["scene"].cells == {"right": HIDDEN, "left": HIDDEN}  # left = 13 - right
    assert b["first_reply"].cells["0"] == 5  # answered the same day
    assert b["outcome"].cells["exit"] == 5

    csv_path, html_path = write_report(report, tmp_path / "out")
    with csv_path.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert ["region", "NW", HIDDEN] in rows
    assert ["region", "MV", "6"] in rows
    assert ["month", "total", "13"] in rows
    page = html_path.read_text(encoding="utf-8")
    assert page.count("<svg") == len(b)
    assert "<script" not in page  # self-contained, nothing to run or download
    assert not re.search(r"""(src|href)=["']https?:""", page)  # loads nothing from outside


def test_report_command_writes_both_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUSWEG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUSWEG_ENV_FILE", str(tmp_path / "absent.env"))
    out = tmp_path / "r"
    assert cli_main(["report", "--from", "2026-01", "--to", "2026-06", "--out", str(out)]) == 0
    assert (out / "report.csv").exists()
    assert (out / "report.html").exists()
    assert cli_main(["report", "--from", "2026-13", "--to", "2026-06"]) == 2


def _chromium() -> str | None:
    return next((p for n in ("chromium", "chromium-browser") if (p := shutil.which(n))), None)


def test_report_renders_in_a_real_browser(tmp_path: Path) -> None:
    """The page as Chromium builds it: every chart is an SVG with bars in the DOM."""
    browser = _chromium()
    if browser is None:
        if REQUIRE_SERVICES:
            pytest.fail("chromium missing (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from storage.stats import Breakdown, FunderReport

    report = FunderReport(
        date(2026, 1, 1),
        date(2026, 6, 30),
        None,
        {
            "month": Breakdown("month", {"2026-01": 12, "2026-02": HIDDEN, "2026-03": HIDDEN}, 20),
            "region": Breakdown("region", {"MV": 14, "NW": 6}, 20),
        },
    )
    _, page = write_report(report, tmp_path)
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout
    assert dom.count("<svg") == 2
    assert dom.count('class="chart"') == 2
    assert "NW" in dom
    assert HIDDEN.replace("<", "&lt;") in dom
