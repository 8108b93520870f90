"""The Matrix transport on matrix-nio (end-to-end encrypted, vodozemac): the one public
class, which wires the package's parts.

* ``connection``: the encrypted store, login, device, cross-signing, profile;
* ``receiving``: the sync loop, each room's events to the core (``inbound`` reduces
  an event to what the core needs);
* ``sending``: membership check, room keys, encryption, the request (``render``
  builds the content; ``media`` re-sends attachments);
* ``rooms`` (what each room is), ``membership`` (who is in it, staff rooms, removals;
  ``guard`` holds the pure rules), ``room_actions`` (case rooms, leaving, redacting);
* ``session``, ``crypto_store``, ``crosssign``: secrets at rest and device trust.

Privacy: the transport adds nothing to what the core sends; case rooms are named by
case code only; reply fallbacks (which quote account ids) are stripped from inbound
text; logs carry counts and exception types, never ids or text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from nio import AsyncClient

from bot.transports.base import InboundHandler, SendLater, Withheld, first_of
from bot.transports.matrix.common import MatrixError, MatrixState, transient, txn
from bot.transports.matrix.connection import Connection
from bot.transports.matrix.inbound import Inbound
from bot.transports.matrix.media import Media
from bot.transports.matrix.membership import Membership
from bot.transports.matrix.receiving import UNDECRYPTABLE_TEXT, Receiver, guard
from bot.transports.matrix.room_actions import RoomActions
from bot.transports.matrix.rooms import Rooms
from bot.transports.matrix.sending import Sender
from config.directory import Directory, load_directory
from config.messages import OutboundMessage, OutKind, Platform, SendResult
from config.settings import ConfigError, Settings

__all__ = ["UNDECRYPTABLE_TEXT", "MatrixError", "MatrixTransport"]

log = logging.getLogger(__name__)


class MatrixTransport:
    """A Matrix bot account: direct chats with people, staff rooms and case rooms."""

    platform = Platform.MATRIX
    #: One sync per account: only the leader runs it (see bot.leader).
    leader_only = True
    #: Undelivered events come again after a crash: the core keeps replies until sent.
    redelivers = True

    # ``in_core``: events handed to the core at the same time (all rooms; a turn per
    # event, the room with the least waiting first; see ``receiving``).
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
        in_core: int = 16,
    ) -> None:
        ms = settings.matrix
        if not ms.homeserver or not ms.user_id:
            raise ConfigError("matrix needs matrix.homeserver and matrix.user_id")
        self._settings = settings
        self.homeserver: str = ms.homeserver
        self.user_id: str = ms.user_id
        self.store_path: Path = ms.store_path or settings.data_dir / "matrix"
        self.state = MatrixState(settings, self.homeserver, self.user_id, self.store_path)
        self.connection = Connection(
            self.state, device_name=device_name, request_retries=request_retries
        )
        self.rooms = Rooms(self.state, set(staff_rooms))
        self.rooms.team = dict(team_accounts or {})
        self.membership = Membership(self.state, self.rooms, self.connection)
        self.sender = Sender(self.state, self.rooms, self.membership)
        self.membership.notify = self.sender.alert
        self.media = Media(self.sender)
        self.actions = RoomActions(self.state, self.rooms, self.membership, self.sender)
        self.inbound = Inbound(self.rooms, self.sender, self.media)
        self.receiver = Receiver(
            self.state,
            connection=self.connection,
            connect=self._connect,
            rooms=self.rooms,
            membership=self.membership,
            sender=self.sender,
            inbound=self.inbound,
            sync_timeout_ms=sync_timeout_ms,
            max_backoff=max_backoff,
            in_core=in_core,
        )
        #: Set once the first sync was handled.
        self.ready = self.receiver.ready
        #: Set while the homeserver has not been reached since the start (retrying).
        self.offline = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reactor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ views
    @property
    def client(self) -> AsyncClient | None:
        return self.state.client

    @client.setter
    def client(self, client: AsyncClient | None) -> None:
        self.state.client = client

    @property
    def online(self) -> bool:
        return self.state.online

    @property
    def stats(self) -> dict[str, int]:
        """Counters for tests and health checks (no identifiers)."""
        return self.state.stats

    @property
    def staff_rooms(self) -> set[str]:
        return self.rooms.staff_rooms

    @property
    def created_staff_rooms(self) -> dict[str, str]:
        """Staff rooms the bot created (programme id -> room)."""
        return self.rooms.created_staff_rooms

    @property
    def case_rooms(self) -> dict[tuple[str, str], str]:
        """(case code, staff room it was claimed from) -> case room."""
        return self.rooms.case_rooms

    @property
    def on_staff_rooms(self) -> Callable[[Platform, dict[str, str]], None] | None:
        """Who wants to know the created staff rooms."""
        return self.membership.on_staff_rooms

    @on_staff_rooms.setter
    def on_staff_rooms(self, callback: Callable[[Platform, dict[str, str]], None] | None) -> None:
        self.membership.on_staff_rooms = callback

    @property
    def device_id(self) -> str | None:
        """The bot's current device (for checks)."""
        return self.client.device_id if self.client else None

    @property
    def connected(self) -> bool:
        """A sync went through since the start (the runner reports readiness on it)."""
        return self.ready.is_set()

    # ------------------------------------------------------------------ directory
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
        self.rooms.use_directory(directory)
        if self.online:
            task = asyncio.get_running_loop().create_task(
                guard(self.state, self._follow_directory())
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _follow_directory(self) -> None:
        try:
            await self.membership.ensure_team_rooms()
        finally:  # case rooms are cleaned up even when a team room could not be
            await self.membership.reconcile_rooms()

    async def reconcile_rooms(self) -> int:
        """Remove non-staff members from every known case and created staff room."""
        return await self.membership.reconcile_rooms()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, on_message: InboundHandler) -> None:
        """Open the encrypted store, log in, cross-sign the device, start syncing.

        An unreachable homeserver does not fail the start: the sync loop keeps trying
        (with back-off) and ``send`` raises :class:`SendLater` until it got through.

        Raises:
            MatrixError: the homeserver refused the login or the cross-signing keys.
            SessionError: the stored session or store cannot be opened with the keys.
        """
        self.receiver.handler = on_message
        self.receiver.stopping.clear()
        self.connection.load_keys()
        client = await asyncio.to_thread(self.connection.open_client)
        self.state.client = client
        try:
            if await self.connection.reachable(client):
                await self._connect(client)
        except Exception as exc:
            if not transient(exc):
                await self.connection.close_client()
                raise
        except BaseException:
            await self.connection.close_client()
            raise
        if not self.online:
            # The other transports start anyway; replies for Matrix wait in the outbox.
            self.offline.set()
            log.warning("matrix homeserver not reachable; starting without it, retrying")
        self.sender.reacting = True
        self._task = asyncio.create_task(self.receiver.run(), name="matrix-sync")
        self._reactor = asyncio.create_task(self.sender.react_loop(), name="matrix-reactions")

    async def _connect(self, client: AsyncClient) -> None:
        """Log in, cross-sign the device, join the staff rooms."""
        await self.connection.login(client)
        await self.connection.cross_sign(client)
        await self.connection.set_profile(client)
        await self.membership.join_staff_rooms(client)
        try:
            await self.membership.ensure_team_rooms()
        except Exception as exc:
            if transient(exc):
                raise
            # Announcements still reach the programme's other rooms; the rest works.
            log.error("matrix: staff rooms could not be set up: %s", type(exc).__name__)
        self.state.online = True
        self.offline.clear()

    async def wait_ready(self) -> None:
        """Return once the first sync was handled, or the start went on without the server.

        An unreachable homeserver must not hold up the other platforms: the sync loop
        keeps trying (``offline`` is set until it got through; ``ready`` after that).
        """
        await first_of(self.ready, self.offline)

    async def wait_connected(self) -> None:
        """Return once a sync went through (perhaps long after the start: an outage)."""
        await self.ready.wait()

    async def stop(self, grace: float = 15.0) -> None:
        """Finish the events in hand (up to ``grace`` seconds), then close the client."""
        self.receiver.stopping.set()
        self.state.online = False  # sends from now on wait for the next start (SendLater)
        self.sender.reacting = False
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
        await self.connection.close_client()
        self.ready.clear()
        self.offline.clear()
        self.state.online = False

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
            await self.sender.tell_watched(message)
            raise
        except SendLater:
            raise
        except Exception as exc:
            if transient(exc) or not self.online:  # unreachable, or stopped meanwhile
                raise SendLater(type(exc).__name__) from exc
            raise

    async def _send(self, message: OutboundMessage) -> SendResult | None:
        room_id = message.address.chat_id
        if message.kind is OutKind.VANISH:
            await self.actions.vanish(room_id, message.refs)
            return None
        if message.kind is OutKind.FORGET:
            await self.actions.forget(room_id)
            return None
        if message.kind is OutKind.LEAVE:
            await self.actions.leave(room_id)
            return None
        if message.kind is OutKind.CLOSE:
            await self.actions.close_case_room(room_id)
            return None
        if message.kind is OutKind.COPY:
            return await self.media.copy(message)
        if message.kind is OutKind.CASE_CLAIMED:
            return await self.actions.case_claimed(message)
        event_id = await self.sender.post(
            room_id,
            message.text,
            message.flat_buttons,
            txn(message),
            person=self.sender.to_person(message),
            account=message.address.account,
        )
        return SendResult(ref=event_id)
