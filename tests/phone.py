"""A phone for end-to-end tests: the example directory on the memory transport (SQLite),
recording every message that reached a person's chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory, load_directory
from config.messages import OutboundMessage
from config.settings import EXAMPLE_DIRECTORY
from tests.conftest import OFFICE_TIME, make_settings, memory_directory

EXAMPLE = load_directory(EXAMPLE_DIRECTORY)


class Phone:
    """The example directory on the memory transport; records what people's phones got."""

    def __init__(self, app: App, transport: MemoryTransport) -> None:
        self.app, self.t = app, transport
        self.people: set[str] = set()

    async def say(self, who: str, text: str = "", locale: str = "de", **kw: object) -> str:
        self.people.add(who)
        await self.t.push(who, text, locale=locale, **kw)  # type: ignore[arg-type]
        return "\n".join(m.text for m in self.t.pop(who))

    async def press(self, who: str, data: str, locale: str = "de") -> str:
        return await self.say(who, button=data, locale=locale)

    async def staff(self, who: str, text: str) -> str:
        await self.t.push(who, text, chat="staff", group=True)
        return "\n".join(m.text for m in self.t.pop("staff"))

    def to_people(self) -> list[OutboundMessage]:
        return [m for m in self.t.sent if m.address.chat_id in self.people and m.text]


async def start(tmp_path: Path, directory: Directory = EXAMPLE) -> tuple[App, MemoryTransport]:
    transport = MemoryTransport()
    app = App(
        make_settings(tmp_path / "data"),
        [transport],
        clock=FakeClock(OFFICE_TIME),
        directory=memory_directory(directory),
    )
    await app.start()
    return app, transport


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[Phone]:
    app, transport = await start(tmp_path)
    try:
        yield Phone(app, transport)
    finally:
        await app.stop()


async def intake(p: Phone, who: str, *answers: str, message: str | None, locale: str = "de") -> str:
    await p.say(who, "/start", locale)
    await p.press(who, "consent:yes", locale)
    await p.press(who, "safety:no", locale)
    for answer in answers:
        await p.press(who, answer, locale)
    if message is None:
        return await p.press(who, "message:skip", locale)
    return await p.say(who, message, locale)
