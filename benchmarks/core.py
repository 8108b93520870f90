"""Core throughput: messages per second through the router on SQLite (or a given URL).

Each message is one transaction: de-duplication, pseudonym lookup, decryption,
handler, encryption, commit; the app runs as ``ausweg run`` does (a push returns once
committed, replies go out from the send queues; latency: push until committed,
throughput: until the last reply went out). Two workloads:

* ``relay``: people whose case is claimed write; each message is relayed to staff.
* ``intake``: new people answer the intake questions.

Usage: ``python -m benchmarks.core [--messages N] [--people P] [--concurrency C] [--url URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import load_directory
from config.settings import EXAMPLE_DIRECTORY
from handlers.limits import Limits, LimitSettings
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


async def _push(t: MemoryTransport, who: str, step: str) -> None:
    if step.startswith("b:"):
        await t.push(who, button=step[2:])
    else:
        await t.push(who, step)


async def _run(messages: int, people: int, concurrency: int, url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp) / "data", url)
        transport = MemoryTransport()
        # Throughput, not abuse handling: limits are lifted for the measurement.
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
        try:
            # intake workload: people go through the questions (also the setup for relay)
            start = time.perf_counter()
            sem = asyncio.Semaphore(concurrency)

            async def person(i: int) -> None:
                async with sem:
                    for step in INTAKE:
                        await _push(transport, f"p{i}", step)

            await asyncio.gather(*(person(i) for i in range(people)))
            await app.sender.idle()  # every reply sent
            intake_s = time.perf_counter() - start
            intake_rate = people * len(INTAKE) / intake_s
            codes = [
                b.data.split(":")[1]
                for m in transport.sent
                for b in m.flat_buttons
                if b.data.startswith("claim:")
            ]
            for code in codes:
                await transport.push("counsellor", f"/claim {code}", chat="staff", group=True)
            await app.sender.idle()
            transport.sent.clear()

            latencies: list[float] = []

            async def send(n: int) -> None:
                async with sem:
                    t0 = time.perf_counter()
                    await transport.push(f"p{n % people}", f"Nachricht {n}")
                    latencies.append(time.perf_counter() - t0)

            start = time.perf_counter()
            await asyncio.gather(*(send(n) for n in range(messages)))
            await app.sender.idle()  # throughput counts until the last relay went out
            relay_s = time.perf_counter() - start
            relayed = sum(1 for m in transport.sent if m.address.chat_id == "staff")
            if relayed != messages:
                raise RuntimeError(f"relayed {relayed} of {messages}")
        finally:
            await app.stop()
    latencies.sort()
    return {
        "intake_msgs_per_s": intake_rate,
        "relay_msgs_per_s": messages / relay_s,
        "relay_p50_ms": statistics.median(latencies) * 1000,
        "relay_p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
    }


def main() -> None:
    """Run and print the numbers."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--url", default=None)
    a = parser.parse_args()
    result = asyncio.run(_run(a.messages, a.people, a.concurrency, a.url))
    for k, v in result.items():
        print(f"{k:>20}: {v:,.1f}")


if __name__ == "__main__":
    main()
