"""The Matrix transport on matrix-nio (end-to-end encrypted, vodozemac).

One background task syncs with the homeserver. Each sync response is handled in
order: invites (join direct chats and configured staff rooms, decline the rest), key
housekeeping (so replies reach new devices), then the new room events go through the
core - rooms in parallel (bounded), each room's events in order; encryption happens
under one lock, the send requests outside it. Only after the whole batch is handled
is the sync token saved:
a crash re-delivers the batch, and the core drops what it already processed (it
de-duplicates by event id). matrix-nio itself would save the token *before* its
callbacks run, so its ``store_sync_tokens`` is off here and the loop owns the token.

The first sync after a start asks for the full room state (so that rooms, members and
encryption are known without a local room cache); when there was no stored token at
all, its timeline is history and is not processed.

Privacy: the transport adds nothing to what the core sends; case rooms are named by
case code only; reply fallbacks (which quote account ids) are stripped from inbound
text; logs carry counts and exception types, never ids or text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote
from uuid import uuid4

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    BadEvent,
    EncryptionError,
    InviteMemberEvent,
    JoinedRoomsResponse,
    JoinResponse,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    ProfileGetResponse,
    ProfileSetAvatarResponse,
    ProfileSetDisplayNameResponse,
    ReactionEvent,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomKickResponse,
    RoomMemberEvent,
    RoomMessage,
    RoomMessagesResponse,
    RoomPreset,
    RoomSendError,
    RoomSendResponse,
    StickerEvent,
    SyncError,
    SyncResponse,
    UnknownBadEvent,
    UnknownEvent,
    UploadResponse,
    WhoamiResponse,
)
from nio.api import Api, MessageDirection

from bot.bounded import BoundedDict
from bot.transports.base import InboundHandler, SendLater, Withheld, first_of
from bot.transports.matrix.guard import (
    creator_power,
    differs,
    outsiders,
    power_levels,
    share_keys,
    tightened,
)
from bot.transports.matrix.render import (
    BUTTON_KEYCAPS,
    attachment_kind,
    is_matrix_id,
    media_content,
    notice_content,
    reaction_choice,
    strip_reply_fallback,
)
from bot.transports.matrix.session import (
    SESSION_FILE,
    StoredSession,
    load_session,
    open_store_version,
    rekey_store,
    save_session,
    store_key,
)
from bot.transports.matrix_crosssign import (
    CrossSigningSeeds,
    ensure_cross_signing,
    http_status,
)
from bot.transports.matrix_store import DEFAULT_STORE_NAME, make_encrypted_store
from config.directory import Directory, load_directory
from config.i18n import translator
from config.messages import (
    Address,
    Button,
    ChatKind,
    InboundMessage,
    OutboundMessage,
    OutKind,
    Platform,
    SendResult,
)
from config.settings import ConfigError, Settings, decode_key

__all__ = ["MatrixError", "MatrixTransport"]

log = logging.getLogger(__name__)
#: Media events whose content is kept in memory for copying.
MEDIA_MEMORY = 256

#: State event the bot puts into the rooms it creates (case rooms): never a DM.
ROOM_MARKER: Final = "org.ausweg.room"
_ENCRYPTION: Final = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}
#: Asked when an event cannot be decrypted (the transport does not know the locale).
UNDECRYPTABLE_TEXT: Final = (
    "Ich konnte eine Nachricht von dir nicht entschlüsseln. Falls ich gleich nicht "
    "darauf antworte, schick sie bitte noch einmal.\n"
    "I could not decrypt a message from you. If I do not answer it in a moment, "
    "please send it again."
)
_SYNC_FILTER: Final = {
    "room": {"timeline": {"limit": 50}},
    "presence": {"not_types": ["*"]},
}
_MAX_REMEMBERED: Final = 2000
_PENDING_SECONDS: Final = 600.0
_BACKFILL_PAGES: Final = 5
#: Rooms whose events are handled at the same time within one sync batch.
_ROOMS_AT_ONCE: Final = 16
#: Questions whose reaction shortcuts may wait; beyond that they are skipped (a flood).
_REACTION_QUEUE: Final = 100


class MatrixError(RuntimeError):
    """The homeserver refused a login, a room or a message (after nio's retries)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status of the refusal, when there was an answer.
        self.status = status


def _transient(exc: BaseException) -> bool:
    """Whether a failure means "the homeserver is unreachable now" (not a refusal)."""
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError | SendLater):
        return True
    return _unavailable(getattr(exc, "status", None))


def _unavailable(status: object) -> bool:
    """An HTTP status that means "try again later" (5xx, 429)."""
    return isinstance(status, int) and (status >= 500 or status == 429)


def _txn(message: OutboundMessage, part: str = "") -> str | None:
    """A transaction id stable across retries of one reply (None: let nio pick one).

    The homeserver answers a repeated transaction id with the event it already has,
    so replies re-sent from the outbox after a crash are not delivered twice.
    """
    if message.send_key is None:
        return None
    return f"ausweg.{message.send_key}{'.' + part if part else ''}"


class MatrixTransport:
    """A Matrix bot account: direct chats with people, staff rooms and case rooms."""

    platform = Platform.MATRIX
    #: One sync per account: only the leader runs it (see bot.leader).
    leader_only = True
    #: Undelivered events come again after a crash: the core keeps replies until sent.
    redelivers = True

    def __init__(
        self,
        settings: Settings,
        *,
        staff_rooms: Iterable[str] = (),
        sync_timeout_ms: int = 30_000,
        device_name: str = "Ausweg",
        max_backoff: float = 60.0,
        request_retries: int = 6,
        team_accounts: Mapping[str, tuple[str, list[str]]] | None = None,
    ) -> None:
        ms = settings.matrix
        if not ms.homeserver or not ms.user_id:
            raise ConfigError("matrix needs matrix.homeserver and matrix.user_id")
        self._settings = settings
        self.homeserver: str = ms.homeserver
        self.user_id: str = ms.user_id
        self.store_path: Path = ms.store_path or settings.data_dir / "matrix"
        self.staff_rooms: set[str] = set(staff_rooms)
        #: Programmes without a configured staff room: id -> (name, staff accounts).
        self._team: dict[str, tuple[str, list[str]]] = dict(team_accounts or {})
        #: Staff rooms the bot created (programme id -> room), and who wants to know.
        self.created_staff_rooms: dict[str, str] = {}
        self.on_staff_rooms: Callable[[Platform, dict[str, str]], None] | None = None
        self._sync_timeout_ms = sync_timeout_ms
        self._device_name = device_name
        self._max_backoff = max_backoff
        self._request_retries = request_retries
        self.client: AsyncClient | None = None
        self.ready = asyncio.Event()
        #: Set while the homeserver has not been reached since the start (retrying).
        self.offline = asyncio.Event()
        self.online = False
        self._handler: InboundHandler | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._since: str | None = None
        self._session: StoredSession | None = None
        self._keys: dict[int, bytes] = {}
        #: (case code, staff room it was claimed from) -> case room (per programme: a
        #: transferred case never reuses the old programme's room), and every room known
        #: to be a case room.
        self.case_rooms: dict[tuple[str, str], str] = {}
        self._case_room_ids: set[str] = set()
        self._marked: BoundedDict[str, bool] = BoundedDict(_MAX_REMEMBERED)
        self._last_buttons: BoundedDict[str, tuple[Button, ...]] = BoundedDict(_MAX_REMEMBERED)
        self._event_buttons: BoundedDict[str, tuple[Button, ...]] = BoundedDict(_MAX_REMEMBERED)
        #: Content of recent media events (memory only) so a claimed case can copy them.
        self._media: BoundedDict[str, dict[str, Any]] = BoundedDict(MEDIA_MEMORY)
        self._pending: BoundedDict[str, tuple[str, MegolmEvent, float]] = BoundedDict(
            _MAX_REMEMBERED
        )
        self._asked: BoundedDict[str, bool] = BoundedDict(_MAX_REMEMBERED)
        #: (room, event, options): questions to decorate with keycap reactions.
        self._reactions: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue(_REACTION_QUEUE)
        self._reactor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._team_lock = asyncio.Lock()
        self._reconcile_lock = asyncio.Lock()
        #: Matrix staff accounts per programme (all programmes), from the directory.
        self._staff: dict[str, frozenset[str]] = {}
        self._directory: Directory | None = None
        #: Case and created staff rooms -> their programme (who may be in them).
        self._room_programme: dict[str, str] = {}
        #: (room, account) pairs already reported as not removable (one alert each).
        self._alerted: BoundedDict[str, bool] = BoundedDict(_MAX_REMEMBERED)
        #: A person's chat -> the person's account (from their messages; memory only).
        self._people: BoundedDict[str, str] = BoundedDict(_MAX_REMEMBERED)
        #: Person chats already told that someone else is in them (once per episode).
        self._told_watched: BoundedDict[str, bool] = BoundedDict(_MAX_REMEMBERED)
        #: Counters for tests and health checks (no identifiers).
        self.stats: dict[str, int] = {
            "events": 0,
            "handled": 0,
            "failed": 0,
            "undecryptable": 0,
            "syncs": 0,
            "sync_errors": 0,
            "outsiders_removed": 0,
            "held": 0,
            "withheld": 0,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> MatrixTransport:
        """The transport for ``settings``; staff rooms come from the programme directory."""
        directory = load_directory(settings.directory_path)
        rooms = [p.staff_rooms.get(Platform.MATRIX.value) for p in directory.programmes]
        transport = cls(settings, staff_rooms=[r for r in rooms if r])
        transport.use_directory(directory)
        return transport

    def use_directory(self, directory: Directory) -> None:
        """A (reloaded) directory: created staff rooms and case rooms follow its staff lists.

        Accounts no longer on a programme's staff list are removed from its rooms at
        once (in the background), so they receive no new room keys.
        """
        platform = Platform.MATRIX.value
        self._directory = directory
        self._team = directory.team_accounts(platform)
        self._staff = {
            p.id: frozenset(m.accounts[platform] for m in p.staff if platform in m.accounts)
            for p in directory.programmes
        }
        if self.online:
            task = asyncio.get_running_loop().create_task(self._guard(self._follow_directory()))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _follow_directory(self) -> None:
        try:
            await self._ensure_team_rooms()
        finally:  # case rooms are cleaned up even when a team room could not be
            await self.reconcile_rooms()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, on_message: InboundHandler) -> None:
        """Open the encrypted store, log in, cross-sign the device, start syncing.

        An unreachable homeserver does not fail the start: the sync loop keeps trying
        (with back-off) and ``send`` raises :class:`SendLater` until it got through.

        Raises:
            MatrixError: the homeserver refused the login or the cross-signing keys.
            SessionError: the stored session or store cannot be opened with the keys.
        """
        self._handler = on_message
        self._stopping.clear()
        self._keys = {
            v: decode_key(k.get_secret_value(), f"crypto.master_keys[{v}]")
            for v, k in self._settings.crypto.master_keys.items()
        }
        if not self._keys:
            raise ConfigError("crypto.master_keys is missing (the Matrix store is keyed from it)")
        client = await asyncio.to_thread(self._open_client)
        self.client = client
        try:
            if await self._reachable(client):
                await self._connect(client)
        except Exception as exc:
            if not _transient(exc):
                await self._close_client()
                raise
        except BaseException:
            await self._close_client()
            raise
        if not self.online:
            # The other transports start anyway; replies for Matrix wait in the outbox.
            self.offline.set()
            log.warning("matrix homeserver not reachable; starting without it, retrying")
        self._task = asyncio.create_task(self._run(), name="matrix-sync")
        self._reactor = asyncio.create_task(self._react_loop(), name="matrix-reactions")

    async def wait_ready(self) -> None:
        """Return once the first sync was handled, or the start went on without the server.

        An unreachable homeserver must not hold up the other platforms: the sync loop
        keeps trying (``offline`` is set until it got through; ``ready`` after that).
        """
        await first_of(self.ready, self.offline)

    @property
    def connected(self) -> bool:
        """A sync went through since the start (the runner reports readiness on it)."""
        return self.ready.is_set()

    async def wait_connected(self) -> None:
        """Return once a sync went through (perhaps long after the start: an outage)."""
        await self.ready.wait()

    async def _connect(self, client: AsyncClient) -> None:
        """Log in, cross-sign the device, join the staff rooms."""
        await self._login(client)
        await self._cross_sign(client)
        await self._set_profile(client)
        await self._join_staff_rooms(client)
        try:
            await self._ensure_team_rooms()
        except Exception as exc:
            if _transient(exc):
                raise
            # Announcements still reach the programme's other rooms; the rest works.
            log.error("matrix: staff rooms could not be set up: %s", type(exc).__name__)
        self.online = True
        self.offline.clear()

    async def _reachable(self, client: AsyncClient) -> bool:
        """One quick look at the homeserver (no retries), so a dead one costs no time."""
        try:
            response = await client.send("GET", "/_matrix/client/versions", timeout=10)
            status = int(response.status)
            response.release()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return status < 500

    async def stop(self, grace: float = 15.0) -> None:
        """Finish the batch in hand (up to ``grace`` seconds), then close the client."""
        self._stopping.set()
        self.online = False  # sends from now on wait for the next start (SendLater)
        reactor, self._reactor = self._reactor, None
        extra = [reactor, *self._background] if reactor is not None else [*self._background]
        for work in extra:  # shortcuts and staff-room upkeep: not worth waiting for
            work.cancel()
        await asyncio.gather(*extra, return_exceptions=True)
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not task.cancelled() and task.exception() is not None:
                log.error("matrix sync loop ended: %s", type(task.exception()).__name__)
        await self._close_client()
        self.ready.clear()
        self.offline.clear()
        self.online = False

    async def _close_client(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        await client.close()
        store = client.store
        if store is not None and hasattr(store, "close"):
            store.close()

    def _open_client(self) -> AsyncClient:
        """Rotate the store key if needed and build the client (blocking file work)."""
        self.store_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        loaded = load_session(self.store_path / SESSION_FILE, self._keys)
        session = loaded[0] if loaded else None
        if session is not None and (
            session.user_id != self.user_id or session.homeserver != self.homeserver
        ):
            session = None  # another account: its device and seeds do not apply
        db = self.store_path / DEFAULT_STORE_NAME
        current = max(self._keys)
        found = open_store_version(db, self._keys, session.store_version if session else None)
        if found is not None and found != current:
            rekey_store(db, self._keys[found], self._keys[current])
            log.info("matrix store re-keyed to the current master key")
        if session is not None and found is None:
            # The crypto store is gone: its device cannot be used again.
            session = session.with_(device_id="", access_token="")
        if session is not None and (loaded is None or loaded[1] != current or found != current):
            session = session.with_(store_version=current)
            save_session(self.store_path / SESSION_FILE, session, self._keys)
        self._session = session
        ms = self._settings.matrix
        pickle_key = ms.store_pickle_key.get_secret_value() if ms.store_pickle_key else ""
        config = AsyncClientConfig(
            store=make_encrypted_store(store_key(self._keys[current])),
            store_name=DEFAULT_STORE_NAME,
            pickle_key=pickle_key,
            store_sync_tokens=False,  # the loop saves the token after handling
            encryption_enabled=True,
            max_timeouts=self._request_retries,
            backoff_factor=0.25,
            request_timeout=30,
        )
        return AsyncClient(
            self.homeserver, self.user_id, store_path=str(self.store_path), config=config
        )

    def _save(self, **changes: Any) -> None:
        base = self._session or StoredSession(self.homeserver, self.user_id, "")
        self._session = base.with_(store_version=max(self._keys), **changes)
        save_session(self.store_path / SESSION_FILE, self._session, self._keys)

    async def _login(self, client: AsyncClient) -> None:
        ms = self._settings.matrix
        password = ms.password.get_secret_value() if ms.password else None
        token = ms.access_token.get_secret_value() if ms.access_token else None
        stored = self._session
        if stored is not None and stored.device_id and stored.access_token:
            client.restore_login(self.user_id, stored.device_id, stored.access_token)
            who = await client.whoami()
            if isinstance(who, WhoamiResponse):
                self._since = client.store.load_sync_token()
                return
            if http_status(who) not in (401, 403):  # not a verdict on the token: keep the device
                raise MatrixError("matrix whoami failed", status=http_status(who))
            log.warning("stored matrix access token rejected; logging in again")
        device_id = (stored.device_id if stored else "") or ms.device_id or ""
        if password:
            client.device_id = device_id
            response = await client.login(password, device_name=self._device_name)
            if not isinstance(response, LoginResponse):
                raise MatrixError(
                    f"matrix login failed: {response.status_code}", status=http_status(response)
                )
        elif token:
            client.access_token = token
            who = await client.whoami()
            if not isinstance(who, WhoamiResponse) or who.user_id != self.user_id:
                raise MatrixError("matrix access token rejected (or for another user)")
            device = device_id or who.device_id
            if not device:
                raise MatrixError("matrix.device_id is needed with this access token")
            client.restore_login(self.user_id, device, token)
        else:
            raise ConfigError("matrix needs matrix.password or matrix.access_token")
        self._save(device_id=client.device_id, access_token=client.access_token)
        self._since = client.store.load_sync_token()

    async def _cross_sign(self, client: AsyncClient) -> None:
        ms = self._settings.matrix
        password = ms.password.get_secret_value() if ms.password else None
        stored: CrossSigningSeeds | None = self._session.seeds if self._session else None
        seeds = await ensure_cross_signing(client, stored, password)
        if seeds != stored:
            self._save(seeds=seeds)

    async def _set_profile(self, client: AsyncClient) -> None:
        """Display name and avatar from the settings (chat lists show them, not "ausweg").

        Changed only when they differ: every change is a new member event in every room
        the bot is in. The avatar is uploaded once (again only when the file changes);
        the stored "<sha256> <mxc>" tells. A refusal is logged, never fatal: the chats
        work without a profile.
        """
        ms = self._settings.matrix
        if not ms.display_name and ms.avatar_path is None:
            return
        current = await client.get_profile(self.user_id)
        if not isinstance(current, ProfileGetResponse):
            if _unavailable(http_status(current)):
                raise MatrixError("matrix profile unavailable", status=http_status(current))
            current = ProfileGetResponse()  # no profile yet (404): set everything
        if ms.display_name and current.displayname != ms.display_name:
            done = await client.set_displayname(ms.display_name)
            if not isinstance(done, ProfileSetDisplayNameResponse):
                log.error("matrix: display name not set: %s", http_status(done))
        if ms.avatar_path is not None:
            mxc = await self._avatar(client, ms.avatar_path)
            if mxc and current.avatar_url != mxc:
                done_avatar = await client.set_avatar(mxc)
                if not isinstance(done_avatar, ProfileSetAvatarResponse):
                    log.error("matrix: avatar not set: %s", http_status(done_avatar))

    async def _avatar(self, client: AsyncClient, path: Path) -> str | None:
        """The mxc URI of the avatar file: the stored one if the file is unchanged."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            log.error("matrix: avatar file not readable: %s", type(exc).__name__)
            return None
        digest = hashlib.sha256(data).hexdigest()
        stored_digest, _, stored_mxc = (self._session.avatar if self._session else "").partition(
            " "
        )
        if stored_digest == digest and stored_mxc:
            return stored_mxc
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response, _ = await client.upload(
            io.BytesIO(data), content_type, filename=path.name, filesize=len(data)
        )
        if not isinstance(response, UploadResponse):
            log.error("matrix: avatar upload refused: %s", http_status(response))
            return None
        self._save(avatar=f"{digest} {response.content_uri}")
        return str(response.content_uri)

    async def _join_staff_rooms(self, client: AsyncClient) -> None:
        if not self.staff_rooms:
            return
        joined = await client.joined_rooms()
        have = set(joined.rooms) if isinstance(joined, JoinedRoomsResponse) else set()
        missing = 0
        for room_id in self.staff_rooms - have:
            if not isinstance(await client.join(room_id), JoinResponse):
                missing += 1
        if missing:
            log.warning("matrix: %d staff room(s) not joined (invite the bot)", missing)

    async def _ensure_team_rooms(self) -> None:
        """Create (once) an encrypted staff room per programme that has none configured.

        The programme's staff accounts are invited; accounts no longer on its staff list
        are removed (a counsellor who left reads no new case announcements). The rooms
        are kept in the encrypted session file, so a restart reuses them.
        """
        client = self._require_client()
        async with self._team_lock:
            await self._ensure_team_rooms_locked(client)

    async def _ensure_team_rooms_locked(self, client: AsyncClient) -> None:
        stored = dict(self._session.team_rooms) if self._session else {}
        joined = await client.joined_rooms()
        if not isinstance(joined, JoinedRoomsResponse):  # unknown is not "none"
            raise MatrixError("joined rooms unknown", status=http_status(joined))
        have = set(joined.rooms)
        for programme_id in sorted(set(self._team) | set(stored)):
            name, accounts = self._team.get(programme_id, ("", []))
            wanted = sorted({a for a in accounts if is_matrix_id(a) and a != self.user_id})
            room_id = stored.get(programme_id)
            if room_id is not None and room_id not in have:
                room_id = None  # the bot was removed from it: start a new one
            if room_id is None:
                if not wanted:
                    stored.pop(programme_id, None)
                    continue
                room_id = await self._create_team_room(name, wanted)
                stored[programme_id] = room_id
                self._save(team_rooms=dict(stored))
            else:
                await self._tighten(room_id)
                await self._team_members(room_id, wanted)
            if programme_id in self._team:
                self.staff_rooms.add(room_id)
                self.created_staff_rooms[programme_id] = room_id
                self._room_programme[room_id] = programme_id
            else:
                self.created_staff_rooms.pop(programme_id, None)
        if self.on_staff_rooms is not None:
            self.on_staff_rooms(self.platform, dict(self.created_staff_rooms))

    async def _create_team_room(self, name: str, invite: list[str]) -> str:
        client = self._require_client()
        marker = {"type": ROOM_MARKER, "state_key": "", "content": {"kind": "staff"}}
        async with self._lock:
            response = await client.room_create(
                name=f"{name} – Ausweg (Team)",
                topic="Neue Anfragen an dieses Programm. / New requests to this programme.",
                preset=RoomPreset.private_chat,
                invite=invite,
                initial_state=[_ENCRYPTION, marker],
                power_level_override=power_levels(),
            )
            if not isinstance(response, RoomCreateResponse):
                raise MatrixError(
                    f"staff room not created: {response.status_code}", status=http_status(response)
                )
            self._register_room(response.room_id, invite)
        log.info("matrix: a staff room was created and %d account(s) invited", len(invite))
        room_id: str = response.room_id
        return room_id

    async def _team_members(self, room_id: str, wanted: list[str]) -> None:
        """Invite missing staff accounts into a created staff room; remove the others."""
        client = self._require_client()
        state = await client.room_get_state(room_id)
        if not isinstance(state, RoomGetStateResponse):
            log.warning("matrix: a staff room's members could not be read")
            return
        members = {
            e.get("state_key"): e.get("content", {}).get("membership")
            for e in state.events
            if e.get("type") == "m.room.member"
        }
        present = {u for u, m in members.items() if m in ("join", "invite")}
        async with self._lock:
            room = client.rooms.get(room_id)
            for user_id in sorted(set(wanted) - present):
                response = await client.room_invite(room_id, user_id)
                if room is not None and type(response).__name__ == "RoomInviteResponse":
                    room.add_member(user_id, None, None, invited=True)
            for user_id in sorted(present - set(wanted) - {self.user_id}):
                response = await client.room_kick(room_id, user_id, reason="nicht mehr im Team")
                if room is not None and type(response).__name__ == "RoomKickResponse":
                    room.remove_member(user_id)
            if set(wanted) != present - {self.user_id}:
                if room is not None and client.olm is not None:
                    client.olm.update_tracked_users(room)
                with contextlib.suppress(Exception):
                    client.invalidate_outbound_session(room_id)  # leavers get no new keys

    async def _tighten(self, room_id: str) -> None:
        """Give invite, kick, ban, redaction and state changes to the bot alone (a room
        created before the bot set its power levels at creation); failures are logged."""
        client = self._require_client()
        response = await client.room_get_state_event(room_id, "m.room.power_levels")
        if not isinstance(response, RoomGetStateEventResponse):
            log.warning("matrix: a room's power levels could not be read")
            return
        current = dict(response.content)
        create = await client.room_get_state_event(room_id, "m.room.create")
        creator = (
            isinstance(create, RoomGetStateEventResponse)
            and creator_power(dict(create.content))
            and self.user_id not in (current.get("users") or {})
        )
        wanted = tightened(current, self.user_id, creator=creator)
        if wanted is None:
            log.warning("matrix: a room's power levels cannot be fixed (the bot lacks power)")
            return
        if not differs(current, wanted):
            return
        put = await client.room_put_state(room_id, "m.room.power_levels", wanted)
        if type(put).__name__ != "RoomPutStateResponse":
            log.warning("matrix: a staff room's power levels could not be fixed")
        else:
            log.info("matrix: a room's power levels were tightened")

    # ------------------------------------------------------------ who is in staff rooms
    def _allowed(self, room_id: str) -> frozenset[str] | None:
        """Accounts that may be in (and get keys for) a room; None: a person's chat.

        Case rooms and created staff rooms: the current staff of their programme;
        configured staff rooms: the staff of the programmes using them; a case room of
        unknown programme (created before rooms carried it): the staff of any programme.
        """
        if self._directory is None:
            return None  # a bare transport (no directory handed over): nobody is known
        programme = self._room_programme.get(room_id)
        if programme is not None:
            return self._staff.get(programme, frozenset()) | {self.user_id}
        if room_id in self.staff_rooms:
            using = self._directory.programmes_of_room(Platform.MATRIX.value, room_id)
            accounts = {a for p in using for a in self._staff.get(p.id, ())}
            return frozenset(accounts | {self.user_id})
        if room_id in self._case_room_ids:
            return frozenset(a for staff in self._staff.values() for a in staff) | {self.user_id}
        return None

    def _guarded(self, room_id: str) -> bool:
        """Rooms the bot polices (removes outsiders from): the ones it created."""
        return room_id in self._case_room_ids or room_id in self._room_programme

    async def reconcile_rooms(self) -> int:
        """Remove non-staff members from every known case and created staff room.

        Runs at start (after the first sync), after a directory reload and whenever a
        member event arrives in such a room. Returns how many accounts were removed.
        """
        client = self._require_client()
        removed = 0
        for room_id in sorted(r for r in client.rooms if self._guarded(r)):
            removed += await self._reconcile(room_id, hold=False)
        return removed

    async def _reconcile(self, room_id: str, *, hold: bool = True) -> int:
        """Kick members of a guarded room who are not current staff of its programme.

        Works on nio's in-memory room state (kept current by the sync), so the check
        costs nothing when the room is clean. Every removal rotates the room's group
        session (the leaver gets no later key) and alerts the programme's coordinators.
        Returns how many were removed; with ``hold``, raises :class:`SendLater` when one
        could not be removed (the caller holds its message).
        """
        client = self._require_client()
        room = client.rooms.get(room_id)
        allowed = self._allowed(room_id)
        if room is None or allowed is None or not self._guarded(room_id):
            return 0
        if not outsiders(room, allowed):
            return 0  # the hot path: nothing to do, no lock, no request
        async with self._reconcile_lock:  # one removal at a time (a relay and the sync)
            return await self._remove(room_id, room, allowed, hold)

    async def _remove(
        self, room_id: str, room: MatrixRoom, allowed: frozenset[str], hold: bool
    ) -> int:
        client = self._require_client()
        strangers = outsiders(room, allowed)
        if not strangers:
            return 0
        removed, stuck = 0, 0
        for user_id in strangers:
            response = await client.room_kick(room_id, user_id, reason="nicht im Team")
            if type(response).__name__ == "RoomKickResponse":
                room.remove_member(user_id)
                removed += 1
            else:
                stuck += 1
        if client.olm is not None:
            client.olm.update_tracked_users(room)
            with contextlib.suppress(Exception):
                client.invalidate_outbound_session(room_id)  # leavers get no new keys
        self.stats["outsiders_removed"] += removed
        log.warning(
            "matrix: %d non-staff account(s) removed from a staff or case room, %d not",
            removed,
            stuck,
        )
        if removed:
            await self._alert(room_id, "staff.guard.removed")
        if stuck:
            key = f"{room_id}|{'|'.join(strangers)}"
            if key not in self._alerted:
                self._alerted[key] = True
                await self._alert(room_id, "staff.guard.not_removed")
            if hold:
                raise SendLater("a non-staff member could not be removed from the room")
        return removed

    async def _alert(self, room_id: str, key: str) -> None:
        """Tell the programme's coordinators (in its staff room) what happened where.

        Names the case code or "team room", never an account or a person.
        """
        programme = self._room_programme.get(room_id)
        target = self.created_staff_rooms.get(programme) if programme else None
        if target is None and programme and self._directory is not None:
            found = self._directory.by_id.get(programme)
            target = found.staff_rooms.get(Platform.MATRIX.value) if found else None
        target = target or room_id
        locale = "de"
        if programme and self._directory is not None and programme in self._directory.by_id:
            coordinators = [
                m for m in self._directory.by_id[programme].staff if m.role == "coordinator"
            ]
            locale = coordinators[0].locale if coordinators else "de"
        t = translator(locale)
        code = self._code_of(room_id)
        where = t("staff.guard.case_room", code=code) if code else t("staff.guard.team_room")
        try:
            await self._post(target, t(key, where=where), check=False)
        except Exception as exc:
            log.error("matrix: a coordinator alert failed: %s", type(exc).__name__)

    def _code_of(self, room_id: str) -> str | None:
        """The case code of a case room (remembered, or from its name "Fall K-XXXX")."""
        for (code, _staff_room), room in self.case_rooms.items():
            if room == room_id:
                return code
        known = self.client.rooms.get(room_id) if self.client else None
        name = known.name if known is not None else None
        if room_id in self._case_room_ids and isinstance(name, str) and name.startswith("Fall "):
            return name[5:]
        return None

    def _learn_rooms(self, response: SyncResponse) -> list[str]:
        """Note case-room markers seen in a sync; return guarded rooms with member events."""
        changed = []
        for room_id, info in response.rooms.join.items():
            members = False
            for event in [*info.state, *info.timeline.events]:
                if isinstance(event, UnknownEvent) and event.type == ROOM_MARKER:
                    content = event.source.get("content", {})
                    if isinstance(content, dict) and content.get("kind") == "case":
                        self._case_room_ids.add(room_id)
                        self._marked[room_id] = True
                        programme = content.get("programme")
                        if isinstance(programme, str):
                            self._room_programme[room_id] = programme
                members = members or isinstance(event, RoomMemberEvent)
            if members and self._guarded(room_id):
                changed.append(room_id)
        return changed

    # ------------------------------------------------------------------ sync loop
    async def _run(self) -> None:
        """Sync until stopped; any failure backs off and retries, nothing escapes."""
        delay = 1.0
        first = True
        while not self._stopping.is_set():
            try:
                if not self.online:
                    client = self._require_client()
                    if not await self._reachable(client):
                        raise SendLater("the homeserver is not reachable")
                    await self._connect(client)
                    log.info("matrix homeserver reached; connected")
                response = await self._sync(first)
                if response is None:
                    return
                if isinstance(response, SyncError):
                    raise MatrixError(f"sync failed: {response.status_code}")
                await self._handle_sync(response, initial=first and self._since is None)
                if first:  # the full state is known now: rooms hold only current staff
                    await self._guard(self.reconcile_rooms())
                first = False
                delay = 1.0
                self.ready.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["sync_errors"] += 1
                log.log(
                    logging.WARNING if self.online or _transient(exc) else logging.ERROR,
                    "matrix %s failed (%s); retrying in %.0f s",
                    "sync" if self.online else "connection",
                    type(exc).__name__,
                    delay,
                )
                await self._relogin_if_needed()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, self._max_backoff)

    async def _relogin_if_needed(self) -> None:
        client = self.client
        ms = self._settings.matrix
        if client is None or client.access_token or not ms.password:
            return
        with contextlib.suppress(Exception):
            response = await client.login(ms.password.get_secret_value(), self._device_name)
            if isinstance(response, LoginResponse):
                self._save(device_id=client.device_id, access_token=client.access_token)

    async def _sync(self, first: bool) -> SyncResponse | SyncError | None:
        """One sync; returns None when ``stop`` interrupted the long poll."""
        client = self._require_client()
        request = asyncio.ensure_future(
            client.sync(
                timeout=0 if first else self._sync_timeout_ms,
                sync_filter=_SYNC_FILTER,
                since=self._since,
                full_state=True if first else None,
            )
        )
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({request, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if request in done:
            result: SyncResponse | SyncError = request.result()
            return result
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await request
        return None

    async def _handle_sync(self, response: SyncResponse, *, initial: bool) -> None:
        client = self._require_client()
        self.stats["syncs"] += 1
        for room_id, info in response.rooms.invite.items():
            await self._guard(self._on_invite(room_id, info.invite_state))
        joined_changed = self._learn_rooms(response)
        await self._housekeeping()
        if not initial:
            # Rooms in parallel (bounded), each room's events in order.
            gate = asyncio.Semaphore(_ROOMS_AT_ONCE)
            results = await asyncio.gather(
                *(self._room_events(gate, r, info) for r, info in response.rooms.join.items()),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result  # the batch comes again (handled events are skipped)
            await self._retry_undecrypted()
        for room_id in joined_changed:  # someone joined or was invited: staff only
            await self._guard(self._reconcile(room_id, hold=False))
        with contextlib.suppress(Exception):
            await client.send_to_device_messages()
        self._since = response.next_batch
        client.store.save_sync_token(response.next_batch)

    async def _room_events(self, gate: asyncio.Semaphore, room_id: str, info: Any) -> None:
        """One room's new events through the core, in order (a gap is filled first)."""
        async with gate:
            events = list(info.timeline.events)
            if info.timeline.limited and self._since and info.timeline.prev_batch:
                events = await self._backfill(room_id, info.timeline.prev_batch) + events
            for event in events:
                await self._guard(self._on_event(room_id, event))

    async def _guard(self, work: Any) -> None:
        """Run one event's work; a failure is counted and logged, never raised."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats["failed"] += 1
            log.error("matrix event not handled: %s", type(exc).__name__)

    async def _housekeeping(self) -> None:
        """Upload one-time keys, query changed device lists, claim Olm sessions."""
        client = self._require_client()
        async with self._lock:
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())

    async def _backfill(self, room_id: str, prev_batch: str) -> list[Any]:
        """Events a limited timeline left out, back to the last handled sync token."""
        client = self._require_client()
        older: list[Any] = []
        start: str | None = prev_batch
        for _ in range(_BACKFILL_PAGES):
            page = await client.room_messages(
                room_id, start=start, end=self._since, direction=MessageDirection.back, limit=100
            )
            if not isinstance(page, RoomMessagesResponse) or not page.chunk:
                break
            older.extend(page.chunk)
            if not page.end or page.end == start:
                break
            start = page.end
        older.reverse()
        return older

    # ------------------------------------------------------------------ inbound
    async def _on_invite(self, room_id: str, invite_state: list[Any]) -> None:
        client = self._require_client()
        mine = [
            e
            for e in invite_state
            if isinstance(e, InviteMemberEvent)
            and e.state_key == self.user_id
            and e.membership == "invite"
        ]
        if not mine:
            return
        direct = any(bool(e.content.get("is_direct")) for e in mine)
        if room_id in self.staff_rooms or direct:
            response = await client.join(room_id)
            if not isinstance(response, JoinResponse):
                log.warning("matrix: joining an invited room failed")
        else:
            await client.room_leave(room_id)  # declines group invites

    async def _on_event(self, room_id: str, event: Any) -> None:
        client = self._require_client()
        room = client.rooms.get(room_id)
        if room is None or getattr(event, "sender", None) in (None, self.user_id):
            return
        self.stats["events"] += 1
        if isinstance(event, MegolmEvent):
            await self._undecryptable(room_id, event)
            return
        message = await self._inbound(room, event)
        if message is not None and self._handler is not None:
            await self._handler(message)
            self.stats["handled"] += 1

    async def _inbound(self, room: MatrixRoom, event: Any) -> InboundMessage | None:
        """Reduce one room event to an :class:`InboundMessage` (None: not for the core)."""
        text, button, attachment, edited = "", None, None, False
        if isinstance(event, ReactionEvent):
            buttons = self._event_buttons.get(event.reacts_to)
            index = reaction_choice(event.key, len(buttons)) if buttons else None
            if buttons is None or index is None:
                return None
            button = buttons[index].data
        elif isinstance(event, StickerEvent):
            attachment = "sticker"
        elif isinstance(event, BadEvent | UnknownBadEvent):
            # Malformed by nio's schemas (e.g. media without "file" in an encrypted room):
            # a media message still gets the core's answer, anything else is dropped.
            source = event.source if isinstance(event.source, dict) else {}
            raw = source.get("content") if source.get("type") == "m.room.message" else None
            attachment = attachment_kind(str(raw.get("msgtype"))) if isinstance(raw, dict) else None
            if attachment is None or not isinstance(raw, dict):
                return None
            self._media[event.event_id] = raw
        elif isinstance(event, RoomMessage):
            source = event.source if isinstance(event.source, dict) else {}
            content = source.get("content")
            if not isinstance(content, dict):
                return None
            relates = content.get("m.relates_to")
            if not isinstance(relates, dict):
                relates = {}
            if relates.get("rel_type") == "m.replace":
                # An edit is never an answer, but crisis words added by one must be seen.
                new = content.get("m.new_content")
                content, relates, edited = (new if isinstance(new, dict) else {}), {}, True
            msgtype = content.get("msgtype")
            if msgtype in ("m.text", "m.emote"):
                body = content.get("body")
                if not isinstance(body, str):
                    return None
                text = strip_reply_fallback(body) if relates.get("m.in_reply_to") else body
            else:
                attachment = None if edited else attachment_kind(str(msgtype))
                if attachment is None:
                    return None  # notices (other bots), unknown types
                self._media[event.event_id] = content
        else:
            return None
        kind = await self._chat_kind(room)
        if kind is ChatKind.PRIVATE and room.room_id not in self._people:
            # Whose devices get this chat's keys: the first writer stays the person (an
            # account left alone in the chat later is not).
            self._people[room.room_id] = event.sender
        if kind is ChatKind.PRIVATE and text.strip().isdigit() and not edited:
            shown = self._last_buttons.get(room.room_id, ())
            number = int(text.strip())
            if 0 < number <= len(shown):
                text, button = "", shown[number - 1].data
        return InboundMessage(
            platform=self.platform,
            sender_id=event.sender,
            address=Address(self.platform, room.room_id),
            text=text,
            button=button,
            locale=None,
            update_id=event.event_id,
            chat_kind=kind,
            received_at=datetime.now(UTC),
            attachment=attachment,
            message_ref=None if edited else event.event_id,
            edited=edited,
        )

    async def _chat_kind(self, room: MatrixRoom) -> ChatKind:
        """Staff, case and group rooms are GROUP; a room of the bot and one person PRIVATE."""
        room_id = room.room_id
        if room_id in self.staff_rooms or room_id in self._case_room_ids:
            return ChatKind.GROUP
        if len(room.users) > 2:
            return ChatKind.GROUP
        return ChatKind.GROUP if await self._is_case_room(room_id) else ChatKind.PRIVATE

    async def _is_case_room(self, room_id: str) -> bool:
        """Whether the bot created the room as a case room (its marker state event)."""
        if room_id in self._case_room_ids:
            return True
        marked = self._marked.get(room_id)
        if marked is None:
            response = await self._require_client().room_get_state_event(room_id, ROOM_MARKER)
            marked = (
                isinstance(response, RoomGetStateEventResponse)
                and response.content.get("kind") == "case"
            )
            self._marked[room_id] = marked
            if marked:
                self._case_room_ids.add(room_id)
                programme = response.content.get("programme")
                if isinstance(programme, str):
                    self._room_programme[room_id] = programme
        return marked

    async def _undecryptable(self, room_id: str, event: MegolmEvent) -> None:
        """Keep the event for a retry, ask its sender's devices for the key, tell them."""
        self.stats["undecryptable"] += 1
        event.room_id = room_id
        self._pending[event.event_id] = (room_id, event, time.monotonic())
        key = f"{room_id}|{event.session_id}"
        if key in self._asked:
            return
        self._asked[key] = True
        with contextlib.suppress(Exception):
            await self._require_client().request_room_key(event)
        await self._post(room_id, UNDECRYPTABLE_TEXT)

    async def _retry_undecrypted(self) -> None:
        """Events whose keys arrived since: handle them now."""
        client = self._require_client()
        now = time.monotonic()
        for event_id, (room_id, event, seen) in list(self._pending.items()):
            if now - seen > _PENDING_SECONDS:
                del self._pending[event_id]
                continue
            try:
                decrypted = client.decrypt_event(event)
            except EncryptionError:
                continue
            del self._pending[event_id]
            await self._guard(self._on_event(room_id, decrypted))

    # ------------------------------------------------------------------ outbound
    async def send(self, message: OutboundMessage) -> SendResult | None:
        """Render and send one message; ``CASE_CLAIMED`` opens a case room.

        Raises:
            SendLater: the homeserver is unreachable (or was not reached since the start).
            MatrixError: the homeserver refused the message (after nio's retries).
        """
        if not self.online:
            raise SendLater("not connected to the homeserver yet")
        try:
            return await self._send(message)
        except Withheld:
            self.stats["withheld"] += 1
            await self._tell_watched(message)
            raise
        except SendLater:
            raise
        except Exception as exc:
            if _transient(exc) or not self.online:  # unreachable, or stopped meanwhile
                raise SendLater(type(exc).__name__) from exc
            raise

    async def _send(self, message: OutboundMessage) -> SendResult | None:
        if message.kind is OutKind.VANISH:
            await self._vanish(message.address.chat_id, message.refs)
            return None
        if message.kind is OutKind.FORGET:
            await self._forget(message.address.chat_id)
            return None
        if message.kind is OutKind.LEAVE:
            await self._leave(message.address.chat_id)
            return None
        if message.kind is OutKind.CLOSE:
            await self._close_case_room(message.address.chat_id)
            return None
        if message.kind is OutKind.COPY:
            return await self._copy(message)
        if message.kind is OutKind.CASE_CLAIMED:
            return await self._case_claimed(message)
        event_id = await self._post(
            message.address.chat_id,
            message.text,
            message.flat_buttons,
            _txn(message),
            person=self._to_person(message),
            account=message.address.account,
        )
        return SendResult(ref=event_id)

    def _to_person(self, message: OutboundMessage) -> bool:
        """Whether ``message`` goes into a person's own chat (not a staff or case room)."""
        room_id = message.address.chat_id
        staff = (
            room_id in self.staff_rooms
            or room_id in self._case_room_ids
            or room_id in self._room_programme
            or room_id in self.created_staff_rooms.values()
        )
        return message.contact_id is not None and not staff

    def _person_keys(
        self, room: MatrixRoom, *, hold: bool, account: str | None = None
    ) -> frozenset[str]:
        """The accounts that get a person chat's room keys: the person and the bot.

        Raises :class:`Withheld` (with ``hold``) when anyone else is a member (joined or
        invited): a third account would decrypt every later reply. The person is
        ``account`` (from the core's sealed address), else the first one who wrote from
        the chat in this process; unknown, it is the single other member, and with two
        or more nobody is trusted.
        """
        others = {u for u in room.users if u != self.user_id}
        person = account or self._people.get(room.room_id)
        if person is None and len(others) == 1:
            person = next(iter(others))
        if others - {person}:
            if hold:
                raise Withheld("someone else is in the person's chat")
        else:
            self._told_watched.pop(room.room_id, None)  # clean again: tell anew next time
        return frozenset({self.user_id} if person is None else {person, self.user_id})

    async def _tell_watched(self, message: OutboundMessage) -> None:
        """Tell the person once, without any content, why replies stop (keys for the
        person's devices only, so the other account cannot read even this)."""
        room_id = message.address.chat_id
        if room_id in self._told_watched:
            return
        self._told_watched[room_id] = True
        text = translator(self._settings.default_locale)("person.chat_watched")
        try:
            await self._post(room_id, text, watched=True, account=message.address.account)
        except Exception as exc:
            log.warning("matrix: a person could not be told about it: %s", type(exc).__name__)

    async def _post(
        self,
        room_id: str,
        text: str,
        buttons: list[Button] | None = None,
        txn: str | None = None,
        *,
        check: bool = True,
        person: bool = False,
        watched: bool = False,
        account: str | None = None,
    ) -> str:
        """Send a notice; ``txn`` (a stable transaction id) makes a retry idempotent.

        ``check=False`` skips the membership check (coordinator alerts about it).
        ``person``: a person's chat (withheld when someone else is in it); ``watched``:
        the notice about that, sent anyway, keys for the person's devices only.
        """
        shown = tuple(buttons or ())
        response = await self._room_send(
            room_id,
            "m.room.message",
            notice_content(text, shown),
            txn,
            check=check,
            person=person or watched,
            hold=not watched,
            account=account,
        )
        if not isinstance(response, RoomSendResponse):
            raise MatrixError(
                f"sending failed: {getattr(response, 'status_code', None)}",
                status=http_status(response),
            )
        event_id: str = response.event_id
        if shown:
            self._event_buttons[event_id] = shown
            self._last_buttons[room_id] = shown
            if self._offers_reactions(room_id) and len(shown) <= len(BUTTON_KEYCAPS):
                with contextlib.suppress(asyncio.QueueFull):
                    self._reactions.put_nowait((room_id, event_id, len(shown)))
        else:
            self._last_buttons.pop(room_id, None)
        return event_id

    async def _room_send(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        txn: str | None = None,
        *,
        check: bool = True,
        person: bool = False,
        hold: bool = True,
        account: str | None = None,
    ) -> RoomSendResponse | RoomSendError:
        """``AsyncClient.room_send``, split: keys and encryption under the lock, the request
        outside it, so that rooms are served in parallel (nio's key state is not safe for
        concurrent updates; a finished ciphertext is).

        In the rooms the bot created for staff, members who are not current staff are
        removed first (``_reconcile``; the message is held - :class:`SendLater` - while
        one cannot be removed). The group session goes to the devices of allowed
        members only (every device of a person's chat; in staff and case rooms the
        devices of current staff accounts), unverified ones too: a new phone must read
        the answer. Reactions stay unencrypted, as in nio.

        ``person``: a person's chat. Its keys go to the person's devices only, and with
        ``hold`` nothing is sent (:class:`Withheld`) while anyone else is a member, read
        from nio's room state under the lock right before the keys are shared.
        """
        client = self._require_client()
        if check and event_type != "m.reaction" and self._guarded(room_id):
            try:
                await self._reconcile(room_id)
            except SendLater:
                self.stats["held"] += 1
                raise
        try:
            async with self._lock:
                await self._ensure_room(room_id)
                if client.should_query_keys:
                    await client.keys_query()
                room = client.rooms[room_id]
                allowed = self._allowed(room_id)
                if person or (room_id in self._people and allowed is None):
                    if not room.members_synced:
                        await client.joined_members(room_id)
                    allowed = self._person_keys(room, hold=person and hold, account=account)
                if client.olm is not None and room.encrypted:
                    if not room.members_synced:
                        await client.joined_members(room_id)
                        if client.should_query_keys:
                            await client.keys_query()
                    if client.olm.should_share_group_session(room_id):
                        await share_keys(client, room_id, allowed)
                    if event_type != "m.reaction":
                        event_type, content = client.encrypt(room_id, event_type, content)
            method, path, data = Api.room_send(
                client.access_token, room_id, event_type, content, txn or str(uuid4())
            )
            response: RoomSendResponse | RoomSendError = await client._send(
                RoomSendResponse, method, path, data, (room_id,)
            )
        except Exception as exc:
            if _transient(exc):
                self._reshare(room_id)
            raise
        if isinstance(response, RoomSendError) and _unavailable(http_status(response)):
            self._reshare(room_id)
        return response

    def _reshare(self, room_id: str) -> None:
        """After an outage, start a new group session: nio marks a session shared even
        when some of its key messages were lost, and those devices could not read on."""
        client = self.client
        if client is not None:
            with contextlib.suppress(Exception):
                client.invalidate_outbound_session(room_id)

    def _offers_reactions(self, room_id: str) -> bool:
        """Staff and case rooms always; a person's chat only with ``reaction_shortcuts``.

        Element sends reactions unencrypted: the homeservers would see which number a
        person tapped under which question, so people's chats ask for typing by default.
        """
        if self._reactor is None:
            return False
        staff = room_id in self.staff_rooms or room_id in self._case_room_ids
        return staff or self._settings.matrix.reaction_shortcuts

    async def _react_loop(self) -> None:
        """React to questions with 1️⃣ 2️⃣ ...: in Element a tap on one answers.

        Runs beside the replies (it takes the send lock per reaction, so a reply waits
        for at most one); failures only cost the shortcut.
        """
        while True:
            room_id, event_id, count = await self._reactions.get()
            for key in BUTTON_KEYCAPS[:count]:
                content = {
                    "m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}
                }
                try:
                    response = await self._room_send(room_id, "m.reaction", content)
                except Exception as exc:
                    log.debug("matrix: a reaction shortcut failed: %s", type(exc).__name__)
                    break
                if not isinstance(response, RoomSendResponse):
                    break

    async def _ensure_room(self, room_id: str) -> None:
        """Make nio know a room it has not seen in this process (rooms are not cached)."""
        client = self._require_client()
        if room_id in client.rooms:
            return
        encrypted = room_id in client.encrypted_rooms
        if not encrypted:
            state = await client.room_get_state_event(room_id, "m.room.encryption")
            encrypted = isinstance(state, RoomGetStateEventResponse)
        client.rooms[room_id] = MatrixRoom(room_id, self.user_id, encrypted)
        if encrypted:
            client.encrypted_rooms.add(room_id)

    async def _case_claimed(self, message: OutboundMessage) -> SendResult:
        """Open (once per case) an encrypted case room and invite staff; post there.

        A claim addressed to an existing case room (a second counsellor, a restart)
        invites the new accounts into it instead of opening another room.
        """
        client = self._require_client()
        code = message.case_code
        invite = sorted({a for a in message.invite if is_matrix_id(a) and a != self.user_id})
        address = message.address.chat_id
        room_id = self.case_rooms.get((code, address)) if code else None
        programme = self._programme_of(address, invite)
        if room_id is not None and self._room_programme.get(room_id, programme) != programme:
            room_id = None  # another programme's room (a transfer): never reused across
        if (
            room_id is None
            and address not in self.staff_rooms
            and await self._is_case_room(address)
        ):
            room_id = address
        if room_id is not None:
            await self._invite(room_id, invite)
        else:
            if programme is not None:  # only its current staff may be in the room
                invite = [a for a in invite if a in self._staff.get(programme, ())]
            content = {"kind": "case", **({"programme": programme} if programme else {})}
            marker = {"type": ROOM_MARKER, "state_key": "", "content": content}
            async with self._lock:
                response = await client.room_create(
                    name=f"Fall {code}" if code else "Fall",
                    preset=RoomPreset.private_chat,
                    invite=invite,
                    initial_state=[_ENCRYPTION, marker],
                    power_level_override=power_levels(),
                )
                if not isinstance(response, RoomCreateResponse):
                    raise MatrixError(
                        f"case room not created: {response.status_code}",
                        status=http_status(response),
                    )
                room_id = response.room_id
                if programme is not None:
                    self._room_programme[room_id] = programme
                self._register_room(room_id, invite)
        if code:
            self.case_rooms[(code, address)] = room_id
        self._case_room_ids.add(room_id)
        event_id = await self._post(room_id, message.text, message.flat_buttons, _txn(message))
        if address != room_id:
            # The team room learns that the case is taken (code and alias only).
            await self._post(address, message.text, txn=_txn(message, "team"))
        return SendResult(ref=event_id, thread=Address(self.platform, room_id))

    def _programme_of(self, address: str, invite: list[str]) -> str | None:
        """The programme a claim belongs to: the one whose staff room it was sent to
        (among programmes sharing a room, the one the claiming counsellor works for)."""
        for programme, room in self.created_staff_rooms.items():
            if room == address:
                return programme
        if address in self._room_programme:
            return self._room_programme[address]
        if self._directory is None:
            return None
        using = [p.id for p in self._directory.programmes_of_room(Platform.MATRIX.value, address)]
        staffed = [p for p in using if any(a in self._staff.get(p, ()) for a in invite)]
        found = staffed or using
        return found[0] if found else None

    def _register_room(self, room_id: str, invited: list[str]) -> None:
        """Let nio encrypt for a new room at once, invited members included.

        Without this the first message would be shared only with joined members (the
        bot) and the counsellors could never read it.
        """
        client = self._require_client()
        room = MatrixRoom(room_id, self.user_id, encrypted=True)
        room.add_member(self.user_id, None, None)
        for user_id in invited:
            room.add_member(user_id, None, None, invited=True)
        room.members_synced = True
        client.rooms[room_id] = room
        client.encrypted_rooms.add(room_id)
        client.store.save_encrypted_rooms([room_id])
        if client.olm is not None:
            client.olm.update_tracked_users(room)

    async def _invite(self, room_id: str, accounts: list[str]) -> None:
        """Invite accounts into a known room; the next message's keys include them."""
        client = self._require_client()
        allowed = self._allowed(room_id)
        async with self._lock:
            await self._ensure_room(room_id)
            room = client.rooms[room_id]
            new = [
                a for a in accounts if a not in room.users and (allowed is None or a in allowed)
            ]
            for user_id in new:
                response = await client.room_invite(room_id, user_id)
                if type(response).__name__ != "RoomInviteResponse":
                    log.warning("matrix: an invite into a case room failed")
                    continue
                room.add_member(user_id, None, None, invited=True)
            if new and client.olm is not None:
                client.olm.update_tracked_users(room)
                with contextlib.suppress(Exception):
                    client.invalidate_outbound_session(room_id)

    async def _vanish(self, room_id: str, refs: Iterable[str]) -> None:
        """Redact the bot's own messages; failures (already gone, too old) are ignored."""
        client = self._require_client()
        failed = 0
        for ref in refs:
            async with self._lock:
                try:
                    response = await client.room_redact(room_id, ref)
                except Exception:
                    response = None
            if type(response).__name__ != "RoomRedactResponse":
                failed += 1
            self._event_buttons.pop(ref, None)
        self._last_buttons.pop(room_id, None)
        if failed:
            log.info("matrix: %d message(s) could not be redacted", failed)

    async def _copy(self, message: OutboundMessage) -> SendResult | None:
        """Re-send a media event's content (kept in memory only) under the label.

        The content of an encrypted attachment carries its own file key, so it can be
        sent into another encrypted room; the file itself is never downloaded or stored.
        """
        person = self._to_person(message)
        event_id = await self._post(
            message.address.chat_id,
            message.text,
            txn=_txn(message),
            person=person,
            account=message.address.account,
        )
        source = message.copy_from
        content = self._media.get(message.refs[0]) if message.refs else None
        if source is None or source.platform is not Platform.MATRIX or content is None:
            return SendResult(ref=event_id)
        response = await self._room_send(
            message.address.chat_id,
            "m.room.message",
            media_content(content),
            _txn(message, "copy"),
            person=person,
            account=message.address.account,
        )
        if not isinstance(response, RoomSendResponse):
            raise MatrixError(
                f"copying failed: {getattr(response, 'status_code', None)}",
                status=http_status(response),
            )
        return SendResult(ref=response.event_id)

    async def _forget(self, room_id: str) -> None:
        """Leave and forget a room: a case room whose retention passed, or a person's chat
        after their erasure or expiry; failures are ignored.

        Whoever only this room linked to the bot (the person) then leaves the crypto
        store too: devices, keys, Olm and group sessions (see ``forget_user``).
        """
        client = self._require_client()
        async with self._lock:
            members = await self._members(client, room_id)
            try:
                await client.room_leave(room_id)
                await client.room_forget(room_id)
            except Exception as exc:
                log.info("matrix: room could not be forgotten: %s", type(exc).__name__)
            if self._settings.matrix.admin_purge:
                await self._purge_on_server(client, room_id)
            client.rooms.pop(room_id, None)
            self._forget_people(client, room_id, members)
        self._last_buttons.pop(room_id, None)

    async def _leave(self, room_id: str) -> None:
        """Leave and forget a room that is neither a staff room nor a case room."""
        client = self._require_client()
        async with self._lock:
            try:
                await client.room_leave(room_id)
                await client.room_forget(room_id)
            except Exception as exc:
                log.info("matrix: room could not be left: %s", type(exc).__name__)
        self.staff_rooms.discard(room_id)

    async def _close_case_room(self, room_id: str) -> None:
        """A case moved to another programme: remove everyone from its old case room
        (joined and invited, as the server lists them), then leave and forget it.

        Only case rooms the bot made, never a staff room. A member the server refuses to
        remove is logged; the bot leaves anyway, so nothing new reaches the room.
        """
        if room_id in self.staff_rooms or not await self._is_case_room(room_id):
            log.warning("matrix: a room to close is not a case room; left alone")
            return
        client = self._require_client()
        async with self._lock:
            present: set[str] = set()
            state = await client.room_get_state(room_id)
            if isinstance(state, RoomGetStateResponse):
                present = {
                    str(e.get("state_key"))
                    for e in state.events
                    if e.get("type") == "m.room.member"
                    and e.get("content", {}).get("membership") in ("join", "invite")
                }
            room = client.rooms.get(room_id)
            if room is not None:
                present |= set(room.users) | set(room.invited_users)
            failed = 0
            for user_id in sorted(present - {self.user_id}):
                response = await client.room_kick(room_id, user_id, reason="Fall übergeben")
                if not isinstance(response, RoomKickResponse):
                    failed += 1
            if failed:
                log.warning("matrix: %d member(s) could not be removed from a case room", failed)
            with contextlib.suppress(Exception):
                client.invalidate_outbound_session(room_id)
            await client.room_leave(room_id)
            await client.room_forget(room_id)
        for key in [k for k, r in self.case_rooms.items() if r == room_id]:
            del self.case_rooms[key]
        self._last_buttons.pop(room_id, None)

    async def _members(self, client: AsyncClient, room_id: str) -> set[str]:
        """Everyone but the bot in a room, as known here and as the server says."""
        room = client.rooms.get(room_id)
        members = set(room.users) | set(room.invited_users) if room else set()
        with contextlib.suppress(Exception):
            response = await client.joined_members(room_id)
            members |= {m.user_id for m in getattr(response, "members", ())}
        members.discard(self.user_id)
        return members

    def _forget_people(self, client: AsyncClient, room_id: str, members: set[str]) -> None:
        """Drop what the crypto store and nio's memory keep about people and a left room,
        for members who share no other room with the bot (staff keep theirs)."""
        still = {u for room in client.rooms.values() for u in (*room.users, *room.invited_users)}
        olm = client.olm
        store = client.store
        for user_id in members - still:
            forget = getattr(store, "forget_user", None)
            if callable(forget):
                try:
                    forget(user_id, [room_id])
                except Exception as exc:
                    log.warning("matrix: crypto store cleanup failed: %s", type(exc).__name__)
            if olm is not None:
                devices = olm.device_store._entries.pop(user_id, {})
                for device in devices.values():
                    olm.session_store._entries.pop(device.curve25519, None)
                olm.tracked_users.discard(user_id)
                olm.users_for_key_query.discard(user_id)
        if olm is not None:
            olm.inbound_group_store._entries.pop(room_id, None)
            olm.outbound_group_sessions.pop(room_id, None)

    async def _purge_on_server(self, client: AsyncClient, room_id: str) -> None:
        """Delete and purge the room on the bot's own Synapse (admin API; failures logged)."""
        path = f"/_synapse/admin/v1/rooms/{quote(room_id, safe='')}"
        headers = {
            "Authorization": f"Bearer {client.access_token}",
            "Content-Type": "application/json",
        }
        try:
            response = await client.send("DELETE", path, json.dumps({"purge": True}), headers)
            status = int(response.status)
            response.release()
        except Exception as exc:
            log.warning("matrix: room purge failed: %s", type(exc).__name__)
            return
        if status != 200:
            log.warning("matrix: room purge refused (HTTP %d; is the bot a server admin?)", status)

    def _require_client(self) -> AsyncClient:
        if self.client is None:
            raise RuntimeError("matrix transport not started")
        return self.client

    @property
    def device_id(self) -> str | None:
        """The bot's current device (for checks)."""
        return self.client.device_id if self.client else None
