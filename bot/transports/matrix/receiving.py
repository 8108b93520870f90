"""The sync loop: long-poll the homeserver, hand each room's new events to the core.

Each sync response is handled in order: invites (join direct chats and configured
staff rooms, decline the rest), key housekeeping (so replies reach new devices), then
the new room events go through the core - rooms in parallel (bounded), each room's
events in order. Only after the whole batch is handled is the sync token saved: a
crash re-delivers the batch, and the core drops what it already processed (it
de-duplicates by event id). matrix-nio itself would save the token *before* its
callbacks run, so its ``store_sync_tokens`` is off here and the loop owns the token.

The first sync after a start asks for the full room state (so that rooms, members and
encryption are known without a local room cache); when there was no stored token at
all, its timeline is history and is not processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from nio import (
    AsyncClient,
    EncryptionError,
    InviteMemberEvent,
    JoinResponse,
    MegolmEvent,
    RoomMessagesResponse,
    SyncError,
    SyncResponse,
)
from nio.api import MessageDirection

from bot.bounded import BoundedDict
from bot.transports.base import InboundHandler, SendLater
from bot.transports.matrix.common import MAX_REMEMBERED, MatrixError, MatrixState, transient
from bot.transports.matrix.connection import Connection
from bot.transports.matrix.inbound import Inbound
from bot.transports.matrix.membership import Membership
from bot.transports.matrix.rooms import Rooms
from bot.transports.matrix.sending import Sender

__all__ = ["UNDECRYPTABLE_TEXT", "Receiver"]

log = logging.getLogger(__name__)

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
_PENDING_SECONDS: Final = 600.0
_BACKFILL_PAGES: Final = 5
#: Rooms whose events are handled at the same time within one sync batch.
_ROOMS_AT_ONCE: Final = 16


class Receiver:
    """Runs the sync loop and delivers events to the core."""

    def __init__(
        self,
        state: MatrixState,
        *,
        connection: Connection,
        connect: Callable[[AsyncClient], Awaitable[None]],
        rooms: Rooms,
        membership: Membership,
        sender: Sender,
        inbound: Inbound,
        sync_timeout_ms: int,
        max_backoff: float,
    ) -> None:
        self._state = state
        self._connection = connection
        self._connect = connect
        self._rooms = rooms
        self._membership = membership
        self._sender = sender
        self._inbound = inbound
        self._sync_timeout_ms = sync_timeout_ms
        self._max_backoff = max_backoff
        self.handler: InboundHandler | None = None
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self._pending: BoundedDict[str, tuple[str, MegolmEvent, float]] = BoundedDict(
            MAX_REMEMBERED
        )
        self._asked: BoundedDict[str, bool] = BoundedDict(MAX_REMEMBERED)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Sync until stopped; any failure backs off and retries, nothing escapes."""
        st = self._state
        delay = 1.0
        first = True
        while not self.stopping.is_set():
            try:
                if not st.online:
                    client = st.require_client()
                    if not await self._connection.reachable(client):
                        raise SendLater("the homeserver is not reachable")
                    await self._connect(client)
                    log.info("matrix homeserver reached; connected")
                response = await self._sync(first)
                if response is None:
                    return
                if isinstance(response, SyncError):
                    raise MatrixError(f"sync failed: {response.status_code}")
                await self._handle_sync(response, initial=first and st.since is None)
                if first:  # the full state is known now: rooms hold only current staff
                    await guard(st, self._membership.reconcile_rooms())
                first = False
                delay = 1.0
                self.ready.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                st.stats["sync_errors"] += 1
                log.log(
                    logging.WARNING if st.online or transient(exc) else logging.ERROR,
                    "matrix %s failed (%s); retrying in %.0f s",
                    "sync" if st.online else "connection",
                    type(exc).__name__,
                    delay,
                )
                await self._connection.relogin_if_needed()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, self._max_backoff)

    async def _sync(self, first: bool) -> SyncResponse | SyncError | None:
        """One sync; returns None when ``stop`` interrupted the long poll."""
        client = self._state.require_client()
        request = asyncio.ensure_future(
            client.sync(
                timeout=0 if first else self._sync_timeout_ms,
                sync_filter=_SYNC_FILTER,
                since=self._state.since,
                full_state=True if first else None,
            )
        )
        stopper = asyncio.ensure_future(self.stopping.wait())
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
        st = self._state
        client = st.require_client()
        st.stats["syncs"] += 1
        for room_id, info in response.rooms.invite.items():
            await guard(st, self._on_invite(room_id, info.invite_state))
        joined_changed = self._rooms.learn(response)
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
            await guard(st, self._membership.reconcile(room_id, hold=False))
        with contextlib.suppress(Exception):
            await client.send_to_device_messages()
        st.since = response.next_batch
        client.store.save_sync_token(response.next_batch)

    async def _room_events(self, gate: asyncio.Semaphore, room_id: str, info: Any) -> None:
        """One room's new events through the core, in order (a gap is filled first)."""
        async with gate:
            events = list(info.timeline.events)
            if info.timeline.limited and self._state.since and info.timeline.prev_batch:
                events = await self._backfill(room_id, info.timeline.prev_batch) + events
            for event in events:
                await guard(self._state, self._on_event(room_id, event))

    async def _housekeeping(self) -> None:
        """Upload one-time keys, query changed device lists, claim Olm sessions."""
        client = self._state.require_client()
        async with self._state.keys_lock:
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())

    async def _backfill(self, room_id: str, prev_batch: str) -> list[Any]:
        """Events a limited timeline left out, back to the last handled sync token."""
        client = self._state.require_client()
        older: list[Any] = []
        start: str | None = prev_batch
        for _ in range(_BACKFILL_PAGES):
            page = await client.room_messages(
                room_id,
                start=start,
                end=self._state.since,
                direction=MessageDirection.back,
                limit=100,
            )
            if not isinstance(page, RoomMessagesResponse) or not page.chunk:
                break
            older.extend(page.chunk)
            if not page.end or page.end == start:
                break
            start = page.end
        older.reverse()
        return older

    # ------------------------------------------------------------------ events
    async def _on_invite(self, room_id: str, invite_state: list[Any]) -> None:
        client = self._state.require_client()
        bot = self._state.user_id
        mine = [
            e
            for e in invite_state
            if isinstance(e, InviteMemberEvent) and e.state_key == bot and e.membership == "invite"
        ]
        if not mine:
            return
        direct = any(bool(e.content.get("is_direct")) for e in mine)
        if room_id in self._rooms.staff_rooms or direct:
            response = await client.join(room_id)
            if not isinstance(response, JoinResponse):
                log.warning("matrix: joining an invited room failed")
        else:
            await client.room_leave(room_id)  # declines group invites

    async def _on_event(self, room_id: str, event: Any) -> None:
        st = self._state
        client = st.require_client()
        room = client.rooms.get(room_id)
        if room is None or getattr(event, "sender", None) in (None, st.user_id):
            return
        st.stats["events"] += 1
        if isinstance(event, MegolmEvent):
            await self._undecryptable(room_id, event)
            return
        message = await self._inbound.parse(room, event)
        if message is not None and self.handler is not None:
            await self.handler(message)
            st.stats["handled"] += 1

    async def _undecryptable(self, room_id: str, event: MegolmEvent) -> None:
        """Keep the event for a retry, ask its sender's devices for the key, tell them."""
        self._state.stats["undecryptable"] += 1
        event.room_id = room_id
        self._pending[event.event_id] = (room_id, event, time.monotonic())
        key = f"{room_id}|{event.session_id}"
        if key in self._asked:
            return
        self._asked[key] = True
        with contextlib.suppress(Exception):
            await self._state.require_client().request_room_key(event)
        await self._sender.post(room_id, UNDECRYPTABLE_TEXT)

    async def _retry_undecrypted(self) -> None:
        """Events whose keys arrived since: handle them now."""
        client = self._state.require_client()
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
            await guard(self._state, self._on_event(room_id, decrypted))


async def guard(state: MatrixState, work: Awaitable[object]) -> None:
    """Run one event's work; a failure is counted and logged, never raised."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        state.stats["failed"] += 1
        log.error("matrix event not handled: %s", type(exc).__name__)
