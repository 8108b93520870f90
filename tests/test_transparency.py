"""Transparency before consent (issue 12 part 4), end to end through the memory transport.

Before consent the person learns who runs the bot (controller, data-protection contact,
the full notice), the right to complain, and everything a case keeps in clear - the list
derived from the ``cases`` table. Before a case goes to a programme run by a state
authority the person is told in one sentence and chooses: continue, another programme
routing also accepts, or contact details only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.app import App
from bot.transports.memory import MemoryTransport
from config import lockscreen
from config.clock import FakeClock
from config.directory import Directory, parse_directory
from config.i18n import translator
from config.messages import OutboundMessage
from config.settings import (
    DEMO_OPERATOR,
    ConfigError,
    CryptoSettings,
    OperatorSettings,
    Settings,
    new_key,
)
from handlers.transparency import case_columns
from storage.models import Case, Contact, HeldMessage
from tests.conftest import OFFICE_TIME, OPERATOR, make_settings, process_env
from tests.phone import EXAMPLE, Phone, intake, start

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")
NAMES = lockscreen.names_of(EXAMPLE)
LEFT = ("audience:self", "scene:left", "state:NW", "prison:no", "language:de")
JUMP = ("audience:self", "scene:right", "state:MV", "district:skip", "prison:no", "language:de")


async def count(app: App, model: type, *where: object) -> int:
    assert app.db is not None
    async with app.db.transaction() as s:
        return int(
            (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
        )


def button_data(msgs: list[OutboundMessage]) -> list[str]:
    return [b.data for m in msgs for row in m.buttons for b in row]


# ------------------------------------------------------------------ before consent


@pytest.mark.parametrize("locale", ["de", "en"])
async def test_notice_before_consent_names_controller_contact_complaint_and_case_fields(
    phone: Phone, locale: str
) -> None:
    t = translator(locale)
    await phone.t.push("n", "hallo", locale=locale)
    got = phone.t.pop("n")
    notice = next(m for m in got if "consent:yes" in button_data([m]))
    # who runs the bot, where to ask, where the full notice is - before any consent
    assert OPERATOR.name
    assert OPERATOR.name in notice.text
    assert OPERATOR.privacy_contact
    assert OPERATOR.privacy_contact in notice.text
    assert OPERATOR.privacy_url
    assert OPERATOR.privacy_url in notice.text
    complaint = {"de": "Datenschutz-Aufsichtsbehörde beschweren", "en": "right to complain"}
    assert complaint[locale] in notice.text
    authority = {"de": "staatlichen Behörde", "en": "state authority"}
    assert authority[locale] in notice.text  # told that some services are authorities
    # the short notice says in one line what a case keeps and where the full list is;
    # every column of a stored case, in the reader's words, is in "more" (a new column
    # without a label shows up as its raw key there and fails)
    summary = {"de": "Ein Fall hält ohne Namen", "en": "A case keeps"}
    assert summary[locale] in notice.text
    await phone.t.push("n", button="consent:more", locale=locale)
    details = "\n".join(m.text for m in phone.t.pop("n"))
    for column in case_columns():
        label = t(f"privacy.field.{column}")
        assert label != f"privacy.field.{column}", f"cases.{column} has no label in {locale}"
        assert label in details, column
    assert {c.name for c in Case.__table__.columns} == set(case_columns())
    # nothing stored yet but the conversation step; no case
    assert await count(phone.app, Case) == 0
    assert lockscreen.problems(notice.text, locale, NAMES) == []


async def test_more_details_name_controller_and_complaint_right(phone: Phone) -> None:
    await phone.say("m", "hallo")
    details = await phone.press("m", "consent:more")
    assert OPERATOR.name
    assert OPERATOR.name in details
    assert OPERATOR.privacy_url
    assert OPERATOR.privacy_url in details
    assert "Beschwerde bei einer Datenschutz-Aufsichtsbehörde" in details
    t = translator("de")
    assert all(t(f"privacy.field.{c}") in details for c in case_columns())


def test_the_case_field_list_cannot_fall_behind_the_model() -> None:
    """The labels come from the table: an unlabelled column would be shown as a raw key
    (and the notice test fails), so the text cannot silently list less than is stored."""
    t = translator("de")
    shown = [t(f"privacy.field.{c}") for c in case_columns()]
    assert t("privacy.field.new_column") == "privacy.field.new_column"  # how a gap shows
    assert all(not s.startswith("privacy.field.") for s in shown)
    for old_gap in ("district", "in_prison", "urgent"):  # stored, once not in the notice
        assert old_gap in case_columns()


# ------------------------------------------------------------------ production settings


def settings_without(**operator: str | None) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        mode="production",
        crypto=CryptoSettings(
            master_keys={1: SecretStr(new_key())}, pseudonym_keys={1: SecretStr(new_key())}
        ),
        operator=OperatorSettings(**{**OPERATOR.model_dump(), **operator}),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", None),
        ("privacy_contact", None),
        ("privacy_url", None),
        ("name", "changeme"),
        ("privacy_contact", DEMO_OPERATOR.privacy_contact),
        ("privacy_url", "http://insecure.example/notice"),
    ],
)
def test_production_refuses_missing_or_placeholder_controller(
    field: str, value: str | None
) -> None:
    with pytest.raises(ConfigError, match=f"operator.{field}"):
        settings_without(**{field: value}).check_operator()


def test_complete_controller_passes_and_demo_shows_marked_demo_values() -> None:
    settings_without().check_operator()
    demo = settings_without(name=None, privacy_contact=None, privacy_url=None)
    demo.mode = "demo"
    demo.check_operator()
    assert demo.controller() == DEMO_OPERATOR
    assert all("DEMO" in str(v) for v in DEMO_OPERATOR.model_dump().values())


async def test_app_does_not_start_without_controller(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    settings.operator = OperatorSettings()
    app = App(settings, [MemoryTransport()], clock=FakeClock(OFFICE_TIME), directory=EXAMPLE)
    with pytest.raises(ConfigError, match="AUSWEG_OPERATOR__NAME"):
        await app.start()
    assert app.db is None  # refused before any database was opened


def test_run_refuses_to_start_without_controller(tmp_path: Path) -> None:
    env = process_env(
        tmp_path,
        AUSWEG_TELEGRAM__ENABLED="true",
        AUSWEG_TELEGRAM__TOKEN="123456:" + "A" * 35,
    )
    env = {k: v for k, v in env.items() if not k.startswith("AUSWEG_OPERATOR__")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "AUSWEG_OPERATOR__NAME" in proc.stderr
    assert not (tmp_path / "data" / "ready").exists()


# ------------------------------------------------------------------ the authority choice


async def test_authority_notice_before_anything_goes_there(phone: Phone) -> None:
    p = phone
    await intake(p, "x", *LEFT, message="Ich will raus.")
    left = EXAMPLE.by_id["left-nrw"]
    notice = [m for m in p.t.sent if m.address.chat_id == "x"][-1]
    assert left.operator_name
    assert left.operator_name in notice.text
    assert left.name in notice.text
    assert lockscreen.problems(notice.text, "de", NAMES) == []  # not on the lock screen
    assert button_data([notice]) == [
        "authority:continue",
        "authority:alternative",  # the operator's first-contact team also takes this
        "authority:contacts",
        "cmd:back",
    ]
    assert "Ausweg-Clearingstelle" in notice.text
    # nothing has gone anywhere yet: no case, nothing in a staff room
    assert await count(p.app, Case) == 0
    assert p.t.pop("staff") == []


async def test_continue_opens_the_case_with_the_message(phone: Phone) -> None:
    p = phone
    await intake(p, "c", *LEFT, message="Ich will raus.")
    assert p.t.pop("staff") == []
    text = await p.press("c", "authority:continue")
    assert await count(p.app, Case, Case.programme_id == "left-nrw") == 1
    assert await count(p.app, HeldMessage) == 1  # the message waited for the choice
    code = CODE.search(text)
    assert code is not None
    assert any(code.group() in m.text for m in p.t.pop("staff"))  # now announced


async def test_alternative_opens_the_case_elsewhere(phone: Phone) -> None:
    p = phone
    await intake(p, "a", *LEFT, message="Ich will raus.")
    text = await p.press("a", "authority:alternative")
    assert await count(p.app, Case, Case.programme_id == "left-nrw") == 0
    assert await count(p.app, Case, Case.programme_id == "clearing") == 1
    assert "Fallcode" in text
    assert translator("de")("route.step.chosen") in text  # not "nothing fits your region"
    assert await count(p.app, HeldMessage) == 1
    assert await count(p.app, Case, Case.route_step == "chosen") == 1


async def test_contacts_only_shows_the_paths_and_keeps_nothing(phone: Phone) -> None:
    p = phone
    await intake(p, "k", *LEFT, message="Ich will raus.")
    text = await p.press("k", "authority:contacts")
    assert "Telefon 0173 5146734" in text
    assert "info@extremismus-praevention.de" in text
    assert "nicht weitergegeben" in text  # the typed message was not passed on
    assert await count(p.app, Case) == 0
    assert await count(p.app, Contact) == 0
    assert await count(p.app, HeldMessage) == 0


async def test_back_and_typed_choices(phone: Phone) -> None:
    p = phone
    await intake(p, "b", *LEFT, message=None)
    asked = await p.say("b", "zurück")
    assert translator("de")("message.question") in asked
    await p.press("b", "message:skip")
    again = await p.say("b", "vielleicht")
    assert translator("de")("error.not_understood") in again
    assert translator("de")("authority.question") in again  # asked again
    assert await count(p.app, Case) == 0
    await p.say("b", translator("de")("authority.button.continue"))
    assert await count(p.app, Case, Case.programme_id == "left-nrw") == 1


async def test_no_authority_notice_for_other_programmes(phone: Phone) -> None:
    p = phone
    await intake(p, "j", *JUMP, message="Ich will raus.")
    sent = [m for m in p.to_people() if m.address.chat_id == "j"]
    assert not any(d.startswith("authority:") for d in button_data(sent))
    assert await count(p.app, Case, Case.programme_id == "jump") == 1


NO_ALTERNATIVE = """
fallback: [amt]
programmes:
  - id: amt
    name: Amt-Programm
    operator: {kind: state_authority, name: Landesamt Beispiel}
    kind: exit
    scenes: [left]
    audiences: [self]
    states: [NW]
    contact: {phone: "0211 000000"}
    description: {de: Ein Programm., en: A programme.}
    staff:
      - {id: amt-1, alias: Jo, accounts: {console: counsellor}}
    staff_rooms: {console: staff}
  - id: verein
    name: Verein-Beratung
    kind: exit
    scenes: [left]
    audiences: [self]
    states: [NW]
    description: {de: Ein Verein., en: An association.}
"""


@pytest.fixture
async def no_alternative(tmp_path: Path) -> AsyncIterator[Phone]:
    directory: Directory = parse_directory(NO_ALTERNATIVE)
    app, transport = await start(tmp_path, directory)
    try:
        yield Phone(app, transport)
    finally:
        await app.stop()


async def test_no_alternative_button_when_no_other_programme_takes_chats(
    no_alternative: Phone,
) -> None:
    p = no_alternative
    await intake(p, "n", *LEFT, message=None)
    last = p.t.sent[-1]
    assert button_data([last]) == ["authority:continue", "authority:contacts", "cmd:back"]
    assert "Landesamt Beispiel" in last.text
    assert "nicht zu einer Behörde" not in last.text
    # a pressed alternative that is not offered is not taken
    await p.press("n", "authority:alternative")
    assert await count(p.app, Case) == 0
    await p.press("n", "authority:contacts")
    assert "0211 000000" in "\n".join(m.text for m in p.to_people())
    assert await count(p.app, Case) == 0


async def test_transfer_to_an_authority_programme_says_so_before_the_person_agrees(
    phone: Phone,
) -> None:
    p = phone
    text = await intake(p, "t", *JUMP, message="Ich will raus.")
    code = CODE.search(text)
    assert code is not None
    await p.staff("counsellor", f"/claim {code.group()}")
    p.t.pop("t")
    await p.staff("counsellor", f"/transfer {code.group()} left-nrw")
    ask = p.t.pop("t")[-1]
    left = EXAMPLE.by_id["left-nrw"]
    assert "transfer:yes" in button_data([ask])
    assert str(left.operator_name) in ask.text
    assert translator("de")("authority.part.transfer", programme="", authority="")[:12] in ask.text


async def test_delete_cancelled_at_the_choice_asks_the_choice_again(phone: Phone) -> None:
    p = phone
    await intake(p, "d", *LEFT, message=None)
    await p.say("d", "/delete")
    await p.press("d", "delete:no")
    again = p.t.sent[-1]
    assert "authority:continue" in button_data([again])
    assert await count(p.app, Contact) == 1


REFERRAL_THEN_AUTHORITY = """
fallback: [amt]
programmes:
  - id: verein
    name: Verein-Beratung
    kind: exit
    scenes: [right]
    audiences: [self]
    states: [NW]
    contact: {web: www.verein.example}
    description: {de: Ein Verein., en: An association.}
  - id: amt
    name: Amt-Team
    operator: {kind: state_authority, name: Landesamt Beispiel}
    kind: clearing
    audiences: [self, relative, professional, affected]
    states: [DE]
    description: {de: Ein Team., en: A team.}
    staff:
      - {id: amt-1, alias: Jo, accounts: {console: counsellor}}
    staff_rooms: {console: staff}
"""


async def test_chat_instead_of_a_referral_is_announced_when_the_team_is_an_authority(
    tmp_path: Path,
) -> None:
    app, transport = await start(tmp_path, parse_directory(REFERRAL_THEN_AUTHORITY))
    p = Phone(app, transport)
    try:
        right = ("audience:self", "scene:right", "state:NW", "prison:no", "language:de")
        await intake(p, "r", *right, message=None)
        assert "www.verein.example" in "\n".join(m.text for m in p.to_people())
        await p.press("r", "referred:chat")
        notice = p.t.sent[-1]
        assert "Landesamt Beispiel" in notice.text
        assert button_data([notice]) == ["authority:continue", "authority:contacts", "cmd:back"]
        assert await count(app, Case) == 0
        assert translator("de")("referred.again") in await p.say("r", "zurück")
        await p.press("r", "referred:chat")
        await p.press("r", "authority:continue")
        assert await count(app, Case, Case.programme_id == "amt") == 1
    finally:
        await app.stop()


async def test_crisis_words_at_the_choice_get_the_numbers_first_and_no_case(
    phone: Phone,
) -> None:
    p = phone
    await intake(p, "s", *LEFT, message=None)
    await p.t.push("s", "Ich will mich umbringen", locale="de")
    got = p.t.pop("s")
    assert got[0].urgent
    assert got[0].text == translator("de")("crisis.suicide")  # the reply fits the category
    assert "authority:continue" in button_data(got[1:])  # the same choice again
    assert await count(p.app, Case) == 0
    assert await count(p.app, Contact, Contact.urgent.is_(True)) == 1
    await p.press("s", "authority:continue")
    assert await count(p.app, Case, Case.urgent.is_(True)) == 1


async def test_language_switch_at_the_choice_repeats_it_in_the_new_language(
    phone: Phone,
) -> None:
    p = phone
    await intake(p, "l", *LEFT, message=None)
    await p.say("l", "/language en")  # a bare /language offers all six
    again = p.t.sent[-1]
    assert again.text.endswith(translator("en")("authority.question"))
    assert "authority:continue" in button_data([again])
