"""Consistent backups of the main database and, apart from it, of the key store.

The two go to separate folders because they need separate retention: erasing a person
deletes their data key from the key store, and only once every key-store backup taken
before that erasure has expired is the person gone from every copy of the main database
(crypto-shredding; docs/DEPLOY.md section 8, docs/PRIVACY.md).

SQLite: the online backup API (a consistent copy while the bot runs; WAL included).
PostgreSQL: ``pg_dump --format=custom`` (one consistent snapshot per database), restored
with ``pg_restore``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from storage.db import normalise_url

#: Sub-folders of the backup folder: different retention (see the module docstring).
MAIN = "main"
KEYSTORE = "keystore"


class BackupError(RuntimeError):
    """A backup could not be written; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupFiles:
    """Where one backup run wrote the main database and the key store."""

    main: Path
    keystore: Path


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def _sqlite_copy(source: Path, target: Path) -> None:
    """Online backup of a live SQLite file (consistent, WAL contents included)."""
    if not source.exists():
        raise BackupError(f"no SQLite database at {source}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _pg_env_and_args(url: URL, schema: str | None) -> tuple[dict[str, str], list[str]]:
    """pg_dump's connection (password through the environment, never the command line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    args = [
        f"--host={url.host or 'localhost'}",
        f"--port={url.port or 5432}",
        f"--username={url.username or 'postgres'}",
        f"--dbname={url.database}",
    ]
    if schema:
        args.append(f"--schema={schema}")
    return env, args


def _search_path(connect_args: dict[str, Any] | None) -> str | None:
    settings = (connect_args or {}).get("server_settings") or {}
    value = settings.get("search_path")
    return str(value) if value else None


def _pg_dump(url: URL, target: Path, connect_args: dict[str, Any] | None) -> None:
    tool = shutil.which("pg_dump")
    if tool is None:
        raise BackupError(
            "pg_dump not found: install the PostgreSQL client (apt install postgresql-client)"
            " or run `pg_dump --format=custom` yourself (docs/DEPLOY.md section 8)"
        )
    env, args = _pg_env_and_args(url, _search_path(connect_args))
    proc = subprocess.run(  # noqa: S603 - fixed tool, arguments from the settings
        [tool, "--format=custom", "--no-owner", f"--file={target}", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        target.unlink(missing_ok=True)
        first = proc.stderr.strip().splitlines()[:1]
        raise BackupError(f"pg_dump failed: {first[0] if first else proc.returncode}")
    target.chmod(0o600)


def backup_one(
    url: str, target_dir: Path, name: str, stamp: str, connect_args: dict[str, Any] | None
) -> Path:
    """Back up one database into ``target_dir``; returns the file written."""
    parsed = make_url(normalise_url(url))
    _private_dir(target_dir)
    if parsed.get_backend_name() == "sqlite":
        target = target_dir / f"{name}-{stamp}.db"
        _sqlite_copy(Path(parsed.database or ""), target)
        return target
    target = target_dir / f"{name}-{stamp}.pgdump"
    _pg_dump(parsed, target, connect_args)
    return target


def backup(
    main_url: str,
    keystore_url: str,
    folder: Path,
    now: datetime,
    *,
    main_connect_args: dict[str, Any] | None = None,
) -> BackupFiles:
    """Write ``folder/main/ausweg-<time>`` and ``folder/keystore/keys-<time>``."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    main = backup_one(main_url, folder / MAIN, "ausweg", stamp, main_connect_args)
    keys = backup_one(keystore_url, folder / KEYSTORE, "keys", stamp, None)
    return BackupFiles(main, keys)
