"""The ``ausweg`` entry point: parse, run one command, one line for a known failure."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.cli import check, demo, keys, link, reports, run, stores
from bot.cli.common import settings_of
from bot.cli.parser import build_parser
from bot.links import LinkError
from config.directory import DirectoryError
from config.settings import ConfigError, Settings
from storage.backup import BackupError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ausweg`` console script.

    Exit codes: 0 done, 1 something to look at, 2 refused (settings, directory, link,
    backup), 3 the database cannot be opened, 130 interrupted.
    """
    args = build_parser().parse_args(argv)

    from bot.logsetup import setup_logging
    from storage.db import unavailable_reason

    settings: Settings | None = None
    try:
        settings = settings_of(args)
        setup_logging(settings.log_level if args.command != "demo" else "WARNING")
        return _dispatch(settings, args)
    except (ConfigError, DirectoryError, LinkError, BackupError) as exc:
        print(f"ausweg: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        reason = unavailable_reason(exc)
        if reason is None or settings is None:
            raise
        # One line instead of a traceback: what failed and which stores were asked.
        from storage.db import display_url

        where = (
            f"database {display_url(settings.database_url)},"
            f" key store {display_url(settings.keystore_url)}"
        )
        print(f"ausweg: cannot open the database: {reason} ({where})", file=sys.stderr)
        return 3


def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    """Run the command ``args`` names (its module does the work)."""
    command = args.command
    if command == "demo":
        return asyncio.run(demo.demo(demo.prepare_demo(settings, Path(args.dir))))
    if command == "run":
        return asyncio.run(run.run(settings))
    if command == "check-config":
        return check.check_config(settings)
    if command == "migrate":
        return asyncio.run(stores.migrate(settings))
    if command == "link":
        return asyncio.run(link.link(settings, args))
    if command == "keys" and args.action == "rotate":
        return asyncio.run(keys.rotate(settings, args.batch))
    if command == "keys" and args.action == "status":
        return asyncio.run(keys.key_status(settings))
    if command == "keys":
        return keys.generate()
    if command == "purge":
        return asyncio.run(stores.purge(settings, vacuum=args.vacuum, batch=args.batch))
    if command == "backup":
        return stores.backup(settings, Path(args.folder))
    if command == "privacy-report":
        return asyncio.run(reports.privacy_report(settings))
    if command == "report":
        return asyncio.run(reports.funder_report(settings, args))
    return 1
