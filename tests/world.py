"""A small world for casework tests: two programmes, counsellors, people on the memory
transport, and helpers to act as each (shared by the casework and privacy tests)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory, parse_directory
from config.messages import OutboundMessage
from config.settings import Settings
from storage.models import Case

#: A scheduler window that keeps every follow-up in memory (tests about removing jobs).
LONG_WINDOW = timedelta(days=400)

CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")
HOURS = (
    '{timezone: Europe/Berlin, holidays_state: MV, weekly: {mon: ["09:00-17:00"], '
    'tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], '
    'fri: ["09:00-17:00"]}}'
)
DIRECTORY = f"""
fallback: [beta]
programmes:
  - id: alpha
    name: Alpha MV
    kind: exit
    scenes: [right]
    audiences: [self, relative]
    states: [MV]
    response_time_hours: 24
    office_hours: {HOURS}
    description: {{de: Alpha hilft beim Ausstieg., en: Alpha helps people leave.}}
    canned:
      hello: {{de: "Schön, dass du schreibst.", en: "Good that you write."}}
    staff:
      - {{id: a1, alias: Alex, accounts: {{memory: a1}}}}
      - {{id: a2, alias: Sam, accounts: {{memory: a2}}}}
      - {{id: ac, alias: Kim, role: coordinator, accounts: {{memory: ac}}}}
    staff_rooms: {{memory: alpha-room}}
  - id: beta
    name: Beta NRW
    kind: exit
    scenes: [left, right]
    audiences: [self, relative]
    states: [NW]
    response_time_hours: 48
    description: {{de: Beta hilft in NRW., en: Beta helps in NRW.}}
    staff:
      - {{id: b1, alias: Robin, accounts: {{memory: b1}}}}
    staff_rooms: {{memory: beta-room}}
"""


def directory_without(member: str | None = None) -> Directory:
    text = DIRECTORY
    if member:
        text = "\n".join(line for line in text.splitlines() if f"id: {member}," not in line)
    return parse_directory(text)


class World:
    """The app plus helpers to act as people and counsellors."""

    def __init__(self, app: App, transport: MemoryTransport, clock: FakeClock) -> None:
        self.app, self.t, self.clock = app, transport, clock

    async def person(self, who: str, *steps: str, locale: str = "de") -> list[OutboundMessage]:
        for step in steps:
            if step.startswith("b:"):
                await self.t.push(who, button=step[2:], locale=locale)
            else:
                await self.t.push(who, step, locale=locale)
        return self.t.pop(who)

    async def open(
        self,
        who: str,
        state: str = "MV",
        scene: str = "right",
        locale: str = "de",
        message: str | None = None,
    ) -> str:
        steps = [
            "/start",
            "b:consent:yes",
            "b:safety:no",
            "b:audience:self",
            f"b:scene:{scene}",
            f"b:state:{state}",
        ]
        if state == "MV":
            steps.append("b:district:skip")
        steps += ["b:prison:no", "b:language:de"]
        steps.append(message if message else "b:message:skip")
        got = await self.person(who, *steps, locale=locale)
        code = CODE.search("\n".join(m.text for m in got))
        assert code is not None, [m.text for m in got]
        return code.group()

    async def staff(
        self,
        who: str,
        text: str = "",
        room: str = "alpha-room",
        button: str | None = None,
        thread: str | None = None,
    ) -> list[OutboundMessage]:
        await self.t.push(who, text, button=button, chat=room, group=True, thread=thread)
        return self.t.pop(room)

    async def count(self, model: type, *where: Any) -> int:
        assert self.app.db is not None
        async with self.app.db.transaction() as s:
            return int(
                (
                    await s.execute(select(func.count()).select_from(model).where(*where))
                ).scalar_one()
            )

    async def case(self, code: str) -> Case:
        assert self.app.db is not None
        async with self.app.db.transaction() as s:
            return (await s.execute(select(Case).where(Case.code == code))).scalar_one()


def texts(msgs: list[OutboundMessage]) -> str:
    return "\n".join(m.text for m in msgs)


@pytest.fixture
async def world(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    transport = MemoryTransport()
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()
