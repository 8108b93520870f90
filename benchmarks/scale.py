"""Scale: start-up time and memory with many open cases and scheduled follow-ups, and
the purge of a million expired rows (issue 14, target 4).

Seeds the main database directly (Core inserts, placeholder ciphertexts: start-up and
purge never open them), then measures in a fresh process how long ``App.start()``
takes and the process's peak RSS, then times the purge of expired rows.

Usage: ``python -m benchmarks.scale [--cases N] [--open N] [--expired N] [--url URL]``
(``--quick`` runs a small version in seconds, for CI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bot.app import App, build_vault
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock, hour
from config.directory import load_directory
from config.settings import EXAMPLE_DIRECTORY, Settings
from storage.db import Database
from storage.keystore import KeyStore
from storage.migrate import upgrade
from storage.models import Case, Contact, FollowUp, ProcessedUpdate
from storage.retention import purge
from tests.conftest import OFFICE_TIME, make_settings, memory_directory

BATCH = 20_000
#: A programme of the example directory and one of its counsellors (as a staff key), so
#: the seeded cases are ordinary ones: an unknown programme or claimer would make every
#: case an orphan that start-up puts back into the queue.
PROGRAMME, CLAIMER = "jump", "jump/jump-1"


def _settings(
    data_dir: Path, url: str | None, keys: dict[str, Any] | None = None, schema: str | None = None
) -> Settings:
    connect = {"server_settings": {"search_path": schema}} if schema else {}
    settings = make_settings(data_dir, url, **connect)
    if keys:  # the child process must use the parent's keys
        settings = settings.model_copy(update={"crypto": settings.crypto.model_validate(keys)})
    return settings


async def _seed(settings: Settings, cases: int, open_cases: int, expired: int) -> float:
    """Insert ``cases`` cases (``open_cases`` of them new, the rest claimed), one contact
    and one follow-up each (due over the next 60 days), and ``expired`` expired
    de-duplication rows. Returns seconds."""
    started = time.perf_counter()
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    await upgrade(db.engine)
    now = hour(OFFICE_TIME)
    later = now + timedelta(days=180)
    async with db.engine.begin() as conn:
        for lo in range(0, cases, BATCH):
            ids = range(lo, min(lo + BATCH, cases))
            await conn.execute(
                insert(Contact),
                [
                    {
                        "id": f"c{i:023d}",
                        "pseudonym": f"{i:064x}",
                        "pseudonym_version": 1,
                        "platform": "memory",
                        "key_id": f"k{i:023d}",
                        "address_ct": b"\0" * 64,
                        "locale": "de",
                        "state": "case",
                        "profile_ct": None,
                        "urgent": False,
                        "created_at": now,
                        "delete_after": later,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                insert(Case),
                [
                    {
                        "id": f"s{i:023d}",
                        "code": f"S-{i:08d}",
                        "contact_id": f"c{i:023d}",
                        "key_id": f"k{i:023d}",
                        "programme_id": PROGRAMME,
                        "status": "new" if i < open_cases else "claimed",
                        "audience": "self",
                        "scene": "right",
                        "region": "MV",
                        "district": None,
                        "language": "de",
                        "in_prison": False,
                        "urgent": False,
                        "route_step": "match",
                        "claimed_by": None if i < open_cases else CLAIMER,
                        "outcome": None,
                        "pending_transfer": None,
                        "source": None,
                        "escalated": 0,
                        "opened_at": now,
                        "last_activity_at": now,
                        "delete_after": later,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                insert(FollowUp),
                [
                    {
                        "id": f"f{i:023d}",
                        "case_id": f"s{i:023d}",
                        "every_days": 7,
                        "due_at": now + timedelta(minutes=(i * 86_400 // max(cases, 1)) % 86_400),
                        "paused": False,
                        "delete_after": later,
                    }
                    for i in ids
                ],
            )
        gone = now - timedelta(hours=1)
        for lo in range(0, expired, BATCH):
            await conn.execute(
                insert(ProcessedUpdate),
                [
                    {"key": f"{i:032x}", "delete_after": gone}
                    for i in range(lo, min(lo + BATCH, expired))
                ],
            )
    await db.dispose()
    return time.perf_counter() - started


async def _start_once(settings: Settings) -> dict[str, float]:
    """In this (fresh) process: time ``App.start()``; report peak RSS."""
    clock = FakeClock(OFFICE_TIME)
    directory = memory_directory(load_directory(EXAMPLE_DIRECTORY))
    app = App(settings, [MemoryTransport()], clock=clock, directory=directory)
    started = time.perf_counter()
    await app.start()
    seconds = time.perf_counter() - started
    jobs = len(app.scheduler.followup_jobs()) if app.scheduler else 0
    await app.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"start_s": seconds, "rss_mb": rss_mb, "jobs_in_memory": jobs}


async def _purge(settings: Settings) -> dict[str, float]:
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    keys_db = Database(settings.keystore_url)
    keystore = KeyStore(keys_db, build_vault(settings))
    await keystore.create_schema()
    started = time.perf_counter()
    report = await purge(db, keystore, OFFICE_TIME)
    seconds = time.perf_counter() - started
    await db.dispose()
    await keys_db.dispose()
    return {"purge_s": seconds, "purged_rows": report.total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases with a follow-up")
    parser.add_argument("--open", type=int, default=100_000, help="of them new (in queues)")
    parser.add_argument("--expired", type=int, default=1_000_000, help="expired rows to purge")
    parser.add_argument("--url", default=None, help="database URL (default: SQLite)")
    parser.add_argument("--quick", action="store_true", help="10k cases, 10k expired rows")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # measure start-up in a fresh process
        spec = json.loads(args.child)
        settings = _settings(Path(spec["data"]), spec["url"], spec["crypto"], spec["schema"])
        print(json.dumps(asyncio.run(_start_once(settings))))
        return
    if args.quick:
        args.cases, args.open, args.expired = 10_000, 1_000, 10_000
    schema = f"bench_{secrets.token_hex(4)}" if args.url else None
    if schema:  # a private schema on PostgreSQL, dropped afterwards
        asyncio.run(_ddl(args.url, f"CREATE SCHEMA {schema}"))
    try:
        result = _measure(args, schema)
    finally:
        if schema:
            asyncio.run(_ddl(args.url, f"DROP SCHEMA {schema} CASCADE"))
    print(json.dumps(result))


async def _ddl(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _measure(args: argparse.Namespace, schema: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        settings = _settings(data, args.url, schema=schema)
        seeded = asyncio.run(_seed(settings, args.cases, args.open, args.expired))
        crypto = settings.crypto.model_dump(mode="json")
        crypto["master_keys"] = {
            k: v.get_secret_value() for k, v in settings.crypto.master_keys.items()
        }
        crypto["pseudonym_keys"] = {
            k: v.get_secret_value() for k, v in settings.crypto.pseudonym_keys.items()
        }
        child = json.dumps({"data": str(data), "url": args.url, "crypto": crypto, "schema": schema})
        out = subprocess.run(  # noqa: S603 (our own module, our own arguments)
            [sys.executable, "-m", "benchmarks.scale", "--child", child],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        start = json.loads(out.strip().splitlines()[-1])
        purged = asyncio.run(_purge(settings))
    return {
        "cases_with_followups": args.cases,
        "open_new_cases": args.open,
        "seed_s": round(seeded, 1),
        "start_s": round(start["start_s"], 2),
        "rss_mb": round(start["rss_mb"]),
        "jobs_in_memory": start["jobs_in_memory"],
        "purge_s": round(purged["purge_s"], 1),
        "purged_rows": purged["purged_rows"],
        "backend": "postgresql" if args.url else "sqlite",
    }


if __name__ == "__main__":
    main()
