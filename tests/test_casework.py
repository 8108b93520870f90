"""Counsellors' work (issue: handover, relay, teamwork, follow-ups).

Two programmes (alpha in MV, beta in NRW), three counsellors (a1, a2 at alpha;
b1 at beta), a coordinator (ac at alpha), five people. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.i18n import translator
from config.messages import OutKind
from config.settings import Settings
from storage.models import CaseEvent, CaseMember, CaseNote, Contact, FollowUp, Referral
from tests.conftest import OFFICE_TIME
from tests.world import CODE, LONG_WINDOW, World, directory_without, texts

DE = translator("de")


async def test_queue_lists_urgent_first_then_oldest(world: World) -> None:
    w = world
    first = await w.open("p1")
    w.clock.advance(hours=2)
    second = await w.open("p2")
    w.clock.advance(hours=2)
    # "Yes, right now" opens a case at once (issue 11): the urgent case here comes from
    # a danger message in an open case of this programme.
    third = re.search(CODE, await w.open("p3"))
    await w.person("p3", "ich werde bedroht")
    assert third is not None
    w.t.pop("alpha-room")
    queue = texts(await w.staff("a1", "/queue"))
    order = [queue.index(c) for c in (third.group(), first, second)]
    assert order == sorted(order)
    assert "DRINGEND" in queue
    assert "Wartet seit: 4 Std." in queue


async def test_claim_race_exactly_one_wins(world: World) -> None:
    w = world
    code = await w.open("p1")
    w.t.pop("alpha-room")
    await asyncio.gather(
        w.t.push("a1", f"/claim {code}", chat="alpha-room", group=True),
        w.t.push("a2", f"/claim {code}", chat="alpha-room", group=True),
    )
    room = texts(w.t.pop("alpha-room"))
    assert room.count("hat " + code + " übernommen") == 1
    assert room.count(f"{code} ist schon übernommen") == 1
    case = await w.case(code)
    assert case.claimed_by in ("alpha/a1", "alpha/a2")
    assert await w.count(CaseEvent, CaseEvent.kind == "status:claimed") == 1


async def test_release_puts_case_back_and_others_cannot_write(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    assert "nicht von dir übernommen" in texts(await w.staff("a2", f"/r {code} hallo"))
    assert w.t.pop("p1") == []  # a2's text never reached the person
    released = texts(await w.staff("a1", f"/release {code}"))
    assert "wieder in der Warteschlange" in released
    assert code in texts(await w.staff("a2", "/queue"))
    assert "übernommen" in texts(await w.staff("a2", f"/claim {code}"))


async def test_second_counsellor_joins_and_both_reach_the_person(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    joined = await w.staff("a1", f"/invite {code} Sam")
    assert "Sam arbeitet jetzt mit" in texts(joined)
    assert any(m.kind is OutKind.CASE_CLAIMED and m.invite == ("a2",) for m in joined)
    await w.staff("a2", f"/r {code} Hallo von Sam")
    await w.staff("a1", f"/r {code} Hallo von Alex")
    got = texts(w.t.pop("p1"))
    assert "Sam:\nHallo von Sam" in got  # alias only (issue 12 part 3)
    assert "Alex:\nHallo von Alex" in got
    assert await w.count(CaseMember) == 1


async def test_handover_to_colleague_tells_the_person(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    await w.staff("a1", f"/transfer {code} a2")
    assert "Ab jetzt schreibt dir Sam." in texts(w.t.pop("p1"))
    assert (await w.case(code)).claimed_by == "alpha/a2"


async def test_transfer_to_other_programme_needs_consent(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    asked = await w.staff("a1", f"/transfer {code} beta")
    assert "wurde gefragt" in texts(asked)
    question = w.t.pop("p1")
    assert [b.data for m in question for b in m.flat_buttons] == ["transfer:yes", "transfer:no"]
    assert (await w.case(code)).programme_id == "alpha"
    got = texts(await w.person("p1", "b:transfer:yes"))
    assert "jetzt bei Beta NRW" in got
    assert code in texts(w.t.pop("beta-room"))
    case = await w.case(code)
    assert (case.programme_id, case.status, case.claimed_by) == ("beta", "new", None)
    assert "keinen Zugriff" in texts(await w.staff("a1", f"/r {code} noch da?"))
    assert "übernommen" in texts(await w.staff("b1", f"/claim {code}", room="beta-room"))


async def test_transfer_declined_keeps_case(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/transfer {code} beta")
    got = texts(await w.person("p1", "b:transfer:no"))
    assert "bleibt, wo sie ist" in got
    assert "möchte nicht weitergeleitet" in texts(w.t.pop("alpha-room"))
    assert (await w.case(code)).programme_id == "alpha"


async def test_notes_are_encrypted_and_never_relayed(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    await w.staff("a1", f"/note {code} NoteSentinel-Qz81")
    assert w.t.pop("p1") == []
    notes = texts(await w.staff("a2", f"/notes {code}"))
    assert "nicht von dir übernommen" in notes  # not a member of the case
    assert "NoteSentinel-Qz81" in texts(await w.staff("a1", f"/notes {code}"))
    assert await w.count(CaseNote) == 1


async def test_canned_reply_in_the_persons_language(world: World) -> None:
    w = world
    code = await w.open("p1", locale="en")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    await w.staff("a1", f"/canned {code} hello")
    assert "Good that you write." in texts(w.t.pop("p1"))
    assert "Vorhanden: hello" in texts(await w.staff("a1", f"/canned {code} nope"))


@pytest.mark.parametrize(
    ("when", "open_now", "next_open"),
    # the next opening is written per locale by babel.dates (issue 12)
    [
        (datetime(2026, 11, 17, 9, 0, tzinfo=UTC), True, None),  # Tuesday 10:00 Berlin
        (datetime(2026, 11, 21, 11, 0, tzinfo=UTC), False, "Mo., 23. Nov. 09:00"),  # Saturday
        (datetime(2026, 12, 25, 10, 0, tzinfo=UTC), False, "Mo., 28. Dez. 09:00"),  # Christmas
        (datetime(2026, 10, 30, 17, 0, tzinfo=UTC), False, "Mo., 2. Nov. 09:00"),  # Friday, holiday
    ],
)
async def test_office_hours_across_weekend_and_holiday(
    world: World, when: datetime, open_now: bool, next_open: str | None
) -> None:
    w = world
    w.clock.set(when)
    got = texts(
        await w.person(
            "p1",
            "/start",
            "b:consent:yes",
            "b:safety:no",
            "b:audience:self",
            "b:scene:right",
            "b:state:MV",
            "b:district:skip",
            "b:prison:no",
            "b:language:de",
            "b:message:skip",
        )
    )
    assert ("gerade im Dienst" in got) is open_now
    if next_open:
        assert f"Wieder erreichbar: {next_open}" in got
        assert "110" in got  # crisis numbers outside office hours


async def test_absence_note_reaches_the_person_once_per_hour(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", "/away Ich bin bis Montag nicht da.")
    w.t.pop("p1")
    w.clock.advance(hours=1)
    first = texts(await w.person("p1", "Hallo?"))
    assert "Ich bin bis Montag nicht da." in first
    assert texts(await w.person("p1", "Noch da?")) == ""
    await w.staff("a1", "/away off")
    w.clock.advance(hours=1)
    assert "Montag" not in texts(await w.person("p1", "Hallo wieder"))


async def test_unclaimed_case_escalates_to_staff_then_coordinator(world: World) -> None:
    w = world
    code = await w.open("p1", state="NW", scene="left")
    w.t.pop("beta-room")
    await w.app.escalate()
    assert w.t.pop("beta-room") == []
    w.clock.advance(hours=49)
    await w.app.escalate()
    assert f"{code} wartet seit 49 Std." in texts(w.t.pop("beta-room"))
    w.clock.advance(hours=48)
    await w.app.escalate()
    # beta has no coordinator and no coordination office for NW: its own room hears it
    assert "Koordination" in texts(w.t.pop("beta-room"))
    await w.app.escalate()
    assert w.t.pop("beta-room") == []


async def test_alpha_escalation_reaches_the_coordinator(world: World) -> None:
    w = world
    code = await w.open("p1")
    w.clock.advance(hours=49)
    await w.app.escalate()
    await w.app.escalate()
    room = texts(w.t.pop("alpha-room"))
    assert f"Koordination: {code}" in room


async def test_followups_fire_once_with_neutral_text(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    set_ = texts(await w.staff("a1", f"/followup {code} 14d"))
    assert "Erinnerung in 14 Tagen" in set_
    w.t.pop("p1")
    w.clock.advance(days=13)
    assert await w.app.run_due_followups() == 0
    w.clock.advance(days=1)
    assert await w.app.run_due_followups() == 1
    got = w.t.pop("p1")
    assert len(got) == 1
    assert "wie geht es dir" in got[0].text
    assert "Alpha" not in got[0].text
    assert "Alex" not in got[0].text
    assert "Erinnerung wurde an die Person geschickt" in texts(w.t.pop("alpha-room"))
    assert await w.app.run_due_followups() == 0
    assert await w.count(FollowUp) == 0


async def test_recurring_followup_less_often_and_off(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} weekly")
    await w.staff("a1", f"/followup {code} less")
    w.t.pop("p1")
    w.clock.advance(days=7)
    assert await w.app.run_due_followups() == 0
    w.clock.advance(days=7)
    assert await w.app.run_due_followups() == 1
    w.clock.advance(days=14)
    assert await w.app.run_due_followups() == 1
    assert len(w.t.pop("p1")) == 2
    await w.staff("a1", f"/followup {code} off")
    w.clock.advance(days=30)
    assert await w.app.run_due_followups() == 0


async def test_person_can_pause_followups(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} weekly")
    assert "pausiert" in texts(await w.person("p1", "/pause"))
    w.clock.advance(days=7)
    await w.app.run_due_followups()
    assert w.t.pop("p1") == []
    await w.person("p1", "/resume")
    w.clock.advance(days=7)
    await w.app.run_due_followups()
    assert "wie geht es dir" in texts(w.t.pop("p1"))


async def test_delete_me_removes_followup_jobs(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} 14d")
    assert w.app.scheduler is not None
    w.app.scheduler.horizon = LONG_WINDOW  # this test is about removing jobs
    await w.app.load_followup_window()
    assert len(w.app.scheduler.followup_jobs()) == 1
    await w.person("p1", "/delete", "b:delete:yes")
    assert w.app.scheduler.followup_jobs() == {}
    assert await w.count(FollowUp) == 0
    assert await w.count(Contact) == 0


async def test_counsellor_of_other_programme_is_denied_everything(world: World) -> None:
    """Privacy check 8: every staff action of b1 on alpha's case is denied, nothing changes."""
    w = world
    code = await w.open("p1", message="Hallo")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} 7d")
    w.t.pop("p1")
    before = await w.case(code)
    counts = [await w.count(m) for m in (CaseNote, CaseMember, FollowUp, CaseEvent)]
    for command in (
        "claim",
        "release",
        "r hallo",
        "note x",
        "notes",
        "invite Robin",
        "transfer beta",
        "followup off",
        "canned hello",
        "pause",
        "close exit",
    ):
        got = texts(
            await w.staff(
                "b1",
                f"/{command.split()[0]} {code} " + " ".join(command.split()[1:]),
                room="beta-room",
            )
        )
        assert "keinen Zugriff" in got, command
    assert w.t.pop("p1") == []
    after = await w.case(code)
    assert (after.status, after.claimed_by, after.programme_id, after.last_activity_at) == (
        before.status,
        before.claimed_by,
        before.programme_id,
        before.last_activity_at,
    )
    assert [await w.count(m) for m in (CaseNote, CaseMember, FollowUp, CaseEvent)] == counts


async def test_removed_counsellor_loses_access_at_once(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a2", f"/claim {code}")
    w.t.pop("p1")
    w.app.reload_directory(directory_without("a2"))
    # No longer staff: ignored in groups. What the room and the person read now is only
    # the release of the case back to the queue (the reload's doing), never the relay.
    room = await w.staff("a2", f"/r {code} hallo")
    assert DE("staff.orphaned", code=code) in texts(room)
    assert all("hallo" not in m.text for m in room)
    assert texts(w.t.pop("p1")) == DE("case.orphaned")


async def test_close_with_outcome_and_shred_case_key(world: World) -> None:
    w = world
    code = await w.open("p1", message="geheim")
    await w.staff("a1", f"/claim {code}")
    closed = texts(await w.staff("a1", f"/close {code} exit"))
    assert "geschlossen (exit)" in closed
    case = await w.case(code)
    assert (case.status, case.outcome, case.key_id) == ("closed", "exit", None)
    assert "abgeschlossen" in texts(w.t.pop("p1"))
    again = await w.person("p1", "hallo")
    assert any(b.data == "consent:yes" for m in again for b in m.flat_buttons)
    assert await w.count(CaseEvent, CaseEvent.kind == "outcome:exit") == 1


async def test_vanish_hands_message_refs_to_the_platform(world: World) -> None:
    w = world
    code = await w.open("p1")
    assert code
    await w.app.flush_refs()
    await w.person("p1", "/vanish")
    assert len(w.t.vanished) == 1
    chat, refs = w.t.vanished[0]
    assert chat == "p1"
    assert len(refs) >= 20  # the person's messages and the bot's replies
    assert len(set(refs)) == len(refs)
    await w.app.flush_refs()
    await w.person("p1", "/vanish")
    assert len(w.t.vanished[1][1]) == 1  # only the new /vanish message itself


async def test_deep_link_preselects_programme_and_records_source(world: World) -> None:
    w = world
    assert w.app.db is not None
    async with w.app.db.transaction() as s:
        s.add(
            Referral(
                code="Zx81kq",
                programme_id="beta",
                source="poster-koeln",
                delete_after=datetime(2030, 1, 1, tzinfo=UTC),
            )
        )
    got = texts(
        await w.person(
            "p9",
            "/start Zx81kq",
            "b:consent:yes",
            "b:safety:no",
            "b:audience:self",
            "b:scene:right",
            "b:state:NW",
            "b:prison:no",
            "b:language:de",
            "b:message:skip",
        )
    )
    assert "Beta NRW" in texts(await w.person("p9", "/who"))  # named on request only
    code = CODE.search(got)
    assert code is not None
    assert (await w.case(code.group())).source == "poster-koeln"


async def test_staff_thread_routes_messages_without_code(settings: Settings) -> None:
    clock = FakeClock(OFFICE_TIME)
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        w = World(app, transport, clock)
        code = await w.open("p1")
        room = w.t.pop("alpha-room")
        assert all(m.address.thread_id == code for m in room)
        await w.staff("a1", "/claim", thread=code)
        await w.staff("a1", "Hallo aus dem Thema", thread=code)
        assert "Hallo aus dem Thema" in texts(w.t.pop("p1"))
        await w.person("p1", "Antwort")
        relayed = [m for m in w.t.pop("alpha-room") if "Antwort" in m.text]
        assert relayed
        assert relayed[0].address.thread_id == code
    finally:
        await app.stop()


async def test_followup_due_during_downtime_fires_after_restart(settings: Settings) -> None:
    clock = FakeClock(OFFICE_TIME)
    transport = MemoryTransport()
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    w = World(app, transport, clock)
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} 14d")
    await app.stop()

    clock.advance(days=15)
    transport2 = MemoryTransport()
    app2 = App(settings, [transport2], clock=clock, directory=directory_without())
    await app2.start()
    try:
        got = await transport2.wait_for(lambda m: "wie geht es dir" in m.text)
        assert got.address.chat_id == "p1"
        assert app2.scheduler is not None
        assert app2.scheduler.followup_jobs() == {}  # one-off: removed before sending
        assert sum("wie geht es dir" in m.text for m in transport2.sent) == 1
    finally:
        await app2.stop()


async def test_case_thread_is_forgotten_once_retention_passed(settings: Settings) -> None:
    clock = FakeClock(OFFICE_TIME)
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        w = World(app, transport, clock)
        code = await w.open("p1")
        await w.staff("a1", "/claim", thread=code)
        await app.purge()
        assert transport.forgotten == []  # an open case keeps its thread
        await w.staff("a1", "/close exit", thread=code)
        clock.advance(hours=1)  # no grace period by default: gone at the next purge
        await app.purge()
        assert [(a.chat_id, a.thread_id) for a in transport.forgotten] == [("alpha-room", code)]
        assert app.threads.thread_of(code, "alpha", transport.platform) is None
    finally:
        await app.stop()


async def test_attachments_relayed_by_copy_once_claimed_when_switched_on(
    settings: Settings,
) -> None:
    settings.relay_attachments = True
    clock = FakeClock(OFFICE_TIME)
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        w = World(app, transport, clock)
        code = await w.open("p1")
        w.t.pop("alpha-room")
        await w.t.push("p1", attachment="photo")
        assert "sobald deine Anfrage übernommen" in texts(w.t.pop("p1"))
        await w.staff("a1", "/claim", thread=code)
        w.t.pop("p1")
        await w.t.push("p1", attachment="photo")
        [copy] = [m for m in w.t.pop("alpha-room") if m.kind is OutKind.COPY]
        assert copy.copy_from is not None
        assert copy.copy_from.chat_id == "p1"
        assert copy.refs
        assert copy.text == f"[{code}] (Foto)"
        assert copy.address.thread_id == code
        await w.t.push("a1", chat="alpha-room", group=True, thread=code, attachment="document")
        [back] = [m for m in w.t.pop("p1") if m.kind is OutKind.COPY]
        assert back.text == "Alex:"
        assert back.copy_from is not None
        assert back.copy_from.chat_id == "alpha-room"
    finally:
        await app.stop()


async def test_attachments_are_declined_kindly_when_switched_off(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    await w.t.push("p1", attachment="voice")
    assert "Bitte schreib uns Text" in texts(w.t.pop("p1"))
    assert not [m for m in w.t.pop("alpha-room") if m.kind is OutKind.COPY]
    await w.t.push("a1", chat="alpha-room", group=True, attachment="photo")
    assert "ausgeschaltet" in texts(w.t.pop("alpha-room"))
