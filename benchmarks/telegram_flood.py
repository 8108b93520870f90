"""Privacy check 11 on Telegram: a flood of accounts, and ordinary people's reply latency.

The fake Bot API in this process, the bot (``TelegramTransport`` + the core on SQLite,
default abuse limits, Telegram's send limits ON: ~30 messages/s, 20/minute per group)
in its own process. ``--flooders`` accounts each send ``--burst`` messages at once
(all pushed before anyone else writes, interleaved as concurrent senders would be);
meanwhile ``--people`` ordinary people in the middle of the intake write ``--rounds``
answers each, one after the other, waiting for each reply ("nicht verstanden": a text
where a button was expected). Then one of them writes a crisis message and waits for
the numbers. Reported: the ordinary people's latency (push -> reply seen), the crisis
reply's, how many replies the flooders got and how long the flood took to drain.

Targets (issue 14, target 3): ordinary p95 < 2 s, crisis reply < 1 s with 50 flooders.

Usage: ``python -m benchmarks.telegram_flood [--flooders 50] [--burst 40] [--people 5]
[--rounds 10] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.telegram_echo import FORUM, _spawn

NOT_UNDERSTOOD = "nicht verstanden"
CRISIS = "112"
FLOODER0 = 6_200_000_000
PERSON0 = 6_300_000_000


class _Inbox:
    """Futures for "the next sendMessage into chat X containing Y"."""

    def __init__(self) -> None:
        self.wanted: dict[int, tuple[str, asyncio.Future[float]]] = {}
        self.replies: dict[int, int] = {}
        self.last: dict[int, str] = {}

    def want(self, chat: int, part: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.wanted[chat] = (part, future)
        return future

    def seen(self, method: str, params: dict[str, Any]) -> None:
        if method != "sendMessage":
            return
        chat = params.get("chat_id")
        if not isinstance(chat, int):
            return
        if chat >= PERSON0:
            self.last[chat] = str(params.get("text", ""))
        self.replies[chat] = self.replies.get(chat, 0) + 1
        wanted = self.wanted.get(chat)
        if wanted is not None and wanted[0] in str(params.get("text", "")):
            del self.wanted[chat]
            if not wanted[1].done():
                wanted[1].set_result(time.perf_counter())


def _api(inbox: _Inbox) -> Any:
    from tests.fakes.telegram_api import FakeBotApi

    class FloodApi(FakeBotApi):
        async def _record(self, name: str, values: Any, result: Any, error: Any) -> None:
            inbox.seen(name, values)  # no records kept: thousands of calls

    return FloodApi()


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def flood(flooders: int, burst: int, people: int, rounds: int) -> dict[str, Any]:
    """One run: start the bot, set the people up, flood, measure."""
    inbox = _Inbox()
    api = _api(inbox)
    await api.start()
    api.register_forum(FORUM)
    ordinary = [PERSON0 + i for i in range(people)]
    crowd = [FLOODER0 + i for i in range(flooders)]
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "--serve", "ausweg", "--token", api.token, "--base-url", api.base_url,
            "--data", str(Path(tmp) / "data"), "--rate-limit", "--core-limits", "--http", "aiohttp",
        ]  # fmt: skip
        proc = await _spawn(args, Path(tmp) / "bot.log")
        try:
            for person in ordinary:  # in the intake: consent given, a button expected
                asked = inbox.want(person, "")
                api.push_message(person, person, "/start")
                await asyncio.wait_for(asked, 60)
                update = api.push_message(person, person, "einverstanden")
                await api.wait_until_confirmed(update["update_id"], timeout=60)
            await asyncio.sleep(1.0)  # the intake's replies are out
            latencies: list[float] = []
            started = time.perf_counter()
            for n in range(burst):  # everything at once, interleaved like parallel senders
                for flooder in crowd:
                    api.push_message(flooder, flooder, f"spam {n}")

            async def person(chat: int) -> None:
                for i in range(rounds):
                    replied = inbox.want(chat, NOT_UNDERSTOOD)
                    sent = time.perf_counter()
                    api.push_message(chat, chat, f"hm {i}")
                    latencies.append(await asyncio.wait_for(replied, 600) - sent)

            await asyncio.gather(*(person(chat) for chat in ordinary))
            crisis = inbox.want(ordinary[0], CRISIS)
            sent = time.perf_counter()
            last = api.push_message(ordinary[0], ordinary[0], "ich will mich umbringen")
            crisis_s = await asyncio.wait_for(crisis, 600) - sent
            await api.wait_until_confirmed(last["update_id"], timeout=900)
            drained_s = time.perf_counter() - started
            flood_replies = sum(inbox.replies.get(f, 0) for f in crowd)
        except BaseException:
            log = (Path(tmp) / "bot.log").read_text(errors="replace").splitlines()
            print("\n".join(log[-30:]))
            print("last replies to the ordinary people:", inbox.last)
            raise
        finally:
            proc.terminate()
            await proc.wait()
            await api.stop()
    return {
        "flooders": flooders,
        "flood_messages": flooders * burst,
        "replies_to_flooders": flood_replies,
        "all_updates_confirmed_after_s": round(drained_s, 1),
        "ordinary": _summary(latencies),
        "crisis_reply_ms": round(crisis_s * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flooders", type=int, default=50)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    a = parser.parse_args(argv)
    for _ in range(a.repeat):
        result = asyncio.run(flood(a.flooders, a.burst, a.people, a.rounds))
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
