"""Telegram throughput and latency against the fake Bot API.

Two bots, each in its own process (as the real Bot API is another machine), driven
from this process, which runs the fake Bot API server:

* ``ptb``: a bare python-telegram-bot echo bot (``Updater.start_polling``, one handler).
* ``ausweg``: the whole pipeline - :class:`TelegramTransport` + the core on SQLite -
  relaying messages of people whose cases are claimed into the staff forum topic.

``--users`` people write at the same time; each sends its next message once the
previous one arrived (closed loop). Latency: push of the update at the fake until the
fake received the bot's reply. The outbound throttle is off unless ``--rate-limit``
(it caps at Telegram's ~30 messages/s, which would be all one measures).

A third measurement isolates python-telegram-bot's request layer (httpx vs the
aiohttp request class): ``sendMessage`` calls from a child process, CPU per call.

``--chats N``: every message comes from a chat not seen before (N of them, ``--users``
at a time): for Ausweg a new person's first message (intake), for the echo bot an echo.
Latency: push until the first message into that chat.

Usage: ``python -m benchmarks.telegram_echo [--users 20] [--messages 2000] [--repeat 3]
[--chats 5000] [--only ptb|ausweg|requests] [--http httpx|aiohttp|both] [--rate-limit]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
FORUM = -1_001_234_567_890
INTAKE = ("consent:yes", "safety:no", "audience:self", "scene:right", "state:MV",
          "district:skip", "prison:no", "language:de", "message:skip")  # fmt: skip


# ------------------------------------------------------------------------- bot processes


async def _serve_ptb(token: str, base_url: str, http: str) -> None:
    """A bare PTB echo bot, polling until SIGTERM."""
    import signal

    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None and update.effective_message.text:
            await update.effective_message.reply_text(f"echo: {update.effective_message.text}")

    from bot.transports.telegram.aiohttp_request import AiohttpRequest

    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{base_url}/bot")
        .base_file_url(f"{base_url}/file/bot")
        .job_queue(None)
    )
    if http == "aiohttp":
        builder = builder.request(AiohttpRequest(256)).get_updates_request(
            AiohttpRequest(1, read_timeout=15)
        )
    app = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await app.initialize()
    await app.start()
    if app.updater is None:
        raise RuntimeError("no updater")
    await app.updater.start_polling(timeout=5)
    await stop.wait()
    await app.updater.stop()
    await app.stop()
    await app.shutdown()


async def _serve_ausweg(
    token: str,
    base_url: str,
    data: str,
    rate_limit: bool,
    http: Literal["aiohttp", "httpx"],
    core_limits: bool = False,
) -> None:
    """Ausweg (TelegramTransport + core on SQLite), polling until SIGTERM."""
    import signal

    from bot.app import App
    from bot.logsetup import setup_logging
    from bot.transports.telegram import TelegramConfig, TelegramTransport
    from config.clock import FakeClock
    from config.directory import load_directory
    from config.settings import EXAMPLE_DIRECTORY
    from handlers.limits import Limits, LimitSettings
    from tests.conftest import OFFICE_TIME, make_settings
    from tests.telegram.conftest import telegram_directory

    setup_logging("WARNING")
    config = TelegramConfig(
        token=token, base_url=base_url, poll_timeout=5, rate_limit=rate_limit, http_backend=http
    )
    transport = TelegramTransport(config)
    # Throughput, not abuse handling: the core's per-person limits are lifted.
    unlimited = LimitSettings(
        person_burst=1e12, new_contacts_burst=1e12, cases_per_programme_per_hour=10**9
    )
    app = App(
        make_settings(Path(data)),
        [transport],
        clock=FakeClock(OFFICE_TIME),
        directory=telegram_directory(load_directory(EXAMPLE_DIRECTORY)),
        limits=None if core_limits else Limits(unlimited),
        wait_for_sends=False,  # as `ausweg run`: commit, then confirm, then send
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await app.start()
    await stop.wait()
    await app.stop()


async def _serve_requests(token: str, base_url: str, http: str, calls: int) -> None:
    """Request layer alone: ``calls`` sendMessage one by one, then 8 at a time; prints JSON."""
    from telegram.ext import ApplicationBuilder
    from telegram.request import BaseRequest, HTTPXRequest

    from bot.transports.telegram.aiohttp_request import AiohttpRequest

    request: BaseRequest = AiohttpRequest(32) if http == "aiohttp" else HTTPXRequest(32)
    app = (
        ApplicationBuilder().token(token).base_url(f"{base_url}/bot").request(request)
        .job_queue(None).updater(None).build()
    )  # fmt: skip
    await app.initialize()
    chat = FORUM
    for _ in range(50):
        await app.bot.send_message(chat, "warm")
    out: dict[str, float] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(calls):
        await app.bot.send_message(chat, f"s{i}")
    out["seq_cpu_ms"] = (time.process_time() - cpu) / calls * 1000
    out["seq_per_s"] = calls / (time.perf_counter() - wall)
    slots = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with slots:
            await app.bot.send_message(chat, f"c{i}")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    out["conc_cpu_ms"] = (time.process_time() - cpu) / calls * 1000
    out["conc_per_s"] = calls / (time.perf_counter() - wall)
    await app.shutdown()
    print(json.dumps(out))


# ------------------------------------------------------------------------- the driver


class _Waiter:
    """Resolves a future when the fake receives a sendMessage ending with a token."""

    def __init__(self) -> None:
        self.pending: dict[str, asyncio.Future[float]] = {}
        self.chats: dict[int, asyncio.Future[float]] = {}

    def expect(self, token: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.pending[token] = future
        return future

    def expect_chat(self, chat: int) -> asyncio.Future[float]:
        """The first sendMessage into ``chat`` (a new person's first answer)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.chats[chat] = future
        return future

    def seen(self, method: str, params: dict[str, Any]) -> None:
        if method != "sendMessage":
            return
        if self.chats:
            chat = params.get("chat_id")
            waiting = self.chats.pop(chat, None) if isinstance(chat, int) else None
            if waiting is not None and not waiting.done():
                waiting.set_result(time.perf_counter())
                return
        text = str(params.get("text", ""))
        future = self.pending.pop(text.rsplit(maxsplit=1)[-1] if text.strip() else "", None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fake(waiter: _Waiter) -> Any:
    from tests.fakes.telegram_api import FakeBotApi

    class TimedApi(FakeBotApi):
        """Reports replies to the waiter; keeps records only while ``recording``."""

        recording = True

        async def _record(self, name: str, values: Any, result: Any, error: Any) -> None:
            waiter.seen(name, values)
            if self.recording and name != "getUpdates":
                await super()._record(name, values, result, error)

    return TimedApi()


async def _spawn(args: list[str], log: Path) -> asyncio.subprocess.Process:
    profile = os.environ.get("AUSWEG_BENCH_PROFILE")  # a cProfile output file for the bot
    runner = ["-m", "cProfile", "-o", profile] if profile else []
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, *runner, "-m", "benchmarks.telegram_echo", *args,
            cwd=ROOT, stdout=out, stderr=out, env={**os.environ, "PTB_TIMEDELTA": "true"},
        )  # fmt: skip


async def _closed_loop(
    users: list[int], per_user: int, send: Callable[[int, str], Awaitable[float]]
) -> dict[str, float]:
    latencies: list[float] = []

    async def person(user: int) -> None:
        for j in range(per_user):
            latencies.append(await send(user, f"t{user}x{j}"))

    start = time.perf_counter()
    await asyncio.gather(*(person(u) for u in users))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "seconds": elapsed,
        "messages": len(latencies),
        "msgs_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
    }


async def _distinct_chats(
    workers: int, chats: list[int], send: Callable[[int, str], Awaitable[float]]
) -> dict[str, float]:
    """``workers`` at once, each message from a chat not seen before (a new person)."""
    latencies: list[float] = []
    todo = iter(chats)

    async def worker() -> None:
        for chat in todo:
            latencies.append(await send(chat, f"hallo{chat}"))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "seconds": elapsed,
        "messages": len(latencies),
        "msgs_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
    }


async def run(
    kind: str, users: int, messages: int, rate_limit: bool, http: str, chats: int = 0
) -> dict[str, float]:
    """Start the fake and one bot process, drive it, return the numbers."""
    waiter = _Waiter()
    api = _fake(waiter)
    await api.start()
    api.register_forum(FORUM)
    people = [5_590_000_000 + i for i in range(users)]
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "--serve",
            kind,
            "--token",
            api.token,
            "--base-url",
            api.base_url,
            "--data",
            str(Path(tmp) / "data"),
            "--http",
            http,
            *(["--rate-limit"] if rate_limit else []),
        ]
        proc = await _spawn(args, Path(tmp) / "bot.log")
        try:

            async def send(user: int, token: str) -> float:
                done = waiter.expect(token)
                pushed = time.perf_counter()
                api.push_message(user, user, token)
                return (await asyncio.wait_for(done, 60)) - pushed

            async def send_new(chat: int, text: str) -> float:
                done = waiter.expect_chat(chat)
                pushed = time.perf_counter()
                api.push_message(chat, chat, text)
                return (await asyncio.wait_for(done, 60)) - pushed

            first = api.push_message(people[0], people[0], "/start")
            await api.wait_until_confirmed(first["update_id"], timeout=60)  # the bot is up
            if kind == "ausweg" and not chats:
                await _claim_cases(api, people)
            api.recording = False
            per_user = max(1, messages // users)
            if chats:  # every message from a new chat: 10 % warm-up, then the rest
                pool = [6_100_000_000 + i for i in range(chats + chats // 10)]
                await _distinct_chats(users, pool[chats:], send_new)
                bot_cpu, own_cpu = _cpu_seconds(proc.pid), time.process_time()
                result = await _distinct_chats(users, pool[:chats], send_new)
            else:
                await _closed_loop(people, max(1, per_user // 10), send)  # warm up
                bot_cpu, own_cpu = _cpu_seconds(proc.pid), time.process_time()
                result = await _closed_loop(people, per_user, send)
            bot_cpu = _cpu_seconds(proc.pid) - bot_cpu
            result["bot_cpu_pct"] = bot_cpu / result["seconds"] * 100
            result["bot_cpu_ms_per_msg"] = bot_cpu / result["messages"] * 1000
            result["fake_cpu_pct"] = (time.process_time() - own_cpu) / result["seconds"] * 100
            return result
        except BaseException:
            log = (Path(tmp) / "bot.log").read_text(errors="replace").splitlines()
            print("\n".join(log[-30:]), file=sys.stderr)
            raise
        finally:
            proc.terminate()
            await proc.wait()
            await api.stop()


async def _claim_cases(api: Any, people: list[int]) -> None:
    """Intake by buttons for everyone, then the counsellor claims every case."""
    counsellor = 7_100_000_001  # the example directory's counsellor (see telegram_directory)
    before = len(api.sent)
    for user in people[1:]:
        await _settled(api, api.push_message(user, user, "/start"))
    for user in people:
        for data in INTAKE:
            message_id = await _button(api, user, data)
            await _settled(api, api.push_callback(user, user, data, message_id))

    def announcement(c: dict[str, Any]) -> bool:
        return bool(
            c["method"] == "sendMessage" and c["ok"]
            and c["params"].get("chat_id") == FORUM and "claim:" in json.dumps(c["params"])
        )  # fmt: skip

    # Updates are confirmed once committed; the replies go out after: wait for them.
    announcements = await api.wait_for_all(announcement, len(people), timeout=60, since=before)
    for call in announcements:
        code = json.dumps(call["params"]).split("claim:")[1][:6]
        thread = call["params"].get("message_thread_id")
        update = api.push_message(
            FORUM, counsellor, f"/claim {code}", chat_type="supergroup",
            message_thread_id=thread, is_topic_message=thread is not None,
        )  # fmt: skip
        await _settled(api, update)
    if len(announcements) != len(people):
        raise RuntimeError(f"{len(announcements)} cases for {len(people)} people")


async def run_requests(http: str, calls: int) -> dict[str, float]:
    """The request-layer measurement in a child process against a quiet fake."""
    from tests.fakes.telegram_api import FakeBotApi

    class QuietApi(FakeBotApi):
        async def _record(self, name: str, values: Any, result: Any, error: Any) -> None:
            return

    api = QuietApi()
    await api.start()
    api.register_forum(FORUM)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.telegram_echo", "--serve", "requests",
            "--token", api.token, "--base-url", api.base_url, "--http", http,
            "--messages", str(calls), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PTB_TIMEDELTA": "true"},
        )  # fmt: skip
        out, _ = await proc.communicate()
        result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
        return result
    finally:
        await api.stop()


async def _button(api: Any, chat: int, data: str) -> int:
    """The message carrying button ``data`` in ``chat`` (once the bot sent it: updates
    are confirmed once committed, their replies go out after)."""
    await api.wait_for_sent(
        lambda c: (
            c["ok"] and c["params"].get("chat_id") == chat and data in json.dumps(c["params"])
        ),
        timeout=60,
    )
    for message in reversed(api.messages_in(chat)):
        rows = message.get("reply_markup", {}).get("inline_keyboard", [])
        if any(b.get("callback_data") == data for row in rows for b in row):
            return int(message["message_id"])
    raise RuntimeError(f"no button {data}")


async def _settled(api: Any, update: dict[str, Any]) -> None:
    """Wait until the bot confirmed an update (setup only)."""
    await api.wait_until_confirmed(update["update_id"], timeout=60)


def main() -> None:
    """Run the benchmarks and print the numbers (or serve a bot: ``--serve``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--only", choices=["ptb", "ausweg", "requests"])
    parser.add_argument(
        "--chats", type=int, default=0, help="every message from a new chat (this many)"
    )
    parser.add_argument("--rate-limit", action="store_true")
    parser.add_argument("--http", choices=["aiohttp", "httpx", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3, help="report the median run")
    parser.add_argument("--serve", choices=["ptb", "ausweg", "requests"], help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--core-limits", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.serve == "ptb":
        asyncio.run(_serve_ptb(a.token, a.base_url, a.http))
        return
    if a.serve == "ausweg":
        asyncio.run(_serve_ausweg(a.token, a.base_url, a.data, a.rate_limit, a.http, a.core_limits))
        return
    if a.serve == "requests":
        asyncio.run(_serve_requests(a.token, a.base_url, a.http, a.messages))
        return
    backends = ["httpx", "aiohttp"] if a.http == "both" else [a.http]
    if a.only in (None, "requests"):
        measured: dict[str, list[dict[str, float]]] = {}
        for _ in range(a.repeat):
            for http in backends:
                measured.setdefault(http, []).append(asyncio.run(run_requests(http, a.messages)))
        for http, results in measured.items():
            r = sorted(results, key=lambda x: x["seq_cpu_ms"])[len(results) // 2]
            print(
                f"request/{http:<7}: sendMessage one at a time {r['seq_per_s']:6.0f}/s"
                f" {r['seq_cpu_ms']:.2f} ms CPU each; 8 at a time {r['conc_per_s']:6.0f}/s"
                f" {r['conc_cpu_ms']:.2f} ms CPU each"
            )
        if a.only == "requests":
            return
    kinds = [a.only] if a.only else ["ptb", "ausweg"]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(a.repeat):  # interleaved, so every variant sees the same machine load
        for kind in kinds:
            for http in backends:
                result = asyncio.run(run(kind, a.users, a.messages, a.rate_limit, http, a.chats))
                runs.setdefault((kind, http), []).append(result)
    for (kind, http), results in runs.items():
        result = sorted(results, key=lambda r: r["msgs_per_s"])[len(results) // 2]  # median
        print(
            f"{kind:>7}/{http:<7}: {result['msgs_per_s']:7.1f} msg/s  p50 {result['p50_ms']:6.1f}"
            f" ms  p95 {result['p95_ms']:6.1f} ms  ({int(result['messages'])} messages,"
            f" {a.users} {'at once, new chats' if a.chats else 'users'};"
            f" CPU bot {result['bot_cpu_pct']:.0f} % = {result['bot_cpu_ms_per_msg']:.2f} ms/msg,"
            f" fake {result['fake_cpu_pct']:.0f} %)"
        )


if __name__ == "__main__":
    main()
