"""End-to-end journeys through the memory transport, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from config.messages import OutboundMessage
from storage.models import Case, CaseEvent, Contact, HeldMessage
from tests.conftest import Harness

CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")


def texts(msgs: list[OutboundMessage]) -> str:
    return "\n".join(m.text for m in msgs)


async def intake(
    h: Harness,
    who: str,
    *answers: str,
    message: str | None = None,
) -> list[OutboundMessage]:
    """Consent, no danger, then the given button answers, then the free text (or skip)."""
    await h.say(who, "/start")
    await h.press(who, "consent:yes")
    await h.press(who, "safety:no")
    for answer in answers:
        await h.press(who, answer)
    if message is None:
        return await go_on(h, who, await h.press(who, "message:skip"))
    return await go_on(h, who, await h.say(who, message))


async def go_on(h: Harness, who: str, got: list[OutboundMessage]) -> list[OutboundMessage]:
    """Answer the notice before a programme run by a state authority with "continue"
    (issue 12 part 4: the person is told and chooses before a case goes there)."""
    if any(b.data == "authority:continue" for m in got for b in m.flat_buttons):
        return [*got, *await h.press(who, "authority:continue")]
    return got


async def count(h: Harness, model: type, *where: object) -> int:
    assert h.app.db is not None
    async with h.app.db.transaction() as s:
        return int(
            (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
        )


async def test_right_wing_mv_reaches_jump_and_counsellor_replies(harness: Harness) -> None:
    h = harness
    got = await intake(
        h,
        "p1",
        "audience:self",
        "scene:right",
        "state:MV",
        "district:LUP",
        "prison:no",
        "language:de",
        message="Ich will raus. Wie geht das?",
    )
    text = texts(got)
    # discretion (issue 12 part 3): the routing result does not name the programme
    assert "JUMP!" not in text
    assert "/who" in text
    code = CODE.search(text)
    assert code is not None
    announced = h.room()
    assert any(code.group() in m.text for m in announced)
    assert any(b.data == f"claim:{code.group()}" for m in announced for b in m.flat_buttons)
    # held message waits encrypted
    assert await count(h, HeldMessage) == 1

    room = await h.staff("counsellor", button=f"claim:{code.group()}")
    assert any("Ich will raus. Wie geht das?" in m.text for m in room)
    person = h.transport.pop("p1")
    assert any("JUMP!" in m.text and "übernommen" in m.text for m in person)
    assert await count(h, HeldMessage) == 0

    # Plain text in the staff room (no case topic here) is never relayed: /r names the case.
    await h.staff("counsellor", f"/r {code.group()} Hallo, ich bin für dich da.")
    reply = h.transport.pop("p1")
    assert len(reply) == 1
    alias = h.app.router.directory.by_id["jump"].staff[0].alias  # type: ignore[union-attr]
    assert reply[0].text.startswith(f"{alias}:\n")  # alias only (issue 12 part 3)
    assert "JUMP!" not in reply[0].text
    assert "Hallo, ich bin für dich da." in reply[0].text
    assert "counsellor" not in reply[0].text

    await h.say("p1", "Danke!")
    assert any(f"[{code.group()}]\n> Danke!" == m.text for m in h.room())


async def test_left_wing_nrw_reaches_left(harness: Harness) -> None:
    h = harness
    text = texts(
        await intake(
            harness, "p2", "audience:self", "scene:left", "state:NW", "prison:yes", "language:de"
        )
    )
    assert "LEFT" in text
    code = CODE.search(text)
    assert code is not None
    # LEFT has two companions: the second one can claim too, but only one wins
    first = await h.staff("counsellor2", f"/claim {code.group()}")
    assert any("übernommen" in m.text for m in first)
    second = await h.staff("counsellor", f"/claim {code.group()}")
    assert any("schon übernommen" in m.text for m in second)
    await h.staff("counsellor2", f"/r {code.group()} Hi, hier ist LEFT.")
    assert "Hi, hier ist LEFT." in texts(h.transport.pop("p2"))


async def test_worried_mother_in_bavaria_gets_somewhere_to_turn(harness: Harness) -> None:
    h = harness
    got = await intake(h, "mum", "audience:relative", "scene:right", "state:BY", "language:de")
    text = texts(got)
    clearing = h.app.router.directory.by_id["clearing"]  # type: ignore[union-attr]
    assert CODE.search(text), "the fallback still opens a case someone answers"
    assert clearing.name in texts(await h.say("mum", "/who"))  # named on request
    assert "Ein erster Rat" in text  # relatives get advice at once
    assert await count(h, Case, Case.programme_id == "clearing") == 1


async def test_islamist_relative_in_bavaria_is_referred_with_honest_notice(
    harness: Harness,
) -> None:
    text = texts(
        await intake(
            harness, "r1", "audience:relative", "scene:islamist", "state:BY", "language:de"
        )
    )
    assert "0911 943 43 43" in text
    assert "Sicherheitsbehörden" in text
    assert CODE.search(text) is None
    assert await count(harness, Case) == 0
    assert await count(harness, CaseEvent, CaseEvent.kind == "referred") == 1


async def test_crisis_reply_is_first_and_marks_case_urgent(harness: Harness) -> None:
    h = harness
    await h.say("p3", "/start")
    await h.press("p3", "consent:yes")
    got = await h.press("p3", "safety:yes")
    assert got[0].urgent
    assert "110" in got[0].text
    # Issue 11: the urgent case opens at once, without the five other questions.
    assert CODE.search(texts(got)) is not None
    announced = h.room()
    assert any("DRINGEND" in m.text and m.urgent for m in announced)


async def test_counsellor_of_other_programme_is_denied_and_nothing_changes(
    harness: Harness,
) -> None:
    h = harness
    text = texts(
        await intake(
            h,
            "p4",
            "audience:self",
            "scene:right",
            "state:MV",
            "district:skip",
            "prison:no",
            "language:de",
        )
    )
    code = CODE.search(text)
    assert code is not None
    h.room()
    # the coordinator of lks-mv is staff, but not of JUMP!
    denied = await h.staff("coordinator", f"/claim {code.group()}")
    assert "keinen Zugriff" in texts(denied)
    assert await count(h, Case, Case.status == "new") == 1
    replied = await h.staff("coordinator", f"/r {code.group()} hallo")
    assert "keinen Zugriff" in texts(replied)
    assert h.transport.pop("p4") == []


async def test_delete_erases_contact_keys_and_held_messages(harness: Harness) -> None:
    h = harness
    text = texts(
        await intake(
            h,
            "p5",
            "audience:self",
            "scene:left",
            "state:NW",
            "prison:no",
            "language:de",
            message="geheim",
        )
    )
    assert CODE.search(text)
    assert await count(h, Contact) == 1
    confirm = await h.say("p5", "/delete")
    assert any(b.data == "delete:yes" for m in confirm for b in m.flat_buttons)
    done = await h.press("p5", "delete:yes")
    assert re.search(r"Q-[0-9A-F]{6}", texts(done))
    assert await count(h, Contact) == 0
    assert await count(h, HeldMessage) == 0
    assert h.app.keystore is not None
    assert await h.app.keystore.count() == 0
    assert await count(h, Case, Case.contact_id.is_not(None)) == 0
    assert await count(h, Case, Case.status == "closed") == 1
    assert "gelöscht" in texts(h.room())
    # writing again starts afresh
    again = await h.say("p5", "hallo")
    assert any(b.data == "consent:yes" for m in again for b in m.flat_buttons)


async def test_duplicate_update_is_processed_once(harness: Harness) -> None:
    h = harness
    first = await h.say("p6", "hallo", update_id="same")
    assert first
    second = await h.say("p6", "hallo", update_id="same")
    assert second == []


async def test_consent_declined_stores_nothing(harness: Harness) -> None:
    h = harness
    await h.say("p7", "hallo")
    got = await h.press("p7", "consent:no")
    assert "110" in texts(got)
    assert await count(h, Contact) == 0
    assert h.app.keystore is not None
    assert await h.app.keystore.count() == 0


async def test_abandoned_intake_expires_and_restarts(harness: Harness) -> None:
    h = harness
    await h.say("p8", "hallo")
    await h.press("p8", "consent:yes")
    await h.press("p8", "safety:no")
    h.clock.advance(hours=49)
    got = await h.press("p8", "audience:self")
    assert any(b.data == "consent:yes" for m in got for b in m.flat_buttons)


async def test_a_failing_message_is_answered_kindly_and_rolled_back(
    harness: Harness, monkeypatch: object
) -> None:
    h = harness
    import handlers.intake as intake_mod

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("sentinel failure")

    monkeypatch.setattr(intake_mod, "step", boom)  # type: ignore[attr-defined]
    got = await h.say("p9", "hallo")
    assert len(got) == 1
    assert "schiefgegangen" in got[0].text
    assert await count(h, Contact) == 0


async def test_intake_answers_are_dropped_once_the_case_is_open(harness: Harness) -> None:
    h = harness
    await intake(h, "p10", "audience:self", "scene:right", "state:NW", "prison:no", "language:de")
    assert h.app.db is not None
    async with h.app.db.transaction() as s:
        contact = (await s.execute(select(Contact))).scalar_one()
        case = (await s.execute(select(Case))).scalar_one()
    assert contact.profile_ct is None
    assert (case.scene, case.region, case.audience) == ("right", "NW", "self")


async def test_privacy_notice_says_what_the_platform_can_see(directory: object) -> None:
    from config.messages import Address, InboundMessage, Platform
    from handlers import intake as intake_mod

    ctx = intake_mod.IntakeContext(
        directory,
        {
            "intake_hours": 48,
            "held_days": 14,  # type: ignore[arg-type]
            "case_days": 90,
        },
    )
    for platform, words in ((Platform.TELEGRAM, "Telefonnummer"), (Platform.MATRIX, "Server")):
        msg = InboundMessage(
            platform=platform, sender_id="1", address=Address(platform, "1"), text="/start"
        )
        tr = intake_mod.step(ctx, "new", {}, "de", msg)
        notice = tr.replies[-1].text
        assert words in notice
        assert "Ende-zu-Ende" in notice


async def test_crisis_numbers_go_out_even_when_the_database_fails(
    harness: Harness, monkeypatch: object
) -> None:
    import handlers.intake as intake_mod

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(intake_mod, "step", broken)  # type: ignore[attr-defined]
    got = await harness.say("p11", "Ich will mich umbringen")
    assert got[0].urgent
    assert "112" in got[0].text  # suicide: TelefonSeelsorge and 112 (docs/CRISIS.md)
    assert "schiefgegangen" in got[1].text


async def test_telegram_notice_offers_the_matrix_route_when_configured(directory: object) -> None:
    from config.messages import Address, InboundMessage, Platform
    from handlers import intake as intake_mod

    msg = InboundMessage(
        platform=Platform.TELEGRAM,
        sender_id="1",
        address=Address(Platform.TELEGRAM, "1"),
        text="/start",
    )
    for matrix, offered in (("@ausweg:example.org", True), ("", False)):
        retention = {"intake_hours": 48, "held_days": 14, "case_days": 90, "matrix": matrix}
        ctx = intake_mod.IntakeContext(directory, retention)  # type: ignore[arg-type]
        notice = intake_mod.step(ctx, "new", {}, "de", msg).replies[-1].text
        assert ("Element" in notice) is offered
        assert ("@ausweg:example.org" in notice) is offered
