"""The sync loop: long-poll the homeserver, hand each room's new events to the core.

No room waits for another room's backlog. Each sync response is split by room: a
room's invite, its new events (a gap in a limited timeline filled first), a retry of
its undecryptable events and the membership check after member events go, in this
order, into the room's own queue; one worker per room with work handles it, so each
room's events reach the core strictly in order while rooms proceed in parallel. A
shared gate (``gate.LightestFirst``) bounds how many events are in the core at once;
a turn is taken per event and a freed one goes to the room with the least queued, so
a room with a long backlog (a flood) never goes before a person with one message.
The loop syncs on without waiting for the work; the key housekeeping (after the
first batch) runs beside it.

The sync token of a batch is saved only when every room's work of that batch *and of
all earlier batches* has returned from the core: a crash (even kill -9) re-delivers
everything after the saved token, and the core drops what it already processed (it
de-duplicates by event id). matrix-nio itself would save the token *before* its
callbacks run, so its ``store_sync_tokens`` is off here and the receiver owns it.
While more than ``_MAX_QUEUED`` events wait, the loop pauses before the next sync.

The first sync after a start asks for the full room state (so that rooms, members and
encryption are known without a local room cache) and is handled completely before
the transport reports ready; when there was no stored token at all, its timeline is
history and is not processed.
"""
# size: the sync loop, the per-room queues and the sync-token bookkeeping share one
# state (which batches every room has finished); apart, they would pass it around.

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from nio import (
    AsyncClient,
    EncryptionError,
    MegolmEvent,
    SyncError,
    SyncResponse,
)

from bot.bounded import BoundedDict
from bot.transports.base import InboundHandler, SendLater
from bot.transports.matrix.common import MAX_REMEMBERED, MatrixError, MatrixState, transient
from bot.transports.matrix.connection import Connection
from bot.transports.matrix.gate import LightestFirst
from bot.transports.matrix.inbound import Inbound
from bot.transports.matrix.membership import Membership
from bot.transports.matrix.rooms import Rooms
from bot.transports.matrix.sending import Sender
from bot.transports.matrix.timeline import accept_invite, backfill

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
#: Events queued (all rooms) above which the loop waits before the next sync.
_MAX_QUEUED: Final = 5000


@dataclass(eq=False)
class Batch:
    """One sync response's work: its token is saved once it and all earlier are done."""

    token: str
    #: Room jobs not finished yet.
    left: int = 0
    #: All of its jobs are queued (no more will be added).
    sealed: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


#: One room's job: a batch it belongs to and the work.
_Job = tuple[Batch, Callable[[], Awaitable[None]]]


class Receiver:
    """Runs the sync loop and delivers events to the core, one queue per room."""

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
        in_core: int = 16,
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
        #: Room -> its jobs in order, and the worker running them.
        self._queues: dict[str, deque[_Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        #: Batches not yet saved, oldest first.
        self._batches: deque[Batch] = deque()
        #: The token the next sync starts from (may be ahead of the saved one).
        self._next: str | None = None
        self._queued = 0
        self._progress = asyncio.Event()
        #: Queued events per room (the weight of its next turn) and in all.
        self._backlog: dict[str, int] = {}
        self._gate = LightestFirst(in_core)
        #: Something that must end the loop (the process dying: not an Exception).
        self._fatal: BaseException | None = None
        self._failed = asyncio.Event()
        self._housekeeper: asyncio.Task[None] | None = None
        self._housekeep_again = False

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Sync until stopped; any failure backs off and retries, nothing escapes.

        Stopped, it lets the queued work finish (``stop`` bounds the wait); cancelled or
        ended by a fatal failure, it cancels the rest (it comes again after a start).
        """
        self._fatal = None
        self._failed.clear()
        try:
            await self._loop()
            if self._fatal is None:
                await self._settle()
        finally:
            await self._cancel_workers()

    async def _loop(self) -> None:
        st = self._state
        delay = 1.0
        first = True
        self._next = None
        while not self.stopping.is_set():
            try:
                if not st.online:
                    client = st.require_client()
                    if not await self._connection.reachable(client):
                        raise SendLater("the homeserver is not reachable")
                    await self._connect(client)
                    log.info("matrix homeserver reached; connected")
                await self._until(self._room_for_more())
                since = self._next or st.since
                response = await self._sync(first, since)
                if response is None:
                    return
                if isinstance(response, SyncError):
                    raise MatrixError(f"sync failed: {response.status_code}")
                batch = await self.dispatch(
                    response, since=since, initial=first and st.since is None
                )
                self._next = response.next_batch
                if first:  # the full state is known now: rooms hold only current staff
                    await self._until(batch.done.wait())
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

    async def _until(self, work: Awaitable[object]) -> None:
        """Await ``work``; a fatal failure of a room's worker ends the loop instead."""
        task = asyncio.ensure_future(work)
        if self._fatal is not None:
            task.cancel()
            raise self._fatal
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait({task, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not task.done():
                task.cancel()
        if self._fatal is not None:
            raise self._fatal
        task.result()

    async def _room_for_more(self) -> None:
        """Back-pressure: wait while too many events are queued (memory stays bounded)."""
        while self._queued > _MAX_QUEUED and not self.stopping.is_set():
            self._progress.clear()
            await self._progress.wait()

    async def _settle(self) -> None:
        """Wait until every room's queued work is done (or fatally failed)."""
        while self._workers and self._fatal is None:
            await asyncio.gather(*self._workers.values(), return_exceptions=True)
        if self._fatal is not None:
            raise self._fatal

    async def _cancel_workers(self) -> None:
        workers = list(self._workers.values())
        if self._housekeeper is not None:
            workers.append(self._housekeeper)
            self._housekeeper = None
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        self._batches.clear()
        self._backlog.clear()
        self._queued = 0

    async def _sync(self, first: bool, since: str | None) -> SyncResponse | SyncError | None:
        """One sync; returns None when ``stop`` interrupted the long poll."""
        client = self._state.require_client()
        request = asyncio.ensure_future(
            client.sync(
                timeout=0 if first else self._sync_timeout_ms,
                sync_filter=_SYNC_FILTER,
                since=since,
                full_state=True if first else None,
            )
        )
        stopper = asyncio.ensure_future(self.stopping.wait())
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            done, _ = await asyncio.wait(
                {request, stopper, failed}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            failed.cancel()
        if request in done:
            result: SyncResponse | SyncError = request.result()
            # A sync sent before the bot forgot a room may bring it back into memory.
            for room_id in client.rooms.keys() & self._state.forgotten:
                if self._state.user_id not in client.rooms[room_id].users:
                    client.rooms.pop(room_id, None)
            return result
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await request
        if self._fatal is not None:
            raise self._fatal
        return None

    # ------------------------------------------------------------------ batches
    async def dispatch(
        self, response: SyncResponse, *, since: str | None, initial: bool = False
    ) -> Batch:
        """Queue one sync response's work per room and return its batch (not awaited).

        ``since``: the token the sync started from (where a gap's backfill ends).
        """
        st = self._state
        st.stats["syncs"] += 1
        if initial or not self.ready.is_set():
            await self._housekeeping()  # the first batch: keys known before any reply
        else:
            self._housekeep_soon()  # beside the rooms' work: no batch waits for key requests
        batch = Batch(response.next_batch)
        self._batches.append(batch)
        for room_id, info in response.rooms.invite.items():
            self._queue(batch, room_id, partial(self._invite_job, room_id, info))
        changed = self._rooms.learn(response)
        if not initial:
            for room_id, info in response.rooms.join.items():
                count = len(info.timeline.events)
                if count or info.timeline.limited:
                    job = partial(self._room_events, room_id, info, since)
                    self._queue(batch, room_id, job, count)
            self._retry_undecrypted(batch)
        for room_id in changed:  # someone joined or was invited: staff only
            self._queue(batch, room_id, partial(self._reconcile_job, room_id))
        batch.sealed = True
        self._advance()
        return batch

    async def _invite_job(self, room_id: str, info: Any) -> None:
        await guard(self._state, self._on_invite(room_id, info.invite_state))

    async def _reconcile_job(self, room_id: str) -> None:
        await guard(self._state, self._membership.reconcile(room_id, hold=False))

    def _queue(
        self, batch: Batch, room_id: str, work: Callable[[], Awaitable[None]], events: int = 0
    ) -> None:
        """Append a job to a room's queue; start the room's worker if it has none."""
        batch.left += 1
        self._queued += events
        self._backlog[room_id] = self._backlog.get(room_id, 0) + events
        queue = self._queues.setdefault(room_id, deque())
        queue.append((batch, work))
        if room_id not in self._workers:
            worker = asyncio.get_running_loop().create_task(
                self._work(room_id, queue), name="matrix-room"
            )
            self._workers[room_id] = worker

    async def _work(self, room_id: str, queue: deque[_Job]) -> None:
        """Run one room's jobs in order until its queue is empty."""
        try:
            while queue:
                batch, work = queue[0]
                if not await self._retrying(work):
                    return  # stopping: the rest comes again after the next start
                queue.popleft()
                batch.left -= 1
                self._advance()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the process dying (a test's stand-in): end the loop
            self._fatal = exc
            self._failed.set()
        finally:
            if self._queues.get(room_id) is queue and not queue:
                del self._queues[room_id]
            if self._workers.get(room_id) is asyncio.current_task():
                del self._workers[room_id]

    async def _retrying(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Run a job until it works (a gap's backfill may fail while the server is away);
        False when stopped meanwhile. Events themselves never raise (``guard``)."""
        delay = 1.0
        while True:
            try:
                await work()
                return True
            except Exception as exc:
                self._state.stats["sync_errors"] += 1
                log.warning("matrix room events failed (%s); retrying", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                if self.stopping.is_set():
                    return False
                delay = min(delay * 2, self._max_backoff)

    def _advance(self) -> None:
        """Save the token of every finished batch whose earlier batches are finished."""
        saved: str | None = None
        while self._batches and self._batches[0].sealed and self._batches[0].left == 0:
            batch = self._batches.popleft()
            batch.done.set()
            saved = batch.token
        if saved is not None:
            self._state.since = saved
            client = self._state.client
            if client is not None:
                client.store.save_sync_token(saved)

    async def _room_events(self, room_id: str, info: Any, since: str | None) -> None:
        """One room's new events through the core, in order (a gap is filled first);
        a turn per event, so rooms with less waiting go in between."""
        events = list(info.timeline.events)
        if info.timeline.limited and since and info.timeline.prev_batch:
            client = self._state.require_client()
            older = await backfill(client, room_id, info.timeline.prev_batch, since)
        else:
            older = []
        for event in older:
            await self._one_event(room_id, event, counted=False)
        for event in events:
            await self._one_event(room_id, event)

    async def _one_event(self, room_id: str, event: Any, *, counted: bool = True) -> None:
        try:
            async with self._gate.turn(self._backlog.get(room_id, 0)):
                await guard(self._state, self._on_event(room_id, event))
        finally:
            if counted:
                self._consumed(room_id)

    def _consumed(self, room_id: str) -> None:
        """One queued event of a room went through (back-pressure, weights)."""
        self._queued -= 1
        left = self._backlog.get(room_id, 0) - 1
        if left > 0:
            self._backlog[room_id] = left
        else:
            self._backlog.pop(room_id, None)
        self._progress.set()

    def _housekeep_soon(self) -> None:
        """Run the key housekeeping in the background (once more if it is running)."""
        self._housekeep_again = True
        if self._housekeeper is None or self._housekeeper.done():
            self._housekeeper = asyncio.get_running_loop().create_task(
                self._housekeep_while_asked(), name="matrix-keys"
            )

    async def _housekeep_while_asked(self) -> None:
        while self._housekeep_again and not self.stopping.is_set():
            self._housekeep_again = False
            try:
                await self._housekeeping()
            except Exception as exc:  # the next sync asks again
                self._state.stats["sync_errors"] += 1
                log.warning("matrix key housekeeping failed: %s", type(exc).__name__)

    async def _housekeeping(self) -> None:
        """Upload one-time keys, query changed device lists, claim Olm sessions, send
        queued to-device messages (key requests and answers)."""
        client = self._state.require_client()
        async with self._state.keys_lock:
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())
        with contextlib.suppress(Exception):
            await client.send_to_device_messages()

    # ------------------------------------------------------------------ events
    async def _on_invite(self, room_id: str, invite_state: list[Any]) -> None:
        client = self._state.require_client()
        await accept_invite(client, self._state.user_id, self._rooms, room_id, invite_state)

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

    def _retry_undecrypted(self, batch: Batch) -> None:
        """Events whose keys arrived since: queue them in their rooms."""
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
            self._queue(batch, room_id, partial(self._one_event, room_id, decrypted), 1)


async def guard(state: MatrixState, work: Awaitable[object]) -> None:
    """Run one event's work; a failure is counted and logged, never raised."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        state.stats["failed"] += 1
        log.error("matrix event not handled: %s", type(exc).__name__)
