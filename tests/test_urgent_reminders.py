"""An unclaimed urgent case is never forgotten (newcomer walk-through, issue 11 follow-up):
after the first escalation staff are reminded again and again until someone claims it,
the person is told once and honestly that it takes longer (with the numbers), a team
without a coordinator is not promised one, and without any coordinator the next room of
the fallback chain hears of it too."""

from __future__ import annotations

import re
from pathlib import Path

from config.i18n import translator
from tests.phone import EXAMPLE, Phone, start

CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")
THREAT_FIRST = "ich will raus aus der rechten szene, die wissen wo ich wohne"


async def urgent(p: Phone, who: str = "man") -> str:
    await p.say(who, THREAT_FIRST)
    reply = await p.press(who, "crisis:contact:threat")
    found = CODE.search(reply)
    assert found, reply
    return found.group(0)


async def tick(p: Phone, **delta: int) -> None:
    p.app.clock.advance(**delta)  # type: ignore[attr-defined]
    await p.app.escalate_urgent()


def staff(p: Phone) -> list[str]:
    return [m.text for m in p.t.pop("staff")]


async def test_reminders_repeat_until_claimed_and_stop_then(phone: Phone) -> None:
    p = phone
    code = await urgent(p)
    staff(p)
    await tick(p, minutes=16)  # the first escalation
    assert any(code in m for m in staff(p))
    reminders = 0
    for _ in range(12):  # six hours
        await tick(p, minutes=30)
        reminders += sum(code in m for m in staff(p))
    assert reminders >= 3, "staff are reminded again and again"
    await p.staff("counsellor", f"/claim {code}")
    staff(p)
    for _ in range(12):
        await tick(p, hours=1)
    assert not [m for m in staff(p) if code in m], "claimed: no more reminders"


async def test_person_is_told_once_that_it_takes_longer(phone: Phone) -> None:
    p = phone
    await urgent(p)
    p.t.pop("man")
    await tick(p, minutes=14)
    assert p.t.pop("man") == [], "within the window: nothing yet"
    delayed = translator("de")("crisis.delayed")
    told = []
    for _ in range(30):
        await tick(p, hours=1)
        told += [m for m in p.t.pop("man") if m.text == delayed]
    assert len(told) == 1, told
    assert told[0].urgent
    assert "110" in delayed.splitlines()[1]


async def test_card_promises_no_coordinator_the_team_does_not_have(phone: Phone) -> None:
    p = phone
    await urgent(p)
    card = "\n".join(staff(p))
    assert "DRINGEND" in card, card
    assert "Koordination" not in card, card
    assert translator("de")("staff.urgent.window.team").split("{")[0] in card, card


async def test_without_any_coordinator_the_next_fallback_room_hears_of_it(
    tmp_path: Path,
) -> None:
    data = EXAMPLE.model_dump(mode="python")
    backup = next(x for x in data["programmes"] if x["id"] == "spurwechsel")
    backup["staff_rooms"] = {"console": "backup-room"}
    data["fallback"] = ["clearing", "spurwechsel"]
    app, transport = await start(tmp_path, type(EXAMPLE).model_validate(data))
    try:
        p = Phone(app, transport)
        code = await urgent(p)
        assert not [m for m in p.t.pop("backup-room") if code in m.text], "not before the window"
        await tick(p, minutes=16)
        heard = [m for m in p.t.pop("backup-room") if code in m.text]
        assert heard, "the fallback chain's next room hears of it"
        assert heard[0].urgent
        assert THREAT_FIRST not in heard[0].text, "the category only, never the text"
    finally:
        await app.stop()
