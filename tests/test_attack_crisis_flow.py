"""Red-team review of issue 11 part 3: the crisis protocol at every step."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.i18n import translator
from config.settings import Settings
from handlers.limits import Limits, LimitSettings
from tests.world import World, directory_without, texts

DE = translator("de")
MARK = "🚨"


@pytest.fixture
async def lim(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """Enough burst for the intake, then (practically) no refill."""
    transport = MemoryTransport()
    limits = Limits(LimitSettings(person_burst=12, person_per_second=0.0001))
    app = App(settings, [transport], clock=clock, directory=directory_without(), limits=limits)
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


async def test_attack_rate_limited_crisis_in_open_case_reaches_staff(lim: World) -> None:
    """A person in an open case who writes in a burst (people in crisis do) is rate
    limited; their "Ich will mich umbringen" then gets the numbers, but the case is not
    marked urgent and no one on the staff side hears of it (issue 11 part 3: "while
    rate-limited ... in an open case: the case is marked urgent and ... alerted")."""
    w = lim
    code = await w.open("p1")
    w.t.pop("alpha-room")
    for i in range(5):
        await w.person("p1", f"hallo {i}")
    w.t.pop("alpha-room")
    got = await w.person("p1", "Ich will mich umbringen")
    assert got, "numbers at once (this holds)"
    assert got[0].urgent
    room = w.t.pop("alpha-room")
    case = await w.case(code)
    assert case.urgent, "case not marked urgent"
    assert any(code in m.text and MARK in m.text for m in room), texts(room)


async def test_attack_threat_typed_at_the_delete_question_alerts_staff(world: World) -> None:
    """A person with an open case types /delete (the scene found them) and then, at the
    "really delete everything?" question, writes that they are threatened. They get the
    numbers, then "Das habe ich nicht verstanden" - and the case is not marked urgent,
    staff hear nothing (``consented`` in intake._step is False in State.DELETE because
    the profile was dropped when the case opened)."""
    w = world
    code = await w.open("p1")
    w.t.pop("alpha-room")
    await w.person("p1", "/delete")
    got = await w.person("p1", "die wissen wo ich wohne, ich hab angst")
    assert got[0].urgent, "numbers first (this holds)"
    assert DE("error.not_understood") not in texts(got), "a crisis text is no wrong answer"
    case = await w.case(code)
    assert (case.urgent, case.danger) == (True, "threat")
    room = w.t.pop("alpha-room")
    assert any(code in m.text and MARK in m.text for m in room), texts(room)


async def test_attack_no_office_hours_means_promised_24_7(world: World) -> None:
    """Programme beta (the fallback, where every urgent case without a region lands)
    has no office_hours. At 02:00 on a Sunday a person there writes that they want to
    kill themselves and is told "Wir haben deiner Beratung sofort Bescheid gesagt" with
    no word that nobody may read it before Monday (issue 11 part 4: outside office hours
    the person is told honestly). Nothing flags a chatting programme without office hours
    (config.preflight.directory_flags).

    What should happen: no office hours = unknown, so the honest "maybe nobody reads this
    now" note is given (or the directory is refused/flagged for a chatting programme,
    above all a fallback, without office hours)."""
    from datetime import UTC, datetime

    from config.preflight import directory_flags

    w = world
    w.clock.set(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))  # Sunday night
    await w.open("p1", state="NW")
    got = await w.person("p1", "Ich will mich umbringen")
    honest = DE("crisis.closed").splitlines()[0][:20]
    flagged = [f for f in directory_flags(w.app.router.directory) if "beta" in f]
    assert honest in texts(got) or flagged, texts(got)


async def test_attack_crisis_split_over_two_chat_messages(world: World) -> None:
    """People chat in fragments: "ich will mich" / "umbringen", "die stehen" / "vor
    meiner tür". Each fragment alone is harmless to the detector, so a person in an
    open case who writes in fragments gets no numbers and the case is not marked urgent.

    What should happen: the detector also sees the last message(s) of the same person
    joined to the new one (a few seconds / the previous message, in memory only)."""
    w = world
    code = await w.open("p1")
    w.t.pop("alpha-room")
    await w.person("p1", "ich will mich")
    got = await w.person("p1", "umbringen")
    assert any(m.urgent for m in got), texts(got)
    assert (await w.case(code)).urgent


async def test_attack_danger_typed_as_the_last_intake_message_keeps_its_category(
    world: World,
) -> None:
    """At the last intake question ("Möchtest du uns noch etwas mitteilen?") a person
    writes "die wissen wo ich wohne und stehen vor der tür". The case opens urgent, but
    staff read "Gefahr gemeldet" (unknown) instead of "Bedrohung durch andere", the case's
    danger is None, and the person is told the team "antwortet in der Regel innerhalb
    von 24 Stunden" right after the threat numbers.

    What should happen: the category reaches the case (the open_case effect of the
    MESSAGE step carries ``danger`` like urgent_case does) and the person reads the
    urgent wording, not the 24-hour one."""
    w = world
    steps = ["/start", "b:consent:yes", "b:safety:no", "b:audience:self", "b:scene:right",
             "b:state:MV", "b:district:skip", "b:prison:no", "b:language:de"]  # fmt: skip
    await w.person("p1", *steps)
    got = await w.person("p1", "die wissen wo ich wohne und stehen vor der tür")
    room = texts(w.t.pop("alpha-room"))
    assert DE("staff.danger.threat") in room, room
    assert "24 Stunden" not in texts(got)
