"""Issue 15 part 3: two instances on one PostgreSQL database, as real processes.

Both run ``python -m bot run`` against the fake Bot API with the same keys, the same
database (a private schema) and the same key store. The leader polls and fires
follow-ups; the other stands by. Under a steady load of new people:

- SIGKILL of the leader: the other takes over (measured: from the kill to the first
  reply to a message written after it), no message is lost, follow-ups are neither
  lost nor doubled. Replies: each reply is recorded as sent right after its send, and a
  destination's next send waits for that record, so only a reply whose request was in
  flight at the kill (or whose record was not yet committed) is sent again - at most one
  per chat. Telegram has no idempotent send (no transaction id, no way to read a chat),
  so that one reply cannot be told apart from one that never arrived: it is sent again
  rather than lost (privacy check 13). The test kills right after replies were seen at
  the API, which is exactly that window, so zero is not reliable; the figure is
  printed and bounded per chat and in total. (Matrix: the reply's transaction id is
  its outbox id and position, so the homeserver drops the repeat.)
- SIGTERM of the leader: it exits within 2 s, the other takes over, nothing is lost
  and nothing doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import aiohttp
import asyncpg
import pytest

from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from tests.conftest import PG_URL
from tests.fakes.telegram_api import ApiCall, FakeBotApi
from tests.telegram.conftest import COUNSELLOR, FORUM, start_tg
from tests.telegram.test_journey import open_case, staff_profile
from tests.telegram.test_restart import REPLIES_PER_START, bot_env

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.parametrize("backend", ["postgresql"], indirect=True),
]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
CHECKIN = "wie geht es dir"
#: People with a claimed case and a follow-up (set up before the instances start).
FOLLOWED = [5_700_000_001 + i for i in range(4)]
#: Seconds between two messages of the load: 10 messages (20 replies) a second stays
#: under the production send limit of 30 a second, so the backlog does not grow.
LOAD_GAP = 0.1
#: People in the load; each writes every POOL * LOAD_GAP s (the per-person limit is 0.5/s).
POOL = 40
TAKEOVER_LIMIT = 10.0
#: Replies in doubt at a SIGKILL: sent, but their record not yet committed (one per chat
#: at most; at 20 replies a second and a record committed within a fraction of a second,
#: a few chats).
IN_FLIGHT = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Instance:
    """One bot process; its log goes to a file, its health server to its own port."""

    def __init__(self, name: str, env: dict[str, str], log: IO[bytes], log_path: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**env, "AUSWEG_HEALTH__PORT": str(self.port)}
        self.log = log
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run",
            cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log,
        )  # fmt: skip

    async def readyz(self) -> tuple[int, str]:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{self.port}/readyz") as response,
            ):
                return response.status, await response.text()
        except aiohttp.ClientError:
            return 0, ""

    async def ready(self, within: float = START_TIMEOUT) -> str:
        """Wait until /readyz answers 200 (another process: no event to await, so this
        asks it, bounded)."""
        async with asyncio.timeout(within):
            while True:
                assert self.proc is not None
                assert self.proc.returncode is None, self.log_path.read_text()[-2000:]
                status, line = await self.readyz()
                if status == 200:
                    return line
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def terminate(self) -> float:
        """SIGTERM; returns the seconds until the process exited."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        await self.proc.wait()
        return time.monotonic() - began


@pytest.fixture
async def pair(
    api: FakeBotApi, settings: Settings, tmp_path: Path, directory: Directory
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two instances sharing the keys, the database schema and the key store."""
    keys = tmp_path / "shared-keys.json"
    ring = {
        name: {str(v): k.get_secret_value() for v, k in getattr(settings.crypto, name).items()}
        for name in ("master_keys", "pseudonym_keys")
    }
    keys.write_text(json.dumps(ring))
    keys.chmod(0o600)
    instances = []
    with contextlib.ExitStack() as files:
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            env = bot_env(api, folder, directory)
            env.update(
                PYTHONPATH=str(ROOT),
                AUSWEG_CRYPTO__KEY_FILE=str(keys),
                AUSWEG_DATABASE__URL=PG_URL,
                AUSWEG_DATABASE__CONNECT_ARGS=json.dumps(settings.database.connect_args),
                AUSWEG_CRYPTO__KEYSTORE_URL=settings.keystore_url,
                AUSWEG_LOG_LEVEL="INFO",
            )
            path = folder / "bot.log"
            log = files.enter_context(path.open("ab"))
            instances.append(Instance(name, env, log, path))
        try:
            yield instances[0], instances[1]
        finally:
            for instance in instances:
                await instance.kill()


async def prepare_followups(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    """Cases with follow-ups for FOLLOWED (in process, before the instances start)."""
    tg = await start_tg(api, settings, clock, directory)
    try:
        for person in FOLLOWED:
            code, topic = await open_case(tg, person, "Hallo")
            await tg.press(COUNSELLOR, f"claim:{code}", chat=FORUM, **staff_profile())
            await tg.staff(COUNSELLOR, "/followup 1d", thread=topic, **staff_profile())
    finally:
        await tg.app.stop()


async def set_due(settings: Settings, seconds: dict[str, float] | None = None) -> list[str]:
    """Make follow-up ``id`` due ``seconds[id]`` from now (the test moves time, not the
    bot); returns the ids of the stored follow-ups (before the change)."""
    schema = settings.database.connect_args["server_settings"]["search_path"]
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        await conn.execute(f"SET search_path TO {schema}")
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM followups ORDER BY id")]
        for fid, delay in (seconds or {}).items():
            await conn.execute(
                "UPDATE followups SET due_at = now() + make_interval(secs => $2) WHERE id = $1",
                fid,
                delay,
            )
        return ids
    finally:
        await conn.close()


class Load:
    """A pool of people writing /start in turn until stopped (each /start: 2 replies).

    A pool, not ever new people: the abuse limits answer more than 60 new contacts in a
    burst (then one a second) with a short "busy" reply, by design.
    """

    def __init__(self, api: FakeBotApi, first: int, people: int = POOL) -> None:
        self.api = api
        self.pool = list(range(first, first + people))
        self.next = first + people
        self.sent: Counter[int] = Counter()
        self.update_ids: list[int] = []
        self._turn = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def users(self) -> list[int]:
        return list(self.sent)

    def push(self, user: int) -> int:
        self.sent[user] += 1
        self.update_ids.append(self.api.push_message(user, user, "/start")["update_id"])
        return user

    def fresh(self) -> int:
        """Someone new (the probe after a kill: no old reply can be mistaken for theirs)."""
        user, self.next = self.next, self.next + 1
        return self.push(user)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.push(self.pool[self._turn % len(self.pool)])
            self._turn += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOAD_GAP):
                    await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def expected(self) -> int:
        return REPLIES_PER_START * sum(self.sent.values())

    def tally(self, api: FakeBotApi) -> tuple[int, int]:
        """(messages lost, replies sent twice) over the whole load."""
        got = counts(api, self.users)
        lost = sum(max(0, REPLIES_PER_START * n - got[u]) for u, n in self.sent.items())
        return lost // REPLIES_PER_START, sum(self.twice(api).values())

    def twice(self, api: FakeBotApi) -> Counter[int]:
        """Replies each person got more than once."""
        got = counts(api, self.users)
        return Counter(
            {
                u: got[u] - REPLIES_PER_START * n
                for u, n in self.sent.items()
                if got[u] > REPLIES_PER_START * n
            }
        )


def replies_to(users: set[int]) -> object:
    def predicate(call: ApiCall) -> bool:
        return (
            call["method"] == "sendMessage"
            and call["ok"]
            and call["params"].get("chat_id") in users
        )

    return predicate


def counts(api: FakeBotApi, users: list[int], text: str | None = None) -> Counter[int]:
    wanted = set(users)
    return Counter(
        int(c["params"]["chat_id"])
        for c in api.sent
        if c["method"] == "sendMessage"
        and c["ok"]
        and c["params"].get("chat_id") in wanted
        and (text is None or text in str(c["params"].get("text", "")))
    )


async def wait_replies(api: FakeBotApi, users: list[int], count: int, within: float) -> None:
    await api.wait_for_all(replies_to(set(users)), count, timeout=within)  # type: ignore[arg-type]


async def wait_each(api: FakeBotApi, load: Load, within: float) -> None:
    """Until every person got every reply. Not a total: a reply sent twice must not hide
    one still queued (updates are confirmed once committed, replies go out after)."""
    async with asyncio.timeout(within):
        for user, n in load.sent.items():
            await api.wait_for_all(replies_to({user}), REPLIES_PER_START * n, timeout=within)  # type: ignore[arg-type]


async def test_sigkill_of_the_leader_under_load_the_other_takes_over(
    api: FakeBotApi,
    settings: Settings,
    clock: FakeClock,
    directory: Directory,
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    await prepare_followups(api, settings, clock, directory)
    # Two follow-ups fall due while a leads (whenever its start ends: under load the
    # instances may take longer than these seconds to start; counted from here), two
    # only after the kill (b must fire them: see below). A leader schedules what is due
    # within its window when it starts, so the last two stay an hour out until the kill.
    since = len(api.sent)
    ids = await set_due(settings)
    assert len(ids) == len(FOLLOWED)
    await set_due(settings, dict(zip(ids, [20.0, 22.0, 3600.0, 3600.0], strict=True)))
    await a.start()
    assert (await a.ready()).startswith("ready: telegram")
    await b.start()
    line = await b.ready()
    assert "standby" in line, line
    assert "telegram held by the leader" in line

    load = Load(api, 5_700_100_001)
    load.start()
    # Kill once two follow-ups went out completely (person and staff topic) and a later
    # unit of work was answered (it removes sent outbox entries): a kill between sends.
    await api.wait_for_all(
        lambda c: c["ok"] and "Erinnerung wurde an die Person geschickt" in str(
            c["params"].get("text", "")
        ),
        2, timeout=START_TIMEOUT, since=since,
    )  # fmt: skip
    later = [load.fresh() for _ in range(3)]
    await wait_replies(api, later, REPLIES_PER_START * len(later), 30)
    # The last two fall due now; a has them an hour out, so only b can fire them (at
    # its take-over it loads the window from the database).
    await set_due(settings, {ids[2]: 2.0, ids[3]: 3.0})
    await a.kill()
    killed_at = time.monotonic()
    at_kill = len(api.sent)
    probe = load.fresh()
    await api.wait_for_sent(replies_to({probe}), timeout=TAKEOVER_LIMIT + 20)  # type: ignore[arg-type]
    takeover = time.monotonic() - killed_at

    # The other two follow-ups fall due under b; then the load ends.
    await api.wait_for_all(
        lambda c: c["ok"] and CHECKIN in str(c["params"].get("text", "")),
        len(FOLLOWED), timeout=90, since=since,
    )  # fmt: skip
    await load.stop()
    await api.wait_until_confirmed(load.update_ids[-1], timeout=30)
    await wait_each(api, load, 60)
    status, line = await b.readyz()
    assert (status, line) == (200, "ready: telegram\n")

    lost, doubled = load.tally(api)
    checkins = counts(api, FOLLOWED, CHECKIN)
    by_b = Counter(
        int(c["params"]["chat_id"])
        for c in api.sent[at_kill:]
        if c["method"] == "sendMessage" and c["ok"] and CHECKIN in str(c["params"].get("text"))
    )
    followups_doubled = sum(1 for u in FOLLOWED if checkins[u] > 1)
    followups_lost = sum(1 for u in FOLLOWED if checkins[u] < 1)
    got = counts(api, load.users)
    twice = {u for u, n in load.sent.items() if got[u] > REPLIES_PER_START * n}
    print(f"\nanswered twice: {len(twice & set(later))} of the last answered before the kill")
    print(
        f"failover (SIGKILL): takeover {takeover:.2f} s, messages {len(load.update_ids)},"
        f" messages lost {lost}, replies doubled {doubled},"
        f" follow-ups doubled {followups_doubled}, follow-ups lost {followups_lost}"
    )
    assert takeover < TAKEOVER_LIMIT
    assert lost == 0
    assert followups_doubled == 0
    assert followups_lost == 0
    # The two due after the kill came from b (a sent the other two before it).
    assert len(by_b) == 2, by_b
    assert set(by_b) <= set(FOLLOWED)
    assert all(checkins[u] == 1 for u in by_b)
    # Only the reply in doubt per chat (in flight at the kill) may come twice: never two
    # of one chat, never more than the sends in flight.
    assert max(load.twice(api).values(), default=0) <= 1, "more than the reply in doubt"
    assert doubled <= IN_FLIGHT, "more doubles than sends in flight at the kill"
    assert not api.pending_updates
    log_b = b.log_path.read_text(encoding="utf-8")
    assert "standing by" in log_b
    assert "taking over as leader" in log_b
    assert not [u for u in load.users if str(u) in log_b], "user ids in the log"


async def test_sigterm_stops_within_2_s_and_the_other_takes_over_with_no_lost_work(
    api: FakeBotApi,
    settings: Settings,
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    await a.start()
    await a.ready()
    await b.start()
    assert "standby" in await b.ready()
    load = Load(api, 5_700_200_001)
    load.start()
    await wait_replies(api, load.pool[:20], REPLIES_PER_START * 20, 60)
    stopped_in = await a.terminate()  # mid-load: updates in hand are finished first
    assert a.proc is not None
    assert a.proc.returncode == 0
    probe = load.fresh()
    await api.wait_for_sent(replies_to({probe}), timeout=TAKEOVER_LIMIT + 20)  # type: ignore[arg-type]
    await load.stop()
    await api.wait_until_confirmed(load.update_ids[-1], timeout=30)
    await wait_each(api, load, 60)
    lost, doubled = load.tally(api)
    print(
        f"\nSIGTERM: stopped in {stopped_in:.2f} s, messages {len(load.update_ids)},"
        f" lost {lost}, doubled {doubled}"
    )
    assert stopped_in < 2.0
    assert lost == 0
    assert doubled == 0
    log_a = a.log_path.read_text(encoding="utf-8")
    assert "stopped" in log_a
