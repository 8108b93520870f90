"""Receiving: one update -> the core, chats in parallel, each chat in order.

Every update goes into its chat's lane; a lane handles its updates one after the
other, lanes run concurrently (bounded by :class:`~.slots.Slots`, which a wait for
Telegram does not hold). An update counts as returned once the core's
``on_message`` returned for it (its effects and replies committed): only then may it
be confirmed to Telegram.

Polling (:class:`Poller`) fetches the next ``getUpdates`` while earlier updates are
still in their lanes: a chat that waits - its reply stuck behind a staff group's
limit of 20 a minute - holds up nobody else's. The offset sent with each call confirms
exactly the updates below the oldest one still open; Telegram hands the open ones back
with every call until then, and they are skipped (already in a lane). A crash before
the confirmation makes Telegram deliver them again; the core drops them by id.
The webhook (:mod:`.webhook`) uses the same lanes and answers 200 once the update
returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine, Iterable
from functools import partial
from typing import Any

from telegram.error import InvalidToken, RetryAfter, TelegramError

from bot.transports.base import InboundHandler, first_of
from bot.transports.telegram.calls import BotCalls, SendFailed, seconds
from bot.transports.telegram.config import TelegramConfig, TelegramStats
from bot.transports.telegram.connection import Connection
from bot.transports.telegram.membership import Membership
from bot.transports.telegram.slots import Slots
from bot.transports.telegram.updates import Incoming, Malformed, parse_update, update_id_of

log = logging.getLogger(__name__)

#: How many returned update ids are remembered for :meth:`Receiver.wait_handled`.
DONE_MEMORY = 10_000
#: While updates are in the lanes, poll again once all of them returned (one call per
#: batch, as long as nothing waits), or after at most this long: new updates of other
#: chats wait no longer than this behind a chat that waits.
REPOLL = 0.1
#: A button answer or keyboard removal gives up after this long (it may wait for a 429).
TIDY_SECONDS = 60.0
#: At most this many of them wait at once.
TIDY_MAX = 1000


class Receiver:
    """Lanes per chat, the processing of one update, and what returned.

    Args:
        config: concurrency and handler retries.
        calls: Bot API calls (button answers, keyboard removal).
        membership: handles joins and group migrations.
    """

    def __init__(self, config: TelegramConfig, calls: BotCalls, membership: Membership) -> None:
        self.config = config
        self.stats: TelegramStats = calls.stats
        self._calls = calls
        self._membership = membership
        self.handler: InboundHandler | None = None
        self.stopping = asyncio.Event()
        self._slots = Slots(config.concurrency)
        self._lanes: dict[str, deque[Incoming]] = {}
        self._lane_tasks: set[asyncio.Task[None]] = set()
        #: Button answers and keyboard removals running apart from the lanes.
        self._tidying: set[asyncio.Task[None]] = set()
        #: The tidying tasks of each update (tests wait for them: :meth:`wait_tidied`).
        self._tidy_of: dict[int, set[asyncio.Task[None]]] = {}
        #: Updates taken into a lane that have not returned yet (polling's offset).
        self.open: set[int] = set()
        #: Set while no update is open.
        self._idle = asyncio.Event()
        self._idle.set()
        self._done: dict[int, None] = {}
        self._waiters: dict[int, asyncio.Event] = {}

    # -- lanes --------------------------------------------------------------------------

    def take(self, raw: object, update_id: int | None) -> Incoming | None:
        """Parse one raw update and put it into its chat's lane (None: malformed)."""
        self.stats.received += 1
        incoming = self.parse(raw, update_id)
        if incoming is not None:
            self.enqueue(incoming)
        return incoming

    def parse(self, raw: object, update_id: int | None) -> Incoming | None:
        """The update parsed; a malformed one is counted, logged and marked returned."""
        try:
            return parse_update(raw)
        except Malformed as exc:
            self.stats.malformed += 1
            log.warning("skipped a malformed update: %s", exc)
            if update_id is not None:
                self.mark_done(update_id)
            return None

    def enqueue(self, incoming: Incoming) -> None:
        """Append to the chat's lane; start the lane if it was idle."""
        self.open.add(incoming.update_id)
        self._idle.clear()
        key = incoming.key or f"#{incoming.update_id}"
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(incoming)
            return
        self._lanes[key] = deque((incoming,))
        task = asyncio.get_running_loop().create_task(self._run_lane(key))
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def _run_lane(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            while lane and not self.stopping.is_set():
                async with self._slots.hold():
                    if self.stopping.is_set():  # stop came while waiting for a slot
                        break
                    await self.process(lane[0])
                lane.popleft()
        finally:
            # Stopping: what is left stays open (not confirmed); Telegram hands it (and
            # any later update already handled: the core skips those) to the next poller.
            del self._lanes[key]
            for left in lane:  # a webhook request waiting for it answers "not now"
                waiter = self._waiters.pop(left.update_id, None)
                if waiter is not None:
                    waiter.set()

    async def handle_now(self, incoming: Incoming) -> bool:
        """Handle one update in its lane and wait until it returned (the webhook).

        False: it was not taken on because the transport stops (Telegram sends it again).
        """
        self.enqueue(incoming)
        await self.wait_handled(incoming.update_id, timeout=None)
        return incoming.update_id in self._done

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109
        """Let the lanes finish the update in hand (stop); cancel them after ``timeout``."""
        tasks = set(self._lane_tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        tidying = set(self._tidying)  # cosmetic: they get a moment, then they stop
        if not tidying:
            return
        _, pending = await asyncio.wait(tidying, timeout=min(timeout, 0.5))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- one update -----------------------------------------------------------------------

    async def process(self, incoming: Incoming) -> None:
        """Answer a button press at once, hand the message to the core, tidy up; never
        raises. The update counts as returned once the core returned (also when it was
        cancelled, unless the transport stops); answering the press and removing the
        keyboard run apart (they may wait out a chat's 429), bounded by ``TIDY_SECONDS``."""
        if incoming.callback_id is not None:
            self._apart(incoming.update_id, self._answer_callback(incoming.callback_id))
        returned = False
        try:
            if incoming.member is not None:
                await self._membership.on_member(incoming.member)
            elif incoming.migrated is not None:
                self._membership.on_migrated(*incoming.migrated)
            elif incoming.message is None:
                self.stats.ignored += 1
            else:
                await self._deliver(incoming)
            returned = True
        except Exception as exc:
            returned = True
            log.error("an update could not be processed: %s", type(exc).__name__)
        finally:
            if returned or not self.stopping.is_set():
                self.mark_done(incoming.update_id)
        if incoming.keyboard_at is not None:
            self._apart(incoming.update_id, self._remove_keyboard(*incoming.keyboard_at))

    def _apart(self, update_id: int, call: Coroutine[Any, Any, None]) -> None:
        """Run a tidying call in the background, for at most ``TIDY_SECONDS``; beyond
        ``TIDY_MAX`` of them at once it is skipped (a cosmetic call, never a reply)."""
        if len(self._tidying) >= TIDY_MAX:
            call.close()
            log.warning("a button answer or keyboard removal skipped: too many waiting")
            return

        async def bounded() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TIDY_SECONDS):
                    await call

        task = asyncio.get_running_loop().create_task(bounded())
        self._tidying.add(task)
        task.add_done_callback(self._tidying.discard)
        mine = self._tidy_of.setdefault(update_id, set())
        mine.add(task)

        def forget(done: asyncio.Task[None]) -> None:
            mine.discard(done)
            if not mine:
                self._tidy_of.pop(update_id, None)

        task.add_done_callback(forget)

    async def _deliver(self, incoming: Incoming) -> None:
        if incoming.message is None or self.handler is None:
            return
        for attempt in range(1, self.config.handler_retries + 1):
            try:
                await self.handler(incoming.message)
            except Exception as exc:
                log.error("the core failed on an update (%d): %s", attempt, type(exc).__name__)
                if attempt < self.config.handler_retries:
                    await self._calls.sleep(self._calls.backoff(attempt))
            else:
                self.stats.handled += 1
                return
        self.stats.failed += 1

    async def _answer_callback(self, query_id: str) -> None:
        calls = self._calls
        with contextlib.suppress(SendFailed):
            await calls.call(
                partial(calls.bot.answer_callback_query, query_id),
                what="answerCallbackQuery",
                urgent=True,
                quiet=True,
            )

    async def _remove_keyboard(self, chat: int, message_id: int) -> None:
        """The question was answered: take its buttons away (the answer is not shown,
        so someone reading the phone later does not see what was chosen)."""
        calls = self._calls
        with contextlib.suppress(SendFailed):
            await calls.call(
                partial(calls.bot.edit_message_reply_markup, chat_id=chat, message_id=message_id),
                what="editMessageReplyMarkup",
                chat=chat,
                quiet=True,
            )

    # -- what returned ------------------------------------------------------------------

    def mark_done(self, update_id: int) -> None:
        """The update returned (or was skipped for good): it may be confirmed."""
        self.open.discard(update_id)
        if not self.open:
            self._idle.set()
        self._done[update_id] = None
        if len(self._done) > DONE_MEMORY:
            for old in list(self._done)[: len(self._done) - DONE_MEMORY]:
                del self._done[old]
        waiter = self._waiters.pop(update_id, None)
        if waiter is not None:
            waiter.set()

    async def wait_idle(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until no update is open, or ``timeout``, or stop."""
        if self._idle.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await first_of(self._idle, self.stopping)

    async def wait_tidied(self, update_id: int, timeout: float | None = 10.0) -> None:  # noqa: ASYNC109
        """Wait until an update's button answer and keyboard removal ran (tests)."""
        tasks = set(self._tidy_of.get(update_id, ()))
        if tasks:
            async with asyncio.timeout(timeout):
                await asyncio.wait(tasks)

    async def wait_handled(self, update_id: int, timeout: float | None = 10.0) -> None:  # noqa: ASYNC109
        """Wait until an update returned (for the webhook, tests and benchmarks)."""
        if update_id in self._done:
            return
        waiter = self._waiters.setdefault(update_id, asyncio.Event())
        async with asyncio.timeout(timeout):
            await waiter.wait()


class Poller:
    """The ``getUpdates`` loop: fetch, hand to the lanes, confirm what returned."""

    def __init__(
        self, config: TelegramConfig, connection: Connection, receiver: Receiver, calls: BotCalls
    ) -> None:
        self.config = config
        self._connection = connection
        self._receiver = receiver
        self._calls = calls
        self.ready = asyncio.Event()
        #: The offset Telegram was last given: everything below is confirmed.
        self.confirmed = 0
        #: One past the highest update id seen.
        self._seen_to = 0

    def next_offset(self) -> int:
        """Confirm everything below the oldest update still open."""
        open_ = self._receiver.open
        return min(open_) if open_ else max(self._seen_to, self.confirmed)

    async def run(self) -> None:
        """Fetch, hand over, repeat; never dies quietly (stops with ``stopping``)."""
        stopping = self._receiver.stopping
        failures = 0
        while not stopping.is_set():
            # The first round is a short poll: ready as soon as the backlog's first batch
            # is in hand, not after a whole long-poll timeout.
            wait = self.config.poll_timeout if self.ready.is_set() else 0
            offset = self.next_offset()
            try:
                batch = await self._poll_once(offset, wait)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await self._calls.sleep(seconds(exc.retry_after))
                continue
            except InvalidToken:
                log.error("getUpdates: the token was refused; retrying in a minute")
                await self.wait_or_stop(60.0)
                continue
            except Exception as exc:  # network, 409 conflict, bad answers: back off
                failures += 1
                log.warning("getUpdates failed (%s); retrying", type(exc).__name__)
                await self.wait_or_stop(self._calls.backoff(failures))
                continue
            failures = 0
            if batch is None:
                break  # stopping
            self.confirmed = max(self.confirmed, offset)
            valid = self._take(batch)
            self.ready.set()
            if batch and not valid:  # nothing that could ever be confirmed: do not spin
                await self.wait_or_stop(self._calls.backoff(1))
            else:
                # Telegram answers at once while updates are open (unconfirmed): poll
                # again when they all returned, or shortly if one of them waits.
                await self._receiver.wait_idle(REPOLL)

    def _take(self, batch: Iterable[Any]) -> int:
        """Hand the new updates of a batch to the lanes; returns how many had an id."""
        receiver = self._receiver
        valid = 0
        for raw in batch:
            update_id = update_id_of(raw)
            if update_id is None:
                receiver.stats.received += 1
                receiver.parse(raw, None)
                continue
            valid += 1
            if update_id < self._seen_to or update_id < self.confirmed:
                continue  # in a lane already, or returned and waiting for confirmation
            self._seen_to = update_id + 1
            receiver.take(raw, update_id)
        return valid

    async def _poll_once(self, offset: int, wait: int) -> list[Any] | None:
        """One (long) poll; None when stop was requested meanwhile."""
        call = asyncio.ensure_future(self._connection.get_updates(offset, wait=wait))
        stop = asyncio.ensure_future(self._receiver.stopping.wait())
        try:
            await asyncio.wait({call, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not call.done():
                call.cancel()  # nothing is confirmed by an abandoned long poll
            await asyncio.gather(call, stop, return_exceptions=True)
        if call.cancelled():
            return None
        result = call.result()
        if not isinstance(result, list):
            raise TelegramError("getUpdates did not answer a list")
        return result

    async def wait_or_stop(self, seconds: float) -> None:
        """Wait ``seconds`` or until stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._receiver.stopping.wait()

    async def confirm(self) -> None:
        """Tell Telegram what returned (at stop), so a restart does not fetch it again.

        What is still open (not taken on before the stop) is forgotten here: Telegram
        hands it to the next poller, this one after a restart included.
        """
        offset = self.next_offset()
        if offset and offset != self.confirmed:
            with contextlib.suppress(TelegramError, RuntimeError):
                await self._connection.get_updates(offset, wait=0, limit=1)
                self.confirmed = offset
        self._receiver.open.clear()
        self._seen_to = self.confirmed
