"""Privacy check 17 on a real Synapse: case and team rooms hold only current staff.

The bot alone may invite, kick, ban, redact others and change state in the rooms it
creates; a counsellor removed from the directory is removed from the case rooms and
gets no later room key; an account that is not staff is removed before the next relay
(and the coordinators are told); room keys go only to staff devices.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from nio import RoomGetStateEventResponse, RoomInviteError

from bot.app import App
from bot.transports.matrix import MatrixTransport
from bot.transports.memory import MemoryTransport
from config.directory import Directory
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    Peer,
    accept_invite,
    bot_settings,
    create_room,
    joined,
    new_peer,
    running,
)
from tests.matrix.nio_helpers import logged_in_client, sync_until
from tests.matrix.test_team_rooms import in_room, with_matrix
from tests.world import World, directory_without


@dataclass
class Team:
    """The bot in an App (person on the memory transport), two counsellors on Matrix."""

    app: App
    matrix: MatrixTransport
    world: World
    alex: Peer
    sam: Peer
    team_room: str


@asynccontextmanager
async def alpha_team(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[Team]:
    """Programme alpha with Alex (a1) and Sam (a2) on Matrix and a created team room."""
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-6")
    alex = await new_peer(synapse, "alex")
    sam = await new_peer(synapse, "sam")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    team = with_matrix(directory_without(), {"a1": alex.user_id, "a2": sam.user_id})
    matrix = MatrixTransport(settings, sync_timeout_ms=2000)
    memory = MemoryTransport()
    try:
        async with running(settings, [matrix, memory], team) as app:
            room = matrix.created_staff_rooms["alpha"]
            assert await accept_invite(alex) == room
            assert await accept_invite(sam) == room
            world = World(app, memory, app.clock)  # type: ignore[arg-type]
            yield Team(app, matrix, world, alex, sam, room)
    finally:
        await alex.close()
        await sam.close()


async def claimed_case(team: Team, message: str) -> tuple[str, str]:
    """A new case of alpha, claimed by Alex: (case code, case room)."""
    code = await team.world.open("p1", message=message)
    await team.alex.expect(team.team_room, code)
    await team.alex.say(team.team_room, f"/claim {code}", "Alex")
    case_room = await accept_invite(team.alex)
    await team.alex.expect(case_room, message)
    return code, case_room


def shared_with(matrix: MatrixTransport, room_id: str) -> set[str]:
    """Accounts whose devices got the bot's current room key for ``room_id`` (none when
    a membership change since rotated it away)."""
    assert matrix.client is not None
    assert matrix.client.olm is not None
    session = matrix.client.olm.outbound_group_sessions.get(room_id)
    return {user for user, _device in session.users_shared_with} if session else set()


async def power_levels(peer: Peer, room_id: str) -> dict[str, object]:
    response = await peer.client.room_get_state_event(room_id, "m.room.power_levels")
    assert isinstance(response, RoomGetStateEventResponse), response
    return dict(response.content)


async def test_check17_created_rooms_give_invite_kick_and_state_to_the_bot_alone(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    outsider = await new_peer(synapse, "outsider")
    try:
        async with alpha_team(synapse, tmp_path) as team:
            _, case_room = await claimed_case(team, "Hallo Alpha")
            bot = team.matrix.user_id
            for room_id in (case_room, team.team_room):
                levels = await power_levels(team.alex, room_id)
                users = levels.get("users") or {}
                assert isinstance(users, dict)
                # Only the bot is privileged (room version 12: creators are not listed).
                assert set(users) <= {bot}, users
                assert levels["users_default"] == 0
                for action in ("invite", "kick", "ban", "redact", "state_default"):
                    assert levels[action] == 100, action
                events = levels["events"]
                assert isinstance(events, dict)
                assert events["m.room.power_levels"] == 100
                assert events["m.room.encryption"] == 100
                assert events["m.room.join_rules"] == 100

            # A counsellor cannot bring an outsider in: the homeserver refuses.
            refused = await team.alex.client.room_invite(case_room, outsider.user_id)
            assert isinstance(refused, RoomInviteError), refused
            assert refused.transport_response is not None
            assert refused.transport_response.status == 403
            refused = await team.alex.client.room_invite(team.team_room, outsider.user_id)
            assert isinstance(refused, RoomInviteError), refused
            # Nor change the room's power levels.
            put = await team.alex.client.room_put_state(
                case_room, "m.room.power_levels", {"users": {team.alex.user_id: 100}}
            )
            assert type(put).__name__ == "RoomPutStateError", put
    finally:
        await outsider.close()


async def test_check17_removed_counsellor_leaves_case_rooms_and_cannot_decrypt(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with alpha_team(synapse, tmp_path) as team:
        code, case_room = await claimed_case(team, "Hallo Alpha")
        # Sam works on the case too.
        await team.alex.say(case_room, "/invite Sam", "Sam")
        assert await accept_invite(team.sam) == case_room
        await joined(team.alex, case_room, team.sam.user_id, others=[team.sam.client])

        # Alex leaves the programme: the directory is reloaded without them.
        team.app.reload_directory(with_matrix(directory_without("a1"), {"a2": team.sam.user_id}))
        await sync_until(
            [team.sam.client],
            lambda: (
                not in_room(team.sam, case_room, team.alex.user_id)
                and not in_room(team.sam, team.team_room, team.alex.user_id)
            ),
            what="Alex removed from the case room and the team room",
        )

        # The person's next message reaches Sam; Alex decrypts nothing of it.
        secret = f"Treffpunkt {secrets.token_hex(3)}"
        undecrypted = team.alex.undecrypted
        await team.world.person("p1", secret)
        await team.sam.expect(case_room, secret)
        await sync_until([team.alex.client], lambda: True, what="one more sync for Alex")
        assert all(secret not in b for b in team.alex.bodies(case_room))
        assert team.alex.undecrypted == undecrypted
        keyed = shared_with(team.matrix, case_room)
        assert team.sam.user_id in keyed
        assert team.alex.user_id not in keyed
        assert code  # the case itself goes on


async def test_check17_outsider_in_case_room_is_removed_before_the_relay(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    outsider = await new_peer(synapse, "outsider")
    try:
        async with alpha_team(synapse, tmp_path) as team:
            code, case_room = await claimed_case(team, "Hallo Alpha")
            matrix = team.matrix
            assert matrix.client is not None
            # Someone got an outsider invited (as when power levels were loose): the
            # homeserver has the invite, the bot's room state shows it.
            invited = await matrix.client.room_invite(case_room, outsider.user_id)
            assert type(invited).__name__ == "RoomInviteResponse", invited
            matrix.client.rooms[case_room].add_member(outsider.user_id, None, None, invited=True)

            before = len(team.alex.bodies(team.team_room))
            secret = f"Treffpunkt {secrets.token_hex(3)}"
            await team.world.person("p1", secret)
            await team.alex.expect(case_room, secret)

            # The outsider was removed before the relay and got no key for it.
            assert outsider.user_id not in matrix.client.rooms[case_room].users
            assert outsider.user_id not in shared_with(matrix, case_room)
            assert matrix.stats["outsiders_removed"] >= 1
            refused = await outsider.client.join(case_room)
            assert type(refused).__name__ == "JoinError", refused
            # The coordinators are told in the team room: the case code, no account id.
            alerts = await team.alex.expect(team.team_room, "Koordination", before=before)
            alert = next(a for a in alerts if "Koordination" in a)
            assert code in alert
            assert outsider.user_id not in alert
    finally:
        await outsider.close()


async def test_check17_outsider_who_joined_is_removed_and_cannot_decrypt(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    outsider = await new_peer(synapse, "outsider")
    try:
        async with alpha_team(synapse, tmp_path) as team:
            _, case_room = await claimed_case(team, "Hallo Alpha")
            matrix = team.matrix
            assert matrix.client is not None
            invited = await matrix.client.room_invite(case_room, outsider.user_id)
            assert type(invited).__name__ == "RoomInviteResponse", invited
            # The outsider may be quick enough to join before the bot's next sync.
            await outsider.client.join(case_room)
            await sync_until(
                [team.alex.client],
                lambda: not in_room(team.alex, case_room, outsider.user_id),
                what="the outsider removed",
            )
            secret = f"Treffpunkt {secrets.token_hex(3)}"
            await team.world.person("p1", secret)
            await team.alex.expect(case_room, secret)
            await sync_until([outsider.client], lambda: True, what="one sync for the outsider")
            assert all(secret not in b for b in outsider.bodies(case_room))
            assert outsider.user_id not in shared_with(matrix, case_room)
    finally:
        await outsider.close()


async def test_check17_room_keys_only_to_staff_in_a_configured_staff_room(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    """A staff room the operator made (the bot cannot police it): keys to staff only."""
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-6")
    alex = await new_peer(synapse, "alex")
    outsider = await new_peer(synapse, "outsider")
    room = await create_room(alex, [bot_user.user_id, outsider.user_id], direct=False)
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    data = with_matrix(directory_without(), {"a1": alex.user_id}).model_dump(mode="python")
    data["programmes"][0]["staff_rooms"]["matrix"] = room
    team = Directory.model_validate(data)
    matrix = MatrixTransport(settings, staff_rooms=[room], sync_timeout_ms=2000)
    memory = MemoryTransport()
    try:
        assert await accept_invite(outsider) == room
        async with running(settings, [matrix, memory], team) as app:
            await joined(alex, room, bot_user.user_id, others=[outsider.client])
            code = await World(app, memory, app.clock).open("p1", message="Hallo")  # type: ignore[arg-type]
            await alex.expect(room, code)
            await sync_until([outsider.client], lambda: outsider.undecrypted > 0)
            assert all(code not in b for b in outsider.bodies(room))
            keyed = shared_with(matrix, room)
            assert alex.user_id in keyed
            assert outsider.user_id not in keyed
    finally:
        await alex.close()
        await outsider.close()


async def test_check17_counsellor_removed_while_the_bot_was_down_is_removed_at_start(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-6")
    alex = await new_peer(synapse, "alex")
    sam = await new_peer(synapse, "sam")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    team = with_matrix(directory_without(), {"a1": alex.user_id, "a2": sam.user_id})
    try:
        matrix = MatrixTransport(settings, sync_timeout_ms=2000)
        memory = MemoryTransport()
        async with running(settings, [matrix, memory], team) as app:
            room = matrix.created_staff_rooms["alpha"]
            assert await accept_invite(alex) == room
            code = await World(app, memory, app.clock).open("p1", message="Hallo")  # type: ignore[arg-type]
            await alex.expect(room, code)
            await alex.say(room, f"/claim {code}", "Alex")
            case_room = await accept_invite(alex)
            await joined(alex, case_room, alex.user_id)

        # Alex leaves the programme while the bot is down; the next start removes them.
        fewer = with_matrix(directory_without("a1"), {"a2": sam.user_id})
        again = MatrixTransport(settings, sync_timeout_ms=2000)
        async with running(settings, [again, MemoryTransport()], fewer):
            assert again.client is not None
            assert alex.user_id not in again.client.rooms[case_room].users
            # Done before the bot reports ready: the homeserver has Alex out.
            member = await again.client.room_get_state_event(
                case_room, "m.room.member", alex.user_id
            )
            assert isinstance(member, RoomGetStateEventResponse), member
            assert member.content["membership"] == "leave"
    finally:
        await alex.close()
        await sam.close()


async def test_check17_loose_team_room_from_before_is_tightened_at_start(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-6")
    alex = await new_peer(synapse, "alex")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    team = with_matrix(directory_without(), {"a1": alex.user_id})
    try:
        matrix = MatrixTransport(settings, sync_timeout_ms=2000)
        async with running(settings, [matrix, MemoryTransport()], team):
            room = matrix.created_staff_rooms["alpha"]
            assert await accept_invite(alex) == room
        # As rooms were made before check 17: anyone may invite and change the room.
        other = await synapse.login_async(bot_user.user_id, bot_user.password)
        loose = logged_in_client(synapse.base_url, other)
        try:
            current = await loose.room_get_state_event(room, "m.room.power_levels")
            assert isinstance(current, RoomGetStateEventResponse), current
            content = {**current.content, "invite": 0, "state_default": 0, "kick": 0}
            put = await loose.room_put_state(room, "m.room.power_levels", content)
            assert type(put).__name__ == "RoomPutStateResponse", put
        finally:
            await loose.close()
        assert (await power_levels(alex, room))["invite"] == 0

        again = MatrixTransport(settings, sync_timeout_ms=2000)
        async with running(settings, [again, MemoryTransport()], team):
            levels = await power_levels(alex, room)
            assert levels["invite"] == levels["kick"] == levels["state_default"] == 100
    finally:
        await alex.close()
