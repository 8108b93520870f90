"""What every command works with: the settings, and the stores it names and opens."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from config.settings import Settings

if TYPE_CHECKING:
    from storage.db import Database
    from storage.keystore import KeyStore


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings (environment, ``.env``), with the directory a command names."""
    settings = Settings()
    if getattr(args, "directory", None):
        settings.directory_path = Path(args.directory)
    return settings


def stores_used(settings: Settings) -> list[str]:
    """Which database, key store and data folder the settings point at (no passwords)."""
    from storage.db import display_url

    return [
        f"database:    {display_url(settings.database_url)}",
        f"key store:   {display_url(settings.keystore_url)}",
        f"data folder: {settings.data_dir.resolve()}",
    ]


def say_stores(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Tell the operator which stores a command works on (stderr: stdout stays parseable)."""
    print("\n".join(stores_used(settings)), file=stream or sys.stderr)


@asynccontextmanager
async def database(settings: Settings, *, stream: TextIO | None = None) -> AsyncIterator[Database]:
    """The main database, migrated (no keys needed: schema, links, counts)."""
    from storage.db import Database
    from storage.migrate import upgrade

    say_stores(settings, stream=stream)
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    try:
        await upgrade(db.engine)
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def stores(settings: Settings) -> AsyncIterator[tuple[Database, KeyStore]]:
    """Main database (migrated) and key store, with the configured keys."""
    from bot.app import build_vault
    from storage.db import Database
    from storage.keystore import KeyStore
    from storage.migrate import upgrade

    settings.load_key_file()
    settings.check_secrets()
    say_stores(settings)
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    keys_db = Database(settings.keystore_url)
    try:
        await upgrade(db.engine)
        keystore = KeyStore(keys_db, build_vault(settings))
        await keystore.create_schema()
        yield db, keystore
    finally:
        await db.dispose()
        await keys_db.dispose()
