"""Red-team review: two programmes configured with the same staff room.

The directory accepts it silently (neither parse_directory, the start-up refusals nor
``check-config``'s flags mention it), and then every counsellor of programme A reads
every case of programme B, and a transfer from A to B keeps sending the case into the
room where A's staff sit (privacy check 17: "after a transfer the old programme
receives 0 messages of the case"; threat 4: a counsellor of A reading B's cases).

What should happen: refuse (or at least flag in check-config and at start-up) a staff
room shared by programmes, unless the operator declares it on purpose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import parse_directory
from config.preflight import directory_flags
from config.settings import Settings
from tests.world import DIRECTORY, World

SHARED = parse_directory(
    DIRECTORY.replace("{memory: alpha-room}", "{memory: shared}").replace(
        "{memory: beta-room}", "{memory: shared}"
    )
)


@pytest.fixture
async def shared(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    transport = MemoryTransport()
    app = App(settings, [transport], clock=clock, directory=SHARED)
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


def test_attack_shared_staff_room_is_flagged() -> None:
    assert any("shared" in f for f in directory_flags(SHARED)), directory_flags(SHARED)


@pytest.mark.xfail(
    strict=True,
    reason="open (issue 10): a shared staff room is flagged, not refused",
)
async def test_attack_after_transfer_old_programme_still_reads_in_a_shared_room(
    shared: World,
) -> None:
    w = shared
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}", room="shared")
    await w.staff("a1", f"/transfer {code} beta", room="shared")
    await w.person("p1", "b:transfer:yes")
    w.t.pop("shared")
    await w.person("p1", "Neue Adresse: Lindenweg 5")
    room = await w.staff("b1", f"/claim {code}", room="shared")
    # alpha's counsellors (a1, a2, ac) sit in "shared": they must read nothing more
    assert "Lindenweg" not in "\n".join(m.text for m in room)
