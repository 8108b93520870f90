"""Follow-ups the person controls (issue 12 part 9): told when one is set and how often,
with buttons for less often / pause / stop for good on the notice and on every check-in;
the counsellor is told what the person chose. Through the memory transport."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from config.i18n import translator
from config.lockscreen import problems
from storage.models import FollowUp
from tests.world import LONG_WINDOW, World, texts

DE = translator("de")
EN = translator("en")
CONTROLS = ["followup:less", "followup:pause", "followup:stop"]


async def claimed(w: World, who: str = "p1", locale: str = "de") -> str:
    code = await w.open(who, locale=locale)
    await w.staff("a1", f"/claim {code}")
    w.t.pop(who)
    return code


async def followup(w: World) -> FollowUp:
    assert w.app.db is not None
    async with w.app.db.transaction() as s:
        return (await s.execute(select(FollowUp))).scalar_one()


async def test_person_is_told_when_and_how_often_with_controls(world: World) -> None:
    w = world
    code = await claimed(w)
    await w.staff("a1", f"/followup {code} weekly")
    (notice,) = w.t.pop("p1")
    due = w.clock.now() + timedelta(days=7)
    assert notice.text == DE("followup.set.every", days=7, date=f"{due:%d.%m.%Y}")
    assert [b.data for b in notice.flat_buttons] == CONTROLS


async def test_a_single_followup_notice_names_the_date(world: World) -> None:
    w = world
    code = await claimed(w, locale="en")
    await w.staff("a1", f"/followup {code} 14d")
    (notice,) = w.t.pop("p1")
    due = w.clock.now() + timedelta(days=14)
    assert notice.text == EN("followup.set.once", days=14, date=f"{due:%d.%m.%Y}")
    assert [b.data for b in notice.flat_buttons] == CONTROLS


def test_notices_keep_the_first_line_neutral() -> None:
    for t in (DE, EN):
        for key in ("followup.set.every", "followup.set.once", "followup.checkin"):
            text = t(key, days=7, date="01.12.2026")
            assert problems(text, t.locale) == [], (key, text)


async def test_checkin_carries_the_same_buttons(world: World) -> None:
    w = world
    code = await claimed(w)
    await w.staff("a1", f"/followup {code} 7d")
    w.t.pop("p1")
    w.clock.advance(days=7)
    assert await w.app.run_due_followups() == 1
    (checkin,) = w.t.pop("p1")
    assert checkin.text == DE("followup.checkin")
    assert [b.data for b in checkin.flat_buttons] == CONTROLS


async def test_less_often_doubles_the_interval_and_tells_the_counsellor(world: World) -> None:
    w = world
    code = await claimed(w)
    await w.staff("a1", f"/followup {code} weekly")
    w.t.pop("p1")
    w.t.pop("alpha-room")
    got = await w.person("p1", "b:followup:less")
    row = await followup(w)
    assert row.every_days == 14
    assert texts(got) == DE("followup.less", date=f"{row.due_at:%d.%m.%Y}")
    assert texts(w.t.pop("alpha-room")) == DE(
        "staff.followup.person.less", code=code, when=f"{row.due_at:%d.%m.%Y}"
    )
    w.clock.advance(days=7)
    assert await w.app.run_due_followups() == 0, "not after a week any more"
    w.clock.advance(days=7)
    assert await w.app.run_due_followups() == 1
    w.clock.advance(days=7)
    assert await w.app.run_due_followups() == 0
    w.clock.advance(days=7)
    assert await w.app.run_due_followups() == 1


async def test_pause_button_pauses_and_offers_resume(world: World) -> None:
    w = world
    code = await claimed(w)
    await w.staff("a1", f"/followup {code} weekly")
    w.t.pop("p1")
    w.t.pop("alpha-room")
    (reply,) = await w.person("p1", "b:followup:pause")
    assert reply.text == DE("followup.paused")
    assert "followup:resume" in [b.data for b in reply.flat_buttons]
    assert texts(w.t.pop("alpha-room")) == DE("staff.followup.person.pause", code=code)
    w.clock.advance(days=7)
    await w.app.run_due_followups()
    assert w.t.pop("p1") == []
    await w.person("p1", "b:followup:resume")
    assert texts(w.t.pop("alpha-room")) == DE("staff.followup.person.resume", code=code)
    w.clock.advance(days=7)
    await w.app.run_due_followups()
    assert texts(w.t.pop("p1")) == DE("followup.checkin")


async def test_stop_deletes_the_followup_and_its_job(world: World) -> None:
    w = world
    code = await claimed(w)
    assert w.app.scheduler is not None
    w.app.scheduler.horizon = LONG_WINDOW  # the job exists now, so its removal is visible
    await w.staff("a1", f"/followup {code} weekly")
    await w.app.load_followup_window()
    assert len(w.app.scheduler.followup_jobs()) == 1
    w.t.pop("p1")
    w.t.pop("alpha-room")
    (reply,) = await w.person("p1", "b:followup:stop")
    assert reply.text == DE("followup.stopped")
    assert reply.buttons == ()
    assert await w.count(FollowUp) == 0
    assert w.app.scheduler.followup_jobs() == {}
    assert texts(w.t.pop("alpha-room")) == DE("staff.followup.person.stop", code=code)
    w.clock.advance(days=30)
    assert await w.app.run_due_followups() == 0
    assert w.t.pop("p1") == []


async def test_controls_without_a_followup_say_so(world: World) -> None:
    w = world
    await claimed(w)
    assert texts(await w.person("p1", "b:followup:less")) == DE("followup.none")
    assert w.t.pop("alpha-room") == []
