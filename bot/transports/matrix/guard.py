"""Who may be in, and read, the rooms the bot keeps for staff (privacy check 17).

* Power levels: in case and team rooms the bot creates, only the bot may invite,
  kick, ban, redact others' events or change any state (power levels included);
  staff may write (level 0). :func:`power_levels` is the creation override,
  :func:`tightened` repairs rooms created before (where the bot has the power).
* Room keys: :func:`share_keys` shares a new Megolm session with the devices of the
  allowed accounts only (matrix-nio's ``share_group_session`` shares with every
  device of every member, joined or invited).
* :func:`outsiders`: members (joined or invited) of a room who are not allowed there,
  from nio's in-memory room state (no server round trip on the hot path).

Pure helpers plus one nio call sequence; no identifiers are logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any, Final
from uuid import uuid4

from nio import AsyncClient, MatrixRoom, ShareGroupSessionResponse
from nio.api import Api

__all__ = [
    "BOT_LEVEL",
    "creator_power",
    "differs",
    "outsiders",
    "power_levels",
    "share_keys",
    "tightened",
]

#: The bot's own level; every privileged action needs it.
BOT_LEVEL: Final = 100
#: State events named explicitly (``state_default`` covers the rest).
_STATE_EVENTS: Final = (
    "m.room.power_levels",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.history_visibility",
    "m.room.join_rules",
    "m.room.guest_access",
    "m.room.canonical_alias",
    "m.room.server_acl",
    "m.room.tombstone",
    "m.room.pinned_events",
    "m.space.child",
    "m.space.parent",
    "im.vector.modular.widgets",
)
_LEVEL_KEYS: Final = ("invite", "kick", "ban", "redact", "state_default")


def power_levels() -> dict[str, Any]:
    """``m.room.power_levels`` content for a new room: only the creator (the bot) is
    privileged, everyone else is at 0 and may only write.

    ``users`` is left out on purpose: the homeserver puts the creator at 100 (room
    versions up to 11) or gives creators unlimited power and refuses them in ``users``
    (version 12). Staff keep what a conversation needs: messages, reactions, redacting
    their own events (``m.room.redaction`` at 0; ``redact`` guards others' events).
    """
    events: dict[str, int] = dict.fromkeys(_STATE_EVENTS, BOT_LEVEL)
    events.update({"m.room.redaction": 0, "m.reaction": 0})
    return {
        "users_default": 0,
        "events_default": 0,
        "events": events,
        "notifications": {"room": BOT_LEVEL},
        **dict.fromkeys(_LEVEL_KEYS, BOT_LEVEL),
    }


def _level(content: dict[str, Any], user: str) -> int:
    users = content.get("users")
    value = users.get(user) if isinstance(users, dict) else None
    if value is None:
        value = content.get("users_default", 0)
    return int(value) if isinstance(value, int | str) and str(value).lstrip("-").isdigit() else 0


def creator_power(create: dict[str, Any]) -> bool:
    """Whether a room's creators have unlimited power (room version 12 and its drafts)."""
    version = str(create.get("room_version", "1"))
    return version == "12" or version.startswith("org.matrix.hydra")


def tightened(
    current: dict[str, Any], bot_user: str, *, creator: bool = False
) -> dict[str, Any] | None:
    """The repaired power levels of an existing room, or None when the bot may not
    change them (its level is below the one needed for ``m.room.power_levels``).

    Accounts at or above the bot's level keep it (the homeserver would refuse to
    lower them). ``creator``: the bot created a room whose creators have unlimited
    power (it is then not listed in ``users``).
    """
    if creator:
        wanted = power_levels()
        wanted["users"] = {}
        return wanted
    mine = _level(current, bot_user)
    raw_events = current.get("events")
    events: dict[str, Any] = raw_events if isinstance(raw_events, dict) else {}
    needed = events.get("m.room.power_levels", current.get("state_default", 50))
    if not isinstance(needed, int) or mine < needed:
        return None
    wanted = power_levels()
    raw_users = current.get("users")
    users: dict[str, Any] = raw_users if isinstance(raw_users, dict) else {}
    peers = {u: v for u, v in users.items() if u != bot_user and isinstance(v, int) and v >= mine}
    wanted["users"] = {bot_user: mine, **peers}
    for key in (*_LEVEL_KEYS, "notifications"):
        if key in wanted and isinstance(wanted[key], int):
            wanted[key] = min(wanted[key], mine)
    wanted["events"] = {k: min(v, mine) for k, v in wanted["events"].items()}
    return wanted


def differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether ``current`` power levels are not yet ``wanted`` (extra keys are kept)."""
    return any(current.get(k) != v for k, v in wanted.items())


def outsiders(room: MatrixRoom, allowed: Collection[str]) -> list[str]:
    """Members (joined or invited) who are not in ``allowed``, sorted."""
    return sorted(u for u in room.users if u not in allowed)


async def share_keys(client: AsyncClient, room_id: str, allowed: Collection[str] | None) -> None:
    """Share a new outbound group session with the devices of ``allowed`` members only.

    ``allowed=None`` means every member (a person's own chat). Follows nio's
    ``share_group_session`` (claim missing Olm sessions, encrypt the room key per
    device, send to-device messages, mark the session shared), but with the user list
    filtered first: a device of an account that is not allowed never gets the key,
    whatever its verification state. Unverified devices of allowed accounts do get it
    (a counsellor's new phone must be able to read).

    Raises:
        Exception: a request failed (the caller starts a new session next time).
    """
    olm = client.olm
    if olm is None:
        return
    room = client.rooms[room_id]
    users = [u for u in room.users if allowed is None or u in allowed]
    missing = olm.get_missing_sessions(users)
    if missing:
        await client.keys_claim(missing)
    requests = []
    for sharing_with, to_device in olm.share_group_session_parallel(
        room_id, users, ignore_unverified_devices=True
    ):
        method, path, data = Api.to_device(
            client.access_token, "m.room.encrypted", to_device, uuid4()
        )
        requests.append(
            client._send(
                ShareGroupSessionResponse, method, path, data, response_data=(room_id, sharing_with)
            )
        )
    # The session whose key went out: if it is replaced meanwhile (a member left, an
    # outage), the new one stays unshared and the caller shares that one again.
    session = olm.outbound_group_sessions[room_id]
    results = await asyncio.gather(*requests, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    session.shared = True
