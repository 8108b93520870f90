"""Telegram: the bot leaves a group it is not configured for (issue 10, observation 1).

Through python-telegram-bot and the fake Bot API: one neutral notice, ``leaveChat``,
no answer to staff commands there, nothing relayed and nothing stored.
"""

from __future__ import annotations

from sqlalchemy import func, select

from config.i18n import translator
from storage.models import ProcessedUpdate
from tests.telegram.conftest import COUNSELLOR, FORUM, Tg, texts
from tests.telegram.test_journey import PERSON, open_case

FAMILY_GROUP = -4_000_000_123


async def _updates(tg: Tg) -> int:
    assert tg.app.db is not None
    async with tg.app.db.transaction() as s:
        found = await s.execute(select(func.count()).select_from(ProcessedUpdate))
        return int(found.scalar_one())


async def test_bot_leaves_an_unconfigured_group_after_one_notice(tg: Tg) -> None:
    code, topic = await open_case(tg, PERSON, "Hallo")
    await tg.staff(COUNSELLOR, "/claim", thread=topic)
    before = await _updates(tg)
    since = len(tg.api.sent)

    for text in ("Treffen bei mir, Lindenstr. 5", "/queue"):
        update = tg.api.push_message(FAMILY_GROUP, COUNSELLOR, text, chat_type="group")
        await tg.handled(update)

    calls = tg.api.sent[since:]
    said = texts(calls, FAMILY_GROUP)
    assert said == [translator("de")("group.leaving")]  # once; /queue not answered
    assert code not in said[0]
    assert [c["method"] for c in calls if c["method"] == "leaveChat"] == ["leaveChat"]
    assert tg.api.has_left(FAMILY_GROUP)
    assert texts(calls, PERSON) == []  # nothing relayed to the person
    assert await _updates(tg) == before  # nothing stored for that group
    # The configured staff forum is not left.
    assert not tg.api.has_left(FORUM)
