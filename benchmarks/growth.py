"""Growth: the cost of one message with 1x, 10x and 100x data already stored (issue 14,
target 5: flat; no scans on the hot path).

For each factor a fresh database gets ``--base x factor`` stored conversations that
take no part (contacts with claimed cases, their statistics events and message refs,
ten processed updates each; random bytes where ciphertext would be), beside
``--active`` real conversations made through the intake. Then the mixed workload of
``benchmarks.core`` runs over the real ones. Every distinct statement the database
saw in that phase is explained (SQLite: ``EXPLAIN QUERY PLAN``, PostgreSQL:
``EXPLAIN``); a full scan of a table is reported under ``scans``.

Usage: ``python -m benchmarks.growth [--base N] [--factors 1,10,100] [--messages M]
[--url URL] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import event, insert, text

from benchmarks.core import bench_settings, mixed, seed, start_app
from bot.app import App
from config.clock import hour
from storage.db import Database
from storage.models import Case, CaseEvent, Contact, MessageRef, ProcessedUpdate
from tests.conftest import OFFICE_TIME

_IN_LIST = re.compile(r"\((?:\?|\$\d+)(?:, (?:\?|\$\d+))+\)")
#: Rows per executemany while filling.
CHUNK = 5_000


def _rows(n: int, start: int) -> dict[str, list[dict[str, Any]]]:
    now = hour(OFFICE_TIME)
    later = now + timedelta(days=90)
    contacts: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for i in range(start, start + n):
        cid, case_id = f"fc{i:014x}", f"fk{i:014x}"
        contacts.append(
            {
                "id": cid,
                "pseudonym": secrets.token_hex(32),
                "pseudonym_version": 1,
                "platform": "memory",
                "key_id": secrets.token_hex(8),
                "address_ct": os.urandom(60),
                "locale": "de",
                "state": "case",
                "profile_ct": None,
                "urgent": False,
                "created_at": now,
                "delete_after": later,
            }
        )
        cases.append(
            {
                "id": case_id,
                "code": f"F-{i:08X}",
                "contact_id": cid,
                "key_id": secrets.token_hex(8),
                "programme_id": "filler",
                "status": "claimed",
                "audience": "self",
                "language": "de",
                "urgent": False,
                "route_step": "done",
                "claimed_by": "filler/1",
                "escalated": 0,
                "opened_at": now,
                "last_activity_at": now,
                "delete_after": later,
            }
        )
        events.append(
            {
                "case_id": case_id,
                "programme_id": "filler",
                "kind": "opened",
                "day": now.date(),
                "delete_after": later,
            }
        )
        refs.extend(
            {
                "id": f"fr{i:013x}{j}",
                "contact_id": cid,
                "ref_ct": os.urandom(40),
                "delete_after": later,
            }
            for j in range(2)
        )
        updates.extend({"key": secrets.token_hex(16), "delete_after": later} for _ in range(10))
    return {
        "contacts": contacts,
        "cases": cases,
        "events": events,
        "refs": refs,
        "updates": updates,
    }


def _db(app: App) -> Database:
    if app.db is None:
        raise RuntimeError("app not started")
    return app.db


async def fill(app: App, conversations: int) -> float:
    """Store ``conversations`` idle conversations; returns the seconds it took."""
    start = time.perf_counter()
    for at in range(0, conversations, CHUNK):
        rows = _rows(min(CHUNK, conversations - at), at)
        async with _db(app).engine.begin() as conn:
            await conn.execute(insert(Contact), rows["contacts"])
            await conn.execute(insert(Case), rows["cases"])
            await conn.execute(insert(CaseEvent), rows["events"])
            await conn.execute(insert(MessageRef), rows["refs"])
            await conn.execute(insert(ProcessedUpdate), rows["updates"])
    return time.perf_counter() - start


async def explain(app: App, statements: dict[str, Any]) -> dict[str, list[str]]:
    """The plan of each statement (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN)."""
    db = _db(app)
    plans: dict[str, list[str]] = {}
    async with db.engine.connect() as conn:
        for shape, (sql, params) in statements.items():
            if not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
                continue
            prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            if db.is_sqlite:
                cur = driver.raw.execute(prefix + sql, params)
                plans[shape] = [str(r[-1]) for r in cur.fetchall()]
            else:
                rows = await driver.fetch(prefix + sql, *params)
                plans[shape] = [r[0] for r in rows]
            await conn.rollback()
    return plans


def scans(plans: dict[str, list[str]]) -> list[str]:
    """Plan lines that read a whole table."""
    found = []
    for sql, lines in plans.items():
        for line in lines:
            upper = line.upper()
            if ("SCAN " in upper and "USING" not in upper and "CONSTANT" not in upper) or (
                "SEQ SCAN" in upper
            ):
                where = " ".join(sql.split()).partition(" WHERE ")[2][:100]
                found.append(f"{line.strip()}  <-  {sql.split()[0]} ... WHERE {where}")
    return found


async def one_factor(
    factor: int, base: int, active: int, messages: int, url: str | None
) -> dict[str, Any]:
    """Fill ``base x factor`` conversations, run the mixed workload, explain it."""
    async with bench_settings(url) as settings:
        app, transport = await start_app(settings)
        try:
            filled_s = await fill(app, base * factor)
            people = [f"p{i}" for i in range(active)]
            await seed(app, transport, people)
            seen: dict[str, Any] = {}

            def note(_c: Any, _cur: Any, statement: str, params: Any, _x: Any, many: bool) -> None:
                shape = _IN_LIST.sub("(?...)", statement)  # one plan per IN-list length
                if not many and shape not in seen:
                    seen[shape] = (statement, params)

            engine = _db(app).engine.sync_engine
            event.listen(engine, "before_cursor_execute", note)
            result = await mixed(app, transport, people, messages)
            event.remove(engine, "before_cursor_execute", note)
            plans = await explain(app, seen)
            async with _db(app).engine.connect() as conn:
                stored = (await conn.execute(text("SELECT count(*) FROM contacts"))).scalar_one()
        finally:
            await app.stop()
    return {
        "factor": factor,
        "stored_conversations": stored,
        "fill_s": filled_s,
        **result,
        "statements": len(plans),
        "scans": scans(plans),
        "plans": plans,
    }


def main() -> None:
    """Run every factor and print one JSON object per factor, then a summary line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=int, default=1_000)
    parser.add_argument("--factors", default="1,10,100")
    parser.add_argument("--active", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--url", default=None)
    parser.add_argument("--quick", action="store_true", help="seconds: CI")
    parser.add_argument("--plans", action="store_true", help="print the query plans")
    a = parser.parse_args()
    if a.quick:
        a.base, a.factors, a.active, a.messages = 100, "1,10", 20, 300
    summary = []
    for factor in (int(f) for f in a.factors.split(",")):
        r = asyncio.run(one_factor(factor, a.base, a.active, a.messages, a.url))
        if a.plans:
            for sql, lines in r["plans"].items():
                print(sql.splitlines()[0][:100], "\n    " + "\n    ".join(lines))
        del r["plans"]
        print(json.dumps(r), flush=True)
        summary.append(r)
    flat = {
        "cpu_us_per_msg": [round(r["cpu_us_per_msg"]) for r in summary],
        "stored": [r["stored_conversations"] for r in summary],
        "scans": sorted({s for r in summary for s in r["scans"]}),
    }
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
