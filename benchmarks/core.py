"""Core throughput and latency: messages through the App on SQLite (or a given URL).

Setup: ``--conversations`` people go through the intake (buttons) and their cases are
claimed (that phase's rate is the intake throughput). Measured: ``--messages``
messages, a mix of relays (people with a claimed case write; each is relayed to the
staff room) and intake steps of newcomers (``--intake-share``), spread over all
conversations. As on the platforms, one chat's messages are handled strictly in order
(a lock per chat), different chats concurrently, and replies are stored in the outbox
(``--no-outbox`` turns it off). The app runs as ``ausweg run`` does: a push returns once
its update is committed (with its replies in the outbox); the replies go out from the
send queues, and the measured time runs until the last of them went out.

* closed loop (default): ``--concurrency`` chats write at once, each sends its next
  message when the previous one was handled: the maximum rate.
* open loop: ``--rate R`` messages per second arrive on a fixed schedule whatever the
  bot does: latency = arrival -> handled (committed, replies queued), so queueing
  counts. This is the "p99 at 2,000 msg/s" measurement.

Usage: ``python -m benchmarks.core [--conversations N] [--messages M] [--rate R]
[--concurrency C] [--intake-share S] [--url URL] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import secrets
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import load_directory
from config.settings import EXAMPLE_DIRECTORY, Settings
from handlers.limits import Limits, LimitSettings
from storage.db import normalise_url
from tests.conftest import OFFICE_TIME, make_settings, memory_directory

INTAKE = (
    "/start",
    "b:consent:yes",
    "b:safety:no",
    "b:audience:self",
    "b:scene:right",
    "b:state:MV",  # JUMP!: no state-authority choice on the way
    "b:district:skip",
    "b:prison:no",
    "b:language:de",
    "b:message:skip",
)
#: Newcomers in the intake at the same time during the measured phase.
NEWCOMERS_AT_ONCE = 50


@asynccontextmanager
async def bench_settings(url: str | None) -> AsyncIterator[Settings]:
    """Settings with fresh keys in a temporary folder; on PostgreSQL in a private schema
    (dropped afterwards), so runs never meet other data."""
    with tempfile.TemporaryDirectory() as tmp:
        if not url or not url.startswith("postgres"):
            yield make_settings(Path(tmp) / "data", url)
            return
        import asyncpg

        schema = "bench_" + secrets.token_hex(6)
        raw = make_url(normalise_url(url)).set(drivername="postgresql")
        dsn = raw.render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
            yield make_settings(Path(tmp) / "data", url, server_settings={"search_path": schema})
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()


async def push(t: MemoryTransport, who: str, step: str) -> None:
    """One intake step or text of a person."""
    if step.startswith("b:"):
        await t.push(who, button=step[2:])
    else:
        await t.push(who, step)


async def start_app(settings: Settings, *, outbox: bool = True) -> tuple[App, MemoryTransport]:
    """The App on the memory transport; abuse limits lifted (throughput, not abuse)."""
    transport = MemoryTransport(redelivers=outbox)
    unlimited = LimitSettings(
        person_burst=1e12, new_contacts_burst=1e12, cases_per_programme_per_hour=10**9
    )
    app = App(
        settings,
        [transport],
        clock=FakeClock(OFFICE_TIME),
        directory=memory_directory(load_directory(EXAMPLE_DIRECTORY)),
        limits=Limits(unlimited),
        wait_for_sends=False,  # as `ausweg run`: a push returns once committed
    )
    await app.start()
    return app, transport


async def seed(app: App, t: MemoryTransport, people: list[str], concurrency: int = 32) -> float:
    """Take ``people`` through the intake and claim their cases; returns intake msg/s."""
    sem = asyncio.Semaphore(concurrency)

    async def person(who: str) -> None:
        async with sem:
            for step in INTAKE:
                await push(t, who, step)

    start = time.perf_counter()
    await asyncio.gather(*(person(p) for p in people))
    await app.sender.idle()  # every reply sent
    rate = len(people) * len(INTAKE) / (time.perf_counter() - start)
    codes = [
        b.data.split(":")[1] for m in t.sent for b in m.flat_buttons if b.data.startswith("claim:")
    ]
    if len(codes) != len(people):
        raise RuntimeError(f"{len(codes)} cases for {len(people)} people")

    async def claim(code: str) -> None:
        async with sem:  # set-up only: one staff room's commands at once
            await t.push("counsellor", f"/claim {code}", chat="staff", group=True)

    await asyncio.gather(*(claim(c) for c in codes))
    await app.sender.idle()
    t.sent.clear()
    t._by_chat.clear()
    if app.router is not None:
        await app.router.forget_delivered()  # the sent entries go before the measurement
    return rate


def workload(
    conversations: list[str], messages: int, intake_share: float, rng: random.Random
) -> Iterator[tuple[str, str, bool]]:
    """(chat, step, is_relay) in arrival order; newcomers walk the intake in order."""
    fresh = (f"new{i}" for i in itertools.count())
    active: list[list[Any]] = [[next(fresh), 0] for _ in range(NEWCOMERS_AT_ONCE)]
    for n in range(messages):
        if rng.random() < intake_share:
            slot = rng.randrange(len(active))
            who, at = active[slot]
            yield who, INTAKE[at], False
            active[slot] = [who, at + 1] if at + 1 < len(INTAKE) else [next(fresh), 0]
        else:
            yield rng.choice(conversations), f"Nachricht {n}", True


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


async def mixed(
    app: App,
    t: MemoryTransport,
    conversations: list[str],
    messages: int,
    *,
    intake_share: float = 0.2,
    concurrency: int = 16,
    rate: float = 0.0,
    seed_value: int = 1,
) -> dict[str, float]:
    """The measured phase (see the module doc); returns rates and latencies."""
    plan = list(workload(conversations, messages, intake_share, random.Random(seed_value)))  # noqa: S311
    locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
    latencies: list[float] = []
    commits = getattr(app.router, "commits", None)  # None: code before group commit
    stats = commits.stats if commits is not None else None
    before = (stats.units, stats.batches + stats.alone) if stats else (0, 0)

    async def one(chat: str, step: str, arrived: float) -> None:
        async with locks[chat]:
            await push(t, chat, step)
        latencies.append(time.perf_counter() - arrived)

    cpu0, start = time.process_time(), time.perf_counter()
    if rate > 0:  # open loop: arrivals on a fixed schedule
        tasks = []
        for i, (chat, step, _) in enumerate(plan):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(chat, step, due)))
        await asyncio.gather(*tasks)
    else:  # closed loop: ``concurrency`` workers
        queue = iter(plan)

        async def worker() -> None:
            for chat, step, _ in queue:
                await one(chat, step, time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    await app.sender.idle()  # throughput counts until the last reply went out
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    relays = sum(1 for _, _, r in plan if r)
    relayed = sum(1 for m in t.sent if m.address.chat_id == "staff" and "Nachricht" in m.text)
    if relayed != relays:
        raise RuntimeError(f"relayed {relayed} of {relays}")
    latencies.sort()
    transactions = (stats.batches + stats.alone - before[1]) if stats else messages
    units = (stats.units - before[0]) if stats else messages
    return {
        "msgs_per_s": messages / wall,
        "cpu_us_per_msg": cpu / messages * 1e6,
        "p50_ms": _pct(latencies, 0.50),
        "p95_ms": _pct(latencies, 0.95),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": latencies[-1] * 1000,
        "msgs_per_transaction": units / max(1, transactions),
    }


async def _run(a: argparse.Namespace) -> dict[str, float]:
    async with bench_settings(a.url) as settings:
        app, transport = await start_app(settings, outbox=not a.no_outbox)
        try:
            people = [f"p{i}" for i in range(a.conversations)]
            start = time.perf_counter()
            intake_rate = await seed(app, transport, people)
            setup_s = time.perf_counter() - start
            result = await mixed(
                app,
                transport,
                people,
                a.messages,
                intake_share=a.intake_share,
                concurrency=a.concurrency,
                rate=a.rate,
            )
        finally:
            await app.stop()
    return {
        "conversations": a.conversations,
        "setup_s": setup_s,
        "intake_msgs_per_s": intake_rate,
        **result,
    }


def main() -> None:
    """Run and print the numbers."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--intake-share", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: msg/s (0: closed)")
    parser.add_argument("--url", default=None)
    parser.add_argument("--no-outbox", action="store_true")
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    result = asyncio.run(_run(a))
    if a.json:
        print(json.dumps(result))
        return
    for k, v in result.items():
        print(f"{k:>22}: {v:,.1f}")


if __name__ == "__main__":
    main()
