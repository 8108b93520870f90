"""Drivers for end-to-end journeys: the bot in an App, people and counsellors as nio clients."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    InviteMemberEvent,
    MatrixRoom,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessage,
    RoomPreset,
)
from pydantic import SecretStr

from bot.app import App
from bot.transports.base import Transport
from bot.transports.matrix import MatrixTransport
from config.clock import FakeClock
from config.directory import Directory
from config.settings import MatrixSettings, Settings
from tests.conftest import OFFICE_TIME, make_settings
from tests.fakes.synapse import RegisteredUser, SynapseServer
from tests.matrix.nio_helpers import MEGOLM, logged_in_client, send_text, sync_until

CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")
_NUMBERED = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)


@dataclass
class Peer:
    """A Matrix user in a test: its client and everything others sent it."""

    user: RegisteredUser
    client: AsyncClient
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    invites: list[str] = field(default_factory=list)
    undecrypted: int = 0

    @classmethod
    def attach(cls, user: RegisteredUser, client: AsyncClient) -> Peer:
        peer = cls(user, client)

        async def on_message(room: MatrixRoom, event: RoomMessage) -> None:
            if event.sender != user.user_id:
                peer.events.setdefault(room.room_id, []).append(event.source)

        async def on_megolm(_room: MatrixRoom, _event: MegolmEvent) -> None:
            peer.undecrypted += 1

        async def on_invite(room: MatrixRoom, event: InviteMemberEvent) -> None:
            mine = event.state_key == user.user_id and event.membership == "invite"
            if mine and room.room_id not in peer.invites:
                peer.invites.append(room.room_id)

        client.add_event_callback(on_message, RoomMessage)
        client.add_event_callback(on_megolm, MegolmEvent)
        client.add_event_callback(on_invite, InviteMemberEvent)
        return peer

    @property
    def user_id(self) -> str:
        return self.user.user_id

    def bodies(self, room_id: str) -> list[str]:
        """Plain bodies of what others sent into a room, in order."""
        return [str(e.get("content", {}).get("body", "")) for e in self.events.get(room_id, [])]

    async def say(
        self,
        room_id: str,
        text: str,
        expect: str | Callable[[list[str]], bool],
        *,
        others: Sequence[AsyncClient] = (),
        seconds: float = 20.0,
    ) -> list[str]:
        """Send ``text`` and sync until a new message contains ``expect``; return the new ones."""
        before = len(self.bodies(room_id))
        await send_text(self.client, room_id, text)
        return await self.expect(room_id, expect, before=before, others=others, seconds=seconds)

    async def expect(
        self,
        room_id: str,
        expect: str | Callable[[list[str]], bool],
        *,
        before: int = 0,
        others: Sequence[AsyncClient] = (),
        seconds: float = 20.0,
    ) -> list[str]:
        """Sync until a message after index ``before`` matches; return those messages."""

        def new() -> list[str]:
            return self.bodies(room_id)[before:]

        def done() -> bool:
            got = new()
            return expect(got) if callable(expect) else any(expect in b for b in got)

        await sync_until([self.client, *others], done, seconds=seconds, what=repr(expect))
        return new()

    async def close(self) -> None:
        await self.client.close()


def option(bodies: Sequence[str], label: str) -> str:
    """The number the bot gave the option starting with ``label`` in its last question."""
    for body in reversed(bodies):
        for number, text in _NUMBERED.findall(body):
            if text.startswith(label):
                return str(number)
    raise AssertionError(f"no option {label!r} in {bodies!r}")


async def new_peer(synapse: SynapseServer, name: str, *, displayname: str | None = None) -> Peer:
    """Register a user with a unique name and attach a throw-away client."""
    user = await synapse.register_async(
        f"{name}-{secrets.token_hex(4)}", secrets.token_urlsafe(12), displayname=displayname
    )
    return Peer.attach(user, logged_in_client(synapse.base_url, user))


async def create_room(
    peer: Peer, invite: Sequence[str], *, direct: bool, name: str | None = None
) -> str:
    """An encrypted room created by ``peer``, inviting ``invite``."""
    response = await peer.client.room_create(
        is_direct=direct,
        name=name,
        invite=list(invite),
        preset=RoomPreset.trusted_private_chat if direct else RoomPreset.private_chat,
        initial_state=[MEGOLM],
    )
    assert isinstance(response, RoomCreateResponse), response
    return str(response.room_id)


async def joined(
    peer: Peer, room_id: str, user_id: str, *, others: Sequence[AsyncClient] = ()
) -> None:
    """Sync ``peer`` until ``user_id`` has joined the room (and the room is encrypted)."""

    def ok() -> bool:
        room = peer.client.rooms.get(room_id)
        return bool(
            room and room.encrypted and user_id in room.users and user_id not in room.invited_users
        )

    await sync_until([peer.client, *others], ok, what="the member to join")


async def accept_invite(peer: Peer, *, others: Sequence[AsyncClient] = ()) -> str:
    """Wait for an invite, join it and return the room."""
    await sync_until([peer.client, *others], lambda: bool(peer.invites), what="an invite")
    room_id = peer.invites.pop(0)
    response = await peer.client.join(room_id)
    assert getattr(response, "room_id", None) == room_id, response
    await sync_until(
        [peer.client, *others], lambda: room_id in peer.client.rooms, what="the joined room"
    )
    return room_id


def bot_settings(
    data_dir: Path,
    synapse: SynapseServer,
    bot: RegisteredUser,
    settings: Settings | None = None,
    *,
    reactions: bool = False,
) -> Settings:
    """Settings with fresh keys and the bot's Matrix login (password).

    Reaction shortcuts in people's chats (off by default, several events per question)
    only where a test looks at them.
    """
    settings = settings or make_settings(data_dir)
    settings.matrix = MatrixSettings(
        enabled=True,
        homeserver=synapse.base_url,
        user_id=bot.user_id,
        password=SecretStr(bot.password),
        store_pickle_key=SecretStr(secrets.token_urlsafe(24)),
        reaction_shortcuts=reactions,
    )
    return settings


def matrix_directory(
    directory: Directory,
    counsellor: str,
    staff_room: str,
    *,
    platform: str = "matrix",
) -> Directory:
    """The example directory with the demo counsellor and staff room on ``platform``."""
    data = directory.model_dump(mode="python")
    for p in data["programmes"]:
        for m in p["staff"]:
            if m["accounts"].get("console") == "counsellor":
                m["accounts"] = {**m["accounts"], platform: counsellor}
        if p["staff_rooms"]:
            p["staff_rooms"] = {platform: staff_room}
    return Directory.model_validate(data)


@asynccontextmanager
async def running(
    settings: Settings,
    transports: Sequence[Transport],
    directory: Directory,
    **options: Any,
) -> AsyncIterator[App]:
    """A started App (``options`` go to its constructor); Matrix transports have synced."""
    app = App(
        settings, list(transports), clock=FakeClock(OFFICE_TIME), directory=directory, **options
    )
    await app.start()
    try:
        for t in transports:
            if isinstance(t, MatrixTransport):
                await t.wait_ready()
        yield app
    finally:
        await app.stop()


async def intake_to_case(person: Peer, room_id: str, *, message: str) -> str:
    """Go through the intake by typing numbers and labels; return the case code."""
    got = await person.say(room_id, "/start", "einverstanden")
    got = await person.say(room_id, option(got, "Ja, einverstanden"), "Gefahr")
    got = await person.say(room_id, "Nein", "1. Ich will")  # a label
    got = await person.say(room_id, option(got, "Ich will aus"), "Rechtsextrem")
    got = await person.say(room_id, "rechtsextrem", "Mecklenburg")  # a label, any case
    got = await person.say(room_id, option(got, "Mecklenburg"), "Ludwigslust")
    got = await person.say(room_id, option(got, "Ludwigslust"), "Haft")
    got = await person.say(room_id, "2", "Deutsch")  # prison: 2 = Nein
    got = await person.say(room_id, option(got, "Deutsch"), "Nein, weiter")
    got = await person.say(room_id, message, lambda b: any(CODE.search(x) for x in b))
    found = next(CODE.search(b) for b in got if CODE.search(b))
    assert found is not None
    return found.group()
