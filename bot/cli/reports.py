"""``ausweg privacy-report`` (what is stored) and ``ausweg report`` (for funders)."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.cli.common import database, stores
from config.directory import load_directory
from config.settings import ConfigError, Settings


async def privacy_report(settings: Settings) -> int:
    """Print what is stored (counts only)."""
    from storage import report as stored

    async with stores(settings) as (db, keystore):
        report = await stored.privacy_report(db, keystore, settings.retention, datetime.now(UTC))
    print("\n".join(report.lines()))
    return 0


def month_span(start: str, end: str) -> tuple[date, date]:
    """``2026-01``, ``2026-06`` -> the first day of January, the last day of June."""
    try:
        first = date.fromisoformat(f"{start}-01")
        last = date.fromisoformat(f"{end}-01")
    except ValueError:
        raise ConfigError("months are written YYYY-MM, e.g. --from 2026-01 --to 2026-06") from None
    if last < first:
        raise ConfigError("--to lies before --from")
    following = date(last.year + (last.month == 12), last.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


async def funder_report(settings: Settings, args: argparse.Namespace) -> int:
    """Write the funder report (counts only, small counts hidden)."""
    from bot.funders import write_report
    from storage import stats

    start, end = month_span(args.start, args.end)
    if args.programme and args.programme not in load_directory(settings.directory_path).by_id:
        raise ConfigError(f"no programme {args.programme!r} in the directory")
    async with database(settings) as db:
        report = await stats.funder_report(db, start, end, args.programme)
    csv_path, html_path = write_report(report, Path(args.out))
    print(f"wrote {csv_path} and {html_path}")
    return 0
