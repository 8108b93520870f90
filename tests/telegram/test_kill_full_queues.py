"""kill -9 while the send queues are full (issue 14: commit, then confirm, then send).

The bot (``python -m bot run``, SQLite, the fake Bot API) confirms updates once their
replies are committed and sends apart from intake. Here Telegram answers every send
with 429 while 50 people write, so every update is confirmed while all 100 replies wait
in the queues; then sending resumes and the process is SIGKILLed part-way through.
After the restart: nothing lost (the outbox), each chat's replies in order, and only a
reply whose send was in flight at the kill (or whose record was not yet committed) may
come twice - at most one per chat (Telegram has no idempotent send).
"""

from __future__ import annotations

from collections import defaultdict

from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.test_restart import (
    REPLIES_PER_START,
    BotProcess,
    bot,  # noqa: F401 - the fixture
    push_starts,
    to_any,
)

PEOPLE = 50  # within the burst of new contacts the abuse limits allow
#: Replies seen at the API after sending resumed, then SIGKILL (the rest still queued).
KILL_AFTER = 30


def replies_per_chat(api: FakeBotApi, users: list[int]) -> dict[int, list[str]]:
    wanted = set(users)
    got: dict[int, list[str]] = defaultdict(list)
    for c in api.sent:
        if c["method"] == "sendMessage" and c["ok"] and c["params"].get("chat_id") in wanted:
            got[int(c["params"]["chat_id"])].append(str(c["params"].get("text", "")))
    return got


async def test_kill_9_with_full_send_queues_loses_nothing_and_keeps_each_chats_order(
    api: FakeBotApi,
    bot: BotProcess,  # noqa: F811
) -> None:
    await bot.start(api)
    users = list(range(5_800_000_001, 5_800_000_001 + PEOPLE))
    api.fail_with_429(times=10**6, retry_after=1, method="sendMessage")
    ids = push_starts(api, users)
    # Every update is confirmed (committed) although not one reply could go out.
    await api.wait_until_confirmed(ids[-1], timeout=60)
    assert not replies_per_chat(api, users), "a reply got past the 429"
    assert bot.unsent() == PEOPLE, "every reply set waits in the outbox"

    api.clear_faults()
    await api.wait_for_all(to_any(users), KILL_AFTER, timeout=60)  # type: ignore[arg-type]
    await bot.kill()
    before = sum(len(v) for v in replies_per_chat(api, users).values())
    queued = REPLIES_PER_START * PEOPLE - before

    await bot.start(api)
    await api.wait_for_all(to_any(users), REPLIES_PER_START * PEOPLE, timeout=60)  # type: ignore[arg-type]
    await bot.settled(30)
    got = replies_per_chat(api, users)
    doubled = {u: len(got[u]) - REPLIES_PER_START for u in users if len(got[u]) > 2}
    print(
        f"\nkill -9 with full queues: {before} replies out before the kill, {queued} queued,"
        f" doubled {sum(doubled.values())} (chats {len(doubled)})"
    )
    assert queued >= PEOPLE // 2, "the kill came while the queues were full"
    assert all(len(got[u]) >= REPLIES_PER_START for u in users), "a reply was lost"
    first = got[users[0]]
    greeting, question = first[0], first[-1]
    assert greeting != question
    for u in users:
        # In order: the greeting (perhaps twice, if in flight at the kill), then the question.
        seen = [t for i, t in enumerate(got[u]) if i == 0 or t != got[u][i - 1]]
        assert seen == [greeting, question], (u, got[u])
    # At most the one reply per chat that was in doubt at the kill.
    assert max(doubled.values(), default=0) <= 1
