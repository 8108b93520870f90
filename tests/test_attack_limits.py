"""Red-team review of issue 10 observation 4 / privacy check 20: the caps hold, but
whom they shut out in a crisis, and whether anyone notices."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.settings import Settings
from handlers.limits import Limits, LimitSettings
from tests.world import World, directory_without, texts


@pytest.fixture
async def free(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """Default caps, but no per-person message rate (a test types faster than people)."""
    transport = MemoryTransport()
    limits = Limits(LimitSettings(person_burst=1000))
    app = App(settings, [transport], clock=clock, directory=directory_without(), limits=limits)
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


SUICIDE = "Ich will mich umbringen"


async def test_attack_genuine_crisis_after_own_delete_cycles_reaches_no_one(
    free: World,
) -> None:
    """A person whose phone may be checked by the scene does what the bot advises:
    /delete after each conversation. After three cases in a day they are in crisis and
    press "contact me now": the account cap refuses, the numbers go out (this holds), but
    no case opens and no counsellor or coordinator hears of it.

    What should happen: the account cap keeps a flood of ordinary cases out, but an urgent
    request over the account cap still reaches staff (e.g. counted against the urgent cap
    only, or at least an alert with the category to the coordinator)."""
    w = free
    for _ in range(3):
        await w.open("p1")
        await w.person("p1", "/delete", "b:delete:yes")
    w.t.pop("alpha-room")
    w.t.pop("beta-room")
    got = await w.person("p1", "/start", SUICIDE, "b:crisis:contact:suicide")
    assert any(m.urgent for m in got), "numbers (this holds)"
    staff = w.t.pop("alpha-room") + w.t.pop("beta-room")
    assert staff, "no one on the staff side hears of a person in crisis: " + texts(got)


async def test_attack_ten_fake_urgent_requests_shut_out_the_next_real_one(world: World) -> None:
    """Ten throwaway accounts each write one suicide sentence and press "contact me now"
    (no region given, so all go to the fallback programme). The eleventh, a real person,
    gets the numbers and "very many people are contacting this service"; no case, and no
    one on the staff side learns that the urgent cap is being hit.

    What should happen: when the urgent cap refuses, the coordinator(s) are alerted once
    (count and category, no text) so they can see the flood and take the real one; or an
    urgent request over the cap goes to the coordination office / next fallback."""
    w = world
    for i in range(10):
        await w.person(f"fake{i}", "/start", SUICIDE, "b:crisis:contact:suicide")
    w.t.pop("alpha-room")
    w.t.pop("beta-room")
    got = await w.person("real", "/start", SUICIDE, "b:crisis:contact:suicide")
    assert any(m.urgent for m in got), "numbers (this holds)"
    staff = w.t.pop("alpha-room") + w.t.pop("beta-room")
    assert staff, "the urgent cap refused silently: " + texts(got)


@pytest.fixture
async def tight(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    transport = MemoryTransport()
    limits = Limits(LimitSettings(person_burst=2, person_per_second=0.0001))
    app = App(settings, [transport], clock=clock, directory=directory_without(), limits=limits)
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


async def test_attack_crisis_words_turn_the_rate_limit_into_an_amplifier(tight: World) -> None:
    """Over the per-person rate, every message with a crisis word still gets a full crisis
    reply (router._limited), without any per-person bound. 50 accounts sending threat
    words as fast as they can each get one reply per message, which fills the bot's
    global outbound budget (Telegram: about 30 messages/s) and delays everyone else's
    replies (privacy check 11) - the limit meant to shed load now produces it.

    What should happen: a limited account gets the numbers once per notice interval
    (the numbers were just sent; repeating them in a burst helps no one), crisis replies
    keep priority for accounts that are not flooding."""
    w = tight
    await w.person("p1", "hallo", "hallo", "hallo")
    got = await w.person("p1", *["die stehen vor meiner tür"] * 20)
    crisis = [m for m in got if m.urgent]
    assert len(crisis) <= 2, f"{len(crisis)} crisis replies to one flooding account"
