"""``ausweg link``: a deep link with an opaque referral code (and a QR code)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.common import database
from config.directory import load_directory
from config.settings import Settings


async def link(settings: Settings, args: argparse.Namespace) -> int:
    """Create the link (stored with its programme and source) and print it."""
    from bot.links import create_link
    from config.clock import SystemClock

    directory = load_directory(settings.directory_path)
    async with database(settings) as db:
        made = await create_link(
            db,
            directory,
            programme=args.programme,
            source=args.source,
            bot_username=args.bot or settings.telegram.bot_username or "",
            now=SystemClock().now(),
            qr_path=Path(args.qr) if args.qr else None,
        )
    print(made.url)
    if made.qr_path:
        print(f"QR code: {made.qr_path}")
    return 0
