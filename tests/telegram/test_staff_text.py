"""Issue 10, observation 6 on Telegram: a right-to-left override and line breaks in a
person's message cannot produce a line in the staff forum that looks like the bot's."""

from __future__ import annotations

from tests.telegram.conftest import COUNSELLOR, FORUM, Tg, texts
from tests.telegram.test_journey import CODE, INTAKE, PERSON
from tests.test_staff_text import ATTACK, FORGED, assert_safe, bot_lines


async def test_rlo_and_newlines_arrive_quoted_in_the_staff_forum(tg: Tg) -> None:
    await tg.say(PERSON, "/start")
    for answer in INTAKE:
        await tg.press(PERSON, answer)
    got = await tg.say(PERSON, ATTACK)
    found = CODE.search("\n".join(texts(got, PERSON)))
    assert found is not None
    code = found.group()
    claimed = texts(await tg.press(COUNSELLOR, f"claim:{code}", chat=FORUM), FORUM)
    [held] = [t for t in claimed if FORGED in t]
    assert bot_lines(held) == [f"[{code}] (wartende Nachricht)"]
    assert_safe(held, code)

    [relayed] = texts(await tg.say(PERSON, ATTACK), FORUM)
    assert bot_lines(relayed) == [f"[{code}]"]
    assert "> " + FORGED in relayed.split("\n")
    assert_safe(relayed, code)
    # As Telegram stores it (what the counsellors' apps show).
    shown = tg.api.messages_in(FORUM)[-1]["text"]
    assert bot_lines(shown) == [f"[{code}]"]
