"""Follow-ups of the newcomer walk-through (issue 12): the other half of each fix, so a
fix cannot turn into a dead end (a confirmation that never acts, a hint that never
comes back)."""

from __future__ import annotations

import re

import pytest

from storage.models import Case, CaseNote
from tests.phone import Phone
from tests.test_transparency import count

CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")


async def urgent_claimed_case(p: Phone) -> str:
    await p.say("man", "ich will raus aus der rechten szene, die wissen wo ich wohne")
    reply = await p.press("man", "crisis:contact:threat")
    code = CODE.search(reply)
    assert code, reply
    await p.staff("counsellor", f"/claim {code.group()}")
    p.t.pop("man")
    return code.group()


@pytest.mark.parametrize("how", ["typed", "button"])
async def test_close_of_an_urgent_case_acts_once_confirmed(phone: Phone, how: str) -> None:
    p = phone
    code = await urgent_claimed_case(p)
    asked = await p.staff("counsellor", f"/close {code} exit")
    assert "dringend" in asked, asked
    (message,) = [m for m in p.t.sent if m.text == asked]
    (button,) = message.flat_buttons
    assert button.data == f"close:{code} exit"
    if how == "typed":
        done = await p.staff("counsellor", f"/close {code} exit confirm")
    else:
        await p.t.push("counsellor", button=button.data, chat="staff", group=True)
        done = "\n".join(m.text for m in p.t.pop("staff"))
    assert f"{code} ist geschlossen (exit)" in done, done
    told = "\n".join(m.text for m in p.t.pop("man"))
    assert "abgeschlossen" in told, told


async def test_staff_room_hint_comes_back_after_a_while(phone: Phone) -> None:
    """Team chat gets the "not passed on" hint once per room and ten minutes, not never:
    a counsellor who later tries to answer a person in the room is still told."""
    p = phone
    assert "Nicht weitergeleitet" in await p.staff("counsellor", "Morgen zusammen")
    assert await p.staff("counsellor2", "Morgen") == ""
    p.app.clock.advance(minutes=11)  # type: ignore[attr-defined]
    assert "Nicht weitergeleitet" in await p.staff("counsellor", "Danke, bis später")


def test_example_descriptions_and_notices_keep_no_register() -> None:
    """Descriptions and notices are shown to every audience (/who, referrals, declined
    consent): a "Sie" there breaks the "du" of a person writing about themselves, and a
    "du" the "Sie" of a mother. They are written without either."""
    from config.settings import EXAMPLE_DIRECTORY
    from tests.phone import load_directory

    addressed = re.compile(r"\b(Sie|Ihnen|Ihre[mnrs]?|du|dich|dir|dein\w*)\b")
    for programme in load_directory(EXAMPLE_DIRECTORY).programmes:
        for text in (programme.description, programme.notice):
            german = (text or {}).get("de", "")
            assert not addressed.search(german), (programme.id, german)


async def test_transfer_leaves_the_old_programmes_notes_behind(phone: Phone) -> None:
    """The person is told the new programme sees their answers and new messages, "not the
    earlier messages and notes": the old counsellors' notes must not travel along."""
    p = phone
    await p.say("y", "/start")
    await p.press("y", "consent:yes")
    await p.press("y", "safety:no")
    for answer in ("audience:self", "scene:right", "state:BY", "prison:no", "language:de"):
        await p.press("y", answer)
    code = CODE.search(await p.press("y", "message:skip"))
    assert code
    await p.staff("counsellor", f"/claim {code.group()}")
    await p.staff("counsellor", f"/note {code.group()} Vater ist in der Szene aktiv")
    assert "Vater ist in der Szene" in await p.staff("counsellor", f"/notes {code.group()}")
    await p.staff("counsellor", f"/transfer {code.group()} jump")
    asked = "\n".join(m.text for m in p.t.pop("y"))
    assert "nicht die bisherigen Nachrichten und Notizen" in asked, asked
    await p.press("y", "transfer:yes")
    assert await count(p.app, CaseNote) == 0


@pytest.mark.parametrize("skip", ["möchte ich nicht sagen", "prison:skip"])
async def test_prison_skipped_is_unknown_not_no(phone: Phone, skip: str) -> None:
    """Skipping the optional prison question moves on and stores no "not in prison"."""
    p = phone
    await p.say("y", "/start")
    await p.press("y", "consent:yes")
    await p.press("y", "safety:no")
    for answer in ("audience:self", "scene:right", "state:MV", "district:skip"):
        await p.press("y", answer)
    if ":" in skip:
        reply = await p.press("y", skip)
    else:
        reply = await p.say("y", skip)
        if "Stimmt das?" in reply:  # a typed answer is echoed first
            assert "ohne Angabe zur Haft" in reply, reply
            reply = await p.press("y", "confirm:yes")
    assert "In welcher Sprache" in reply, reply
    await p.press("y", "language:de")
    code = CODE.search(await p.press("y", "message:skip"))
    assert code
    assert await count(p.app, Case, Case.in_prison.is_(None)) == 1


async def test_message_question_warns_only_where_nobody_reads(phone: Phone) -> None:
    """A route with chat staff invites the message without the referral warning."""
    p = phone
    await p.say("y", "/start")
    await p.press("y", "consent:yes")
    await p.press("y", "safety:no")
    prompt = ""
    for answer in ("audience:self", "scene:right", "state:BY", "prison:no", "language:de"):
        prompt = await p.press("y", answer)
    assert "Möchtest du uns noch etwas mitteilen" in prompt, prompt
    assert "nicht weiter" not in prompt, prompt


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        (
            "Ich wurde gestern in Greifswald antisemitisch beleidigt und angespuckt, "
            "weil ich eine Kippa trage",
            {"audience": "affected", "incident": "antisemitism", "state": "MV"},
        ),
        ("Man hat mich beschimpft, weil ich eine Kippa trage", {"incident": "antisemitism"}),
        # the one who insulted and wants out is no affected person
        ("Ich habe ihn beleidigt, ich will aus der rechten Szene raus", {"audience": "self"}),
    ],
)
def test_what_was_done_to_someone_is_read(text: str, facts: dict[str, str]) -> None:
    from config.i18n import translator
    from handlers.understand import understand

    read = understand(text, translator("de"))
    assert {k: read.get(k) for k in facts} == facts, read
