"""Privacy check 13 on Telegram: kill -9 during load, restart, nothing lost, nothing twice.

The bot runs as a real process (``python -m bot run``, settings from ``AUSWEG_*``
variables) against the fake Bot API and is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest

from config.directory import Directory
from tests.conftest import process_env, production_directory
from tests.fakes.telegram_api import ApiCall, FakeBotApi
from tests.telegram.conftest import telegram_directory

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def bot_env(api: FakeBotApi, tmp_path: Path, directory: Directory) -> dict[str, str]:
    """``AUSWEG_*`` settings for a bot process talking to ``api``."""
    # A verified copy: `run` refuses the example and anything still marked unverified.
    directory_file = production_directory(telegram_directory(directory), tmp_path / "d.yaml")
    return process_env(
        tmp_path,
        AUSWEG_DIRECTORY_PATH=str(directory_file),
        AUSWEG_TELEGRAM__ENABLED="true",
        AUSWEG_TELEGRAM__TOKEN=api.token,
        AUSWEG_TELEGRAM__BASE_URL=api.base_url,
        AUSWEG_TELEGRAM__POLL_TIMEOUT="5",
        PTB_TIMEDELTA="true",
    )


class BotProcess:
    """The bot in a child process; its log goes to a file."""

    def __init__(self, env: dict[str, str], log: IO[bytes], log_path: Path) -> None:
        self.env = env
        self.log = log
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, api: FakeBotApi) -> None:
        since = len(api.sent)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run",
            cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log,
        )  # fmt: skip
        # Polling starts right after deleteWebhook.
        await api.wait_for_sent("deleteWebhook", START_TIMEOUT, since=since)

    def unsent(self) -> int:
        """Reply sets the bot has committed but not yet recorded as sent (its outbox)."""
        db = Path(self.env["AUSWEG_DATA_DIR"]) / "ausweg.db"
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    async def settled(self, within: float = 10.0) -> None:
        """Wait until the bot recorded every handed-over reply as sent.

        The outbox lives in another process's database: there is no event to
        await, so this polls (bounded).
        """
        async with asyncio.timeout(within):
            while self.unsent():  # noqa: ASYNC110 - another process's database: no event
                await asyncio.sleep(0.01)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()  # SIGKILL: no clean-up, no confirmation
            await self.proc.wait()


@pytest.fixture
async def bot(api: FakeBotApi, tmp_path: Path, directory: Directory) -> AsyncIterator[BotProcess]:
    path = tmp_path / "bot.log"
    with path.open("ab") as log:
        process = BotProcess(bot_env(api, tmp_path, directory), log, path)
        try:
            yield process
        finally:
            await process.kill()


def replies(api: FakeBotApi, users: list[int]) -> Counter[int]:
    """Successful sendMessage calls per private chat."""
    wanted = set(users)
    return Counter(
        int(c["params"]["chat_id"])
        for c in api.sent
        if c["method"] == "sendMessage" and c["ok"] and c["params"].get("chat_id") in wanted
    )


def to_any(users: list[int]) -> object:
    wanted = set(users)

    def predicate(call: ApiCall) -> bool:
        return (
            call["method"] == "sendMessage"
            and call["ok"]
            and call["params"].get("chat_id") in wanted
        )

    return predicate


def push_starts(api: FakeBotApi, users: list[int]) -> list[int]:
    return [api.push_message(u, u, "/start")["update_id"] for u in users]


#: /start is answered with a greeting and the consent question.
REPLIES_PER_START = 2


async def test_kill_9_after_replies_before_ack_then_restart(
    api: FakeBotApi, bot: BotProcess
) -> None:
    await bot.start(api)
    first = list(range(5_600_000_001, 5_600_000_011))
    ids = push_starts(api, first)
    await api.wait_for_all(to_any(first), REPLIES_PER_START * len(first), timeout=30)  # type: ignore[arg-type]
    await api.wait_until_confirmed(ids[-1], timeout=30)

    # The next batch is handled (committed, replied) but can never be confirmed.
    second = list(range(5_600_000_101, 5_600_000_111))
    ids = push_starts(api, second)
    api.fail_next("getUpdates", 502, "Bad Gateway", times=10**6)
    await api.wait_for_all(to_any(second), REPLIES_PER_START * len(second), timeout=30)  # type: ignore[arg-type]
    assert {u["update_id"] for u in api.pending_updates} >= set(ids)
    await bot.settled()  # handled, replied and recorded - only the confirmation is missing
    await bot.kill()

    api.clear_faults()
    since = len(api.requests)
    await bot.start(api)
    await api.wait_until_confirmed(ids[-1], timeout=30)
    redelivered = {
        i for c in api.requests[since:] if c["method"] == "getUpdates" for i in c["result"] or []
    }
    assert set(ids) <= redelivered, "the unconfirmed batch came again after the restart"
    counts = replies(api, first + second)
    assert counts == dict.fromkeys(first + second, REPLIES_PER_START), "no loss, no duplicates"

    # A kill at an arbitrary moment under load: nothing lost. Replies are delivered at
    # least once: only a reply set whose sending was in flight at the kill (at most the
    # transport's concurrency) can arrive twice - Telegram offers no idempotent send.
    third = list(range(5_600_000_201, 5_600_000_231))
    ids = push_starts(api, third)
    await api.wait_for_all(to_any(third), len(third), timeout=30)  # type: ignore[arg-type]
    await bot.kill()
    await bot.start(api)
    await api.wait_until_confirmed(ids[-1], timeout=30)
    counts = replies(api, third)
    assert all(counts[u] >= REPLIES_PER_START for u in third), "a reply was lost"
    twice = [u for u in third if counts[u] > REPLIES_PER_START]
    assert len(twice) <= 8, f"more duplicates than replies in flight: {len(twice)}"
    assert not api.pending_updates
    log = bot.log_path.read_text(encoding="utf-8")
    assert "telegram transport started" in log
    assert not [u for u in first + second + third if str(u) in log], "user ids in the log"
    assert api.token not in log


async def test_kill_9_between_commit_and_send_loses_no_reply(
    api: FakeBotApi, bot: BotProcess
) -> None:
    await bot.start(api)
    user = 5_600_000_301
    api.fail_next("sendMessage", 502, "Bad Gateway", times=10**6)
    [update_id] = push_starts(api, [user])
    # A failed send means the core has committed (it sends only after the commit).
    await api.wait_for_sent(
        lambda c: c["method"] == "sendMessage" and not c["ok"] and c["params"]["chat_id"] == user,
        timeout=30,
    )
    await bot.kill()
    api.clear_faults()
    await bot.start(api)
    await api.wait_until_confirmed(update_id, timeout=30)
    assert replies(api, [user])[user] == REPLIES_PER_START
