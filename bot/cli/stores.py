"""The stores by hand: ``ausweg migrate``, ``purge`` and ``backup``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.cli.common import database, say_stores, stores
from config.settings import Settings


async def migrate(settings: Settings) -> int:
    """Bring the schema up to date and print its revision."""
    from storage.migrate import current

    async with database(settings, stream=sys.stdout) as db:
        print(f"schema at revision {await current(db.engine)}")
    return 0


async def purge(settings: Settings, *, vacuum: bool, batch: int | None) -> int:
    """One purge by the system clock (the running bot also purges hourly)."""
    from storage import retention

    async with stores(settings) as (db, keystore):
        report = await retention.purge(db, keystore, datetime.now(UTC), batch=batch, vacuum=vacuum)
    print("Deleted (rows per table; data_keys = keys shredded):")
    print("\n".join(report.lines()))
    return 0


def backup(settings: Settings, folder: Path) -> int:
    """Back up the main database and, into its own folder, the key store."""
    from storage import backup as backups

    say_stores(settings, stream=sys.stdout)
    files = backups.backup(
        settings.database_url,
        settings.keystore_url,
        folder,
        datetime.now(UTC),
        main_connect_args=settings.database.connect_args,
    )
    print(f"main database: {files.main}")
    print(f"key store:     {files.keystore}")
    print(
        "Keep the key-store backups apart and only briefly (e.g. 7 days): an erased person"
        " is gone from the main backups once no key-store backup older than the erasure is"
        " left (docs/DEPLOY.md section 8)."
    )
    return 0
