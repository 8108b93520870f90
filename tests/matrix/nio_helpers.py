"""Small drivers for matrix-nio clients in tests: bounded sync loops, no bare sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomPreset,
    SyncError,
)
from nio.store import SqliteMemoryStore

from tests.fakes.synapse import RegisteredUser

MEGOLM = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


def logged_in_client(
    homeserver: str,
    user: RegisteredUser,
    *,
    config: AsyncClientConfig | None = None,
    store_path: Path | None = None,
) -> AsyncClient:
    """An AsyncClient on an existing device and token; the crypto store is opened here.

    Without a config, the client keeps its crypto state in memory (a throw-away peer).
    """
    if config is None:
        config = AsyncClientConfig(store=SqliteMemoryStore, encryption_enabled=True)
    client = AsyncClient(
        homeserver,
        user.user_id,
        device_id=user.device_id,
        store_path=str(store_path) if store_path else "",
        config=config,
    )
    client.restore_login(user.user_id, user.device_id, user.access_token)
    return client


@dataclass
class Inbox:
    """Collects the room messages a client decrypted and the ones it could not."""

    texts: list[str] = field(default_factory=list)
    undecrypted: list[MegolmEvent] = field(default_factory=list)

    @classmethod
    def attach(cls, client: AsyncClient) -> Inbox:
        inbox = cls()

        async def on_text(_room: Any, event: RoomMessageText) -> None:
            inbox.texts.append(event.body)

        async def on_megolm(_room: Any, event: MegolmEvent) -> None:
            inbox.undecrypted.append(event)

        client.add_event_callback(on_text, RoomMessageText)
        client.add_event_callback(on_megolm, MegolmEvent)
        return inbox

    def settled(self, text: str) -> bool:
        """True once ``text`` arrived decrypted, or anything failed to decrypt."""
        return text in self.texts or bool(self.undecrypted)


#: Synapse's default timeline limit (10) would skip events of a busy room between syncs.
SYNC_FILTER = {"room": {"timeline": {"limit": 200}}}


async def sync_round(client: AsyncClient, long_poll_ms: int = 100) -> None:
    """One sync plus the key housekeeping that ``sync_forever`` would do."""
    response = await client.sync(timeout=long_poll_ms, sync_filter=SYNC_FILTER)
    if isinstance(response, SyncError):
        raise AssertionError(f"sync failed for {client.user_id}: {response}")
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()


async def sync_until(
    clients: Iterable[AsyncClient],
    predicate: Callable[[], bool],
    *,
    seconds: float = 20.0,
    what: str = "condition",
) -> int:
    """Sync all ``clients`` concurrently until ``predicate()``; returns the rounds used."""
    clients = list(clients)
    rounds = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                await asyncio.gather(*(sync_round(c) for c in clients))
                rounds += 1
                if predicate():
                    return rounds
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds} s waiting for {what}") from None


async def open_encrypted_dm(person: AsyncClient, bot: AsyncClient) -> str:
    """The person creates an encrypted DM, invites the bot, the bot joins; returns the room."""
    response = await person.room_create(
        is_direct=True,
        invite=[bot.user_id],
        preset=RoomPreset.trusted_private_chat,
        initial_state=[MEGOLM],
    )
    assert isinstance(response, RoomCreateResponse), response
    room_id: str = response.room_id
    await sync_until([bot], lambda: room_id in bot.invited_rooms, what="the invite")
    joined = await bot.join(room_id)
    assert getattr(joined, "room_id", None) == room_id, joined

    def both_see_both() -> bool:
        bot_room = bot.rooms.get(room_id)
        person_room = person.rooms.get(room_id)
        return (
            bot_room is not None
            and person_room is not None
            and bot_room.encrypted
            and person_room.encrypted
            and bot.user_id in person_room.users
            and person.user_id in bot_room.users
        )

    await sync_until([bot, person], both_see_both, what="both members in the encrypted room")
    return room_id


async def send_text(client: AsyncClient, room_id: str, body: str) -> None:
    """Send an m.text into an encrypted room (sharing the group session as needed)."""
    response = await client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert getattr(response, "event_id", None), response
