"""The operator's data is safe from the tools (issue 15 part 6): the demo never touches a
real installation, commands say which stores they use, backups restore, and an erasure
made after a backup holds once the key-store backups from before it are gone."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from storage.backup import KEYSTORE, MAIN, backup
from storage.models import Contact
from tests.conftest import PG_URL, make_settings, memory_directory

ROOT = Path(__file__).resolve().parent.parent


def cli(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUSWEG_")}
    base["PYTHONPATH"] = str(ROOT)
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin, capture_output=True, text=True, env=base, cwd=tmp_path, timeout=120,
        check=False,
    )  # fmt: skip


def test_demo_in_its_own_folder(tmp_path: Path) -> None:
    proc = cli(tmp_path, "demo", stdin="#q\n")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ausweg-demo"]
    assert (tmp_path / "ausweg-demo" / "demo-keys.json").exists()
    assert str(tmp_path / "ausweg-demo") in proc.stdout


@pytest.mark.parametrize(
    ("env_line", "named"),
    [
        ("AUSWEG_DATABASE__URL=postgresql://ausweg:pw@db.internal/ausweg", "a database"),
        ("AUSWEG_DATA_DIR=__PROD__", "a data folder"),
        ("AUSWEG_CRYPTO__KEY_FILE=/etc/ausweg/keys.json", "real keys"),
        ("AUSWEG_TELEGRAM__ENABLED=true", "an enabled platform"),
    ],
)
def test_demo_refuses_next_to_a_production_env(tmp_path: Path, env_line: str, named: str) -> None:
    """Seen: `ausweg demo` in a folder with a production .env wrote demo keys and a demo
    contact into the production data folder and database."""
    prod = tmp_path / "prod"
    prod.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(env_line.replace("__PROD__", str(prod)) + "\n")
    proc = cli(work, "demo", stdin="#q\n")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert named in lines[0]
    assert "pw" not in lines[0]
    assert sorted(p.name for p in work.iterdir()) == [".env"]  # nothing written
    assert list(prod.iterdir()) == []


def test_migrate_says_which_database_and_folder(tmp_path: Path) -> None:
    data = tmp_path / "somewhere"
    proc = cli(tmp_path, "migrate", AUSWEG_DATA_DIR=str(data), AUSWEG_ENV_FILE="/nonexistent")
    assert proc.returncode == 0, proc.stderr
    assert f"database:    sqlite+aiosqlite:///{data / 'ausweg.db'}" in proc.stdout
    assert f"key store:   sqlite+aiosqlite:///{data / 'keys.db'}" in proc.stdout
    assert f"data folder: {data}" in proc.stdout


async def _person_through_consent(app: App, transport: MemoryTransport, who: str) -> None:
    await transport.push(who, "/start")
    await transport.push(who, button=transport.last_buttons(who)[0])
    transport.pop(who)


async def _contacts(settings: Settings) -> list[Contact]:
    from storage.db import Database

    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    try:
        async with db.transaction() as s:
            return list((await s.execute(select(Contact))).scalars())
    finally:
        await db.dispose()


def _restore_sqlite(files: list[Path], data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700)
    for source, name in zip(files, ("ausweg.db", "keys.db"), strict=True):
        shutil.copy2(source, data_dir / name)


async def test_backup_restores_and_erasure_outlives_the_backup(
    tmp_path: Path, clock: FakeClock, directory: Directory
) -> None:
    """SQLite: backup while running, restore both into a fresh folder, the bot runs there
    and knows the person; after the person erased themselves, the old main backup with a
    key store from after the erasure opens nothing of them."""
    settings = make_settings(tmp_path / "data")
    transport = MemoryTransport()
    app = App(settings, [transport], clock=clock, directory=memory_directory(directory))
    await app.start()
    try:
        await _person_through_consent(app, transport, "anna")
        before = backup(settings.database_url, settings.keystore_url, tmp_path / "b1", clock.now())
        assert before.main.parent == tmp_path / "b1" / MAIN
        assert before.keystore.parent == tmp_path / "b1" / KEYSTORE
        assert oct(before.main.stat().st_mode & 0o777) == "0o600"
        await transport.push("anna", "/delete")
        confirm = transport.last_buttons("anna")
        if confirm:  # asks first
            await transport.push("anna", button=confirm[0])
        clock.advance(seconds=2)
        after = backup(settings.database_url, settings.keystore_url, tmp_path / "b2", clock.now())
    finally:
        await app.stop()

    # Restore the first backup (both parts): the bot starts on it and knows the person.
    restored = make_settings(tmp_path / "restored")
    restored.crypto = settings.crypto
    _restore_sqlite([before.main, before.keystore], restored.data_dir)
    transport = MemoryTransport()
    app = App(restored, [transport], clock=clock, directory=memory_directory(directory))
    await app.start()
    try:
        contacts = await _contacts(restored)
        assert len(contacts) == 1
        assert await app.keystore.fetch([contacts[0].key_id])  # type: ignore[union-attr]
        await transport.push("anna", "hallo")
        assert transport.pop("anna")  # answered from the restored state
    finally:
        await app.stop()

    # The old main backup with the key store from after the erasure: nothing opens.
    mixed = make_settings(tmp_path / "mixed")
    mixed.crypto = settings.crypto
    _restore_sqlite([before.main, after.keystore], mixed.data_dir)
    contacts = await _contacts(mixed)
    assert len(contacts) == 1  # the row is still in the old backup ...

    def key_ids(path: Path) -> set[str]:
        with sqlite3.connect(path) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM data_keys")}

    assert contacts[0].key_id in key_ids(before.keystore)
    assert contacts[0].key_id not in key_ids(after.keystore)  # ... but its key is gone


def test_backup_command_on_postgresql(tmp_path: Path, pg_reason: str | None) -> None:
    """PostgreSQL: pg_dump of the main database, the key store apart; restorable."""
    if pg_reason:
        pytest.skip(pg_reason)
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("PostgreSQL client tools not installed")
    import asyncio
    import secrets

    import asyncpg

    raw = PG_URL.replace("+asyncpg", "")
    base = raw.rsplit("/", 1)[0]
    names = ["ausweg_bak_" + secrets.token_hex(4) for _ in range(3)]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(raw)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    for name in names:
        asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        main, keys, target = (f"{base}/{n}" for n in names)
        env = {
            "AUSWEG_ENV_FILE": "/nonexistent",
            "AUSWEG_DATA_DIR": str(tmp_path / "data"),
            "AUSWEG_DATABASE__URL": main,
            "AUSWEG_CRYPTO__KEYSTORE_URL": keys,
        }
        assert cli(tmp_path, "migrate", **env).returncode == 0
        proc = cli(tmp_path, "backup", str(tmp_path / "bak"), **env)
        assert proc.returncode == 0, proc.stderr
        dumps = sorted((tmp_path / "bak").rglob("*.pgdump"))
        assert [p.parent.name for p in dumps] == [KEYSTORE, MAIN]
        restore = subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={target}", str(dumps[1])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert restore.returncode == 0, restore.stderr
        env["AUSWEG_DATABASE__URL"] = target
        again = cli(tmp_path, "migrate", **env)
        assert again.returncode == 0, again.stderr
        assert "schema at revision" in again.stdout
    finally:
        for name in names:
            asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
