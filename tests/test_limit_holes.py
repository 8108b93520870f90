"""Limits without holes (issue 10, observation 4; privacy check 20).

Crisis words, erasure cycles and many accounts cannot turn into more cases than the
caps allow, while crisis numbers still go out to everyone at once; held messages are
capped per case and reach the claimer as one digest; ``/queue`` pages with the total.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.i18n import translator
from config.messages import OutboundMessage
from config.settings import Settings
from handlers.limits import Limits, LimitSettings
from storage.models import Case, Contact, HeldMessage
from tests.conftest import OFFICE_TIME
from tests.world import CODE, World, directory_without, texts

DE = translator("de")
#: Intake answers after consent (alpha: MV, right), without the final message.
QUESTIONS = (
    "b:audience:self",
    "b:scene:right",
    "b:state:MV",
    "b:district:skip",
    "b:prison:no",
    "b:language:de",
)

MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(settings: Settings) -> AsyncIterator[MakeWorld]:
    """Start casework worlds with given limits (stopped at the end of the test)."""
    apps: list[App] = []

    async def make(**limits: Any) -> World:
        clock = FakeClock(OFFICE_TIME)
        transport = MemoryTransport()
        app = App(
            settings,
            [transport],
            clock=clock,
            directory=directory_without(),
            limits=Limits(LimitSettings(**limits)),
        )
        await app.start()
        apps.append(app)
        return World(app, transport, clock)

    yield make
    for app in apps:
        await app.stop()


def crisis_numbers(msgs: list[OutboundMessage]) -> bool:
    return any(m.urgent and ("110" in m.text or "112" in m.text) for m in msgs)


async def test_crisis_word_over_the_newcomer_limit_gets_numbers_and_no_contact(
    make_world: MakeWorld,
) -> None:
    w: World = await make_world(new_contacts_burst=1, new_contacts_per_second=0.0001)
    await w.person("first", "/start")  # takes the one newcomer token
    assert await w.count(Contact) == 1
    got = await w.person("second", "Ich will mich umbringen")
    assert crisis_numbers(got)
    assert got[0].urgent  # the numbers come first
    assert DE("limits.busy") in texts(got)
    assert await w.count(Contact) == 1  # no contact was created for it


async def test_check_20_forty_threat_accounts_cannot_pass_the_urgent_cap(
    make_world: MakeWorld,
) -> None:
    w: World = await make_world(
        cases_per_programme_per_hour=10, urgent_cases_per_programme_per_hour=3
    )
    refused = 0
    for i in range(40):
        # Danger typed at the safety question opens an urgent case at once (issue 11).
        got = await w.person(f"threat{i}", "/start", "b:consent:yes", "Sie wollen mich umbringen")
        assert crisis_numbers(got), i  # everyone gets the numbers at once
        if CODE.search(texts(got)) is None:
            refused += 1
            assert DE("limits.case_cap") in texts(got)
            assert crisis_numbers(got)  # refused, but the numbers again
    # No region known yet: every urgent case goes to the same fallback programme.
    urgent = await w.count(Case, Case.urgent.is_(True))
    assert urgent == 3
    assert refused == 37
    # A genuine newcomer still finds room: urgent cases have their own cap.
    code = await w.open("genuine")
    assert not (await w.case(code)).urgent


async def test_check_20_cycling_account_cannot_fill_the_programme_cap(
    make_world: MakeWorld,
) -> None:
    w: World = await make_world(
        cases_per_programme_per_hour=5, cases_per_account=2, person_burst=1000
    )
    opened = 0
    for _ in range(6):
        got = await w.person("cycler", "/start", "b:consent:yes", "b:safety:no", *QUESTIONS)
        got = await w.person("cycler", "b:message:skip")
        if CODE.search(texts(got)):
            opened += 1
        else:
            assert DE("limits.account_cap") in texts(got)
        await w.person("cycler", "/delete", "b:delete:yes")
        assert await w.count(Contact) == 0  # the erasure itself still works
    assert opened == 2  # /delete does not reset the account's counter
    assert await w.count(Case, Case.programme_id == "alpha") == 2
    code = await w.open("genuine")  # the programme's hourly cap is not filled
    assert (await w.case(code)).programme_id == "alpha"


async def test_held_messages_are_capped_and_the_claim_posts_one_digest(
    make_world: MakeWorld,
) -> None:
    w: World = await make_world(person_burst=5000, held_messages_per_case=20)
    code = await w.open("p1", message="Nachricht 0")
    told = 0
    for i in range(1, 1001):
        await w.t.push("p1", f"Nachricht {i}")
        told += texts(w.t.pop("p1")).count(DE("limits.held_full"))
    assert told == 1  # told kindly, once
    assert await w.count(HeldMessage) == 20
    w.t.pop("alpha-room")
    room = await w.staff("a1", f"/claim {code}")
    [digest] = [m for m in room if "Nachricht 0" in m.text]
    assert len(room) == 2  # "claimed" and ONE digest, not 1,002 messages
    assert "Nachricht 19" in digest.text
    assert "Nachricht 20" not in digest.text
    assert await w.count(HeldMessage) == 0


async def test_held_messages_are_capped_in_size(make_world: MakeWorld) -> None:
    w: World = await make_world(person_burst=5000, held_bytes_per_case=10_000)
    code = await w.open("p1")
    for i in range(40):
        await w.t.push("p1", f"{i:02d} " + "x" * 3_900)
    assert DE("limits.held_full") in texts(w.t.pop("p1"))
    assert await w.count(HeldMessage) == 2
    w.t.pop("alpha-room")
    room = await w.staff("a1", f"/claim {code}")
    assert sum(len(m.text) for m in room) < 10_000
    assert len(room) == 2


async def test_queue_says_the_total_and_pages(world: World) -> None:
    w = world
    codes = [await w.open(f"p{i}") for i in range(25)]
    w.t.pop("alpha-room")
    first = texts(await w.staff("a1", "/queue"))
    assert "25" in first.splitlines()[0]
    assert DE("staff.queue.page", page=1, pages=3, next=2) in first
    seen = set(CODE.findall(first))
    for page in (2, 3):
        seen |= set(CODE.findall(texts(await w.staff("a1", f"/queue {page}"))))
    assert seen == set(codes)  # nothing hidden
    last = texts(await w.staff("a1", "/queue 3"))
    assert len(set(CODE.findall(last))) == 5


def test_account_counter_outlives_erasure_and_is_forgotten_after_its_window() -> None:
    limits = Limits(LimitSettings(cases_per_account=2, account_window=100.0))
    assert limits.case_refusal("alpha", "acc", 0.0, urgent=False) is None
    assert limits.case_refusal("alpha", "acc", 1.0, urgent=True) is None
    assert limits.case_refusal("alpha", "acc", 2.0, urgent=False) == "limits.account_cap"
    assert limits.case_refusal("alpha", "acc", 100.5, urgent=False) is None  # first one aged out
    limits.case_refusal("alpha", "other", 500.0, urgent=False)
    assert len(limits.accounts) == 1  # "acc" is not kept past its window


def test_urgent_and_ordinary_cases_have_separate_caps() -> None:
    limits = Limits(
        LimitSettings(cases_per_programme_per_hour=1, urgent_cases_per_programme_per_hour=1)
    )
    assert limits.allow_case("alpha", 0.0, urgent=True)
    assert not limits.allow_case("alpha", 1.0, urgent=True)
    assert limits.allow_case("alpha", 2.0)
    assert not limits.allow_case("alpha", 3.0)
    assert limits.allow_case("alpha", 3601.0, urgent=True)
