"""Per-destination send queues: order per chat, no chat waits for another.

A destination is a platform and a chat (a person's chat, a staff group, a Matrix
room). All topics of one Telegram staff group share its queue: the platform's limit
is per group, and one queue keeps the order across the group's topics and lets a
merge see every pending relay of a topic (see :mod:`bot.sending.merge`).

* Each destination with something to send has one worker; it sends in order, crisis
  replies (``urgent``) first, so one slow or limited chat delays only itself. The
  transports keep their own limits (per chat, per group, global).
* While a destination waits for its limit (its last send took ``held_seconds`` or
  more, or the transport says it is held), pending relays for one staff topic go
  out as one message.
* A platform that cannot take a message now (:class:`SendLater`) is parked: its
  queues keep their replies (in order) until :meth:`Sender.retry`, which reads
  waiting sets again from the outbox first (an erasure meanwhile wins).
* Bounded memory: beyond ``max_items`` queued replies, new sets with an outbox
  entry keep only its id and are read again once the queues have room, in order.
"""
# size: the queues, the parking of unreachable platforms, the retry round and the spill to
# the outbox share one state (what is queued, parked and settled per reply set); apart,
# each would reach into the others. Next split: the retry round into its own module.

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from bot.bounded import BoundedDict
from bot.sending.merge import MERGE_LIMIT, mergeable, merged, topic
from bot.sending.progress import Progress
from config.messages import OutboundMessage, Platform

log = logging.getLogger(__name__)

#: Send one message: False when the platform could not take it now (send later).
Deliver = Callable[[OutboundMessage], Awaitable[bool]]
#: An outbox entry's replies still to send, with their positions (None: gone).
Loader = Callable[[str], Awaitable[tuple[list[OutboundMessage], list[int]] | None]]
#: Optional transport hook: is this destination waiting for its platform's limit?
Held = Callable[[OutboundMessage], bool]

MAX_ITEMS = 20_000
HELD_SECONDS = 0.5
#: Outbox entries sent lately: a copy read before its delete committed is skipped.
DONE_REMEMBERED = 4096
#: The longest a retry round waits for its sets to settle (then it returns, logged).
RETRY_WAIT = 300.0


@dataclass(eq=False, slots=True)
class ReplySet:
    """The replies of one unit of work (one outbox entry, or none).

    ``settled`` is set while none of its replies is queued or in flight (each was
    sent, refused for good, or waits for its platform).
    """

    box: str | None
    left: int = 0
    unsettled: int = 0
    parked: int = 0
    spilled: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self) -> None:
        """Until every reply went out or waits for its platform."""
        await self.settled.wait()


@dataclass(eq=False, slots=True)
class _Item:
    rs: ReplySet
    position: int
    message: OutboundMessage
    parked: bool = False


@dataclass(eq=False, slots=True)
class _Destination:
    key: tuple[Platform, str]
    urgent: deque[_Item] = field(default_factory=deque)
    normal: deque[_Item] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    held: bool = False

    def items(self) -> Iterable[_Item]:
        return itertools.chain(self.urgent, self.normal)

    def take(self) -> tuple[_Item, bool] | None:
        if self.urgent:
            return self.urgent.popleft(), True
        if self.normal:
            return self.normal.popleft(), False
        return None

    def __len__(self) -> int:
        return len(self.urgent) + len(self.normal)


def destination(message: OutboundMessage) -> tuple[Platform, str]:
    """The queue a message waits in: its platform and chat (topics share the group's)."""
    return message.address.platform, message.address.chat_id


class Sender:
    """The send queues of one instance (see the module docstring)."""

    def __init__(
        self,
        deliver: Deliver,
        *,
        loader: Loader | None = None,
        progress: Progress | None = None,
        held: Held | None = None,
        max_items: int = MAX_ITEMS,
        held_seconds: float = HELD_SECONDS,
    ) -> None:
        self._deliver = deliver
        self._loader = loader
        self.progress = progress
        self._held = held
        self.max_items = max(1, max_items)
        self._held_seconds = held_seconds
        self._dests: dict[tuple[Platform, str], _Destination] = {}
        self._boxes: dict[str, ReplySet] = {}
        self._done: BoundedDict[str, None] = BoundedDict(DONE_REMEMBERED)
        self._down: set[Platform] = set()
        self._spilled: deque[ReplySet] = deque()
        self._refill: asyncio.Task[None] | None = None
        self._items = 0
        self._empty = asyncio.Event()
        self._empty.set()
        self._closing = False
        #: Outbox entries to read again before their next send (an erasure committed).
        self._recheck: set[str] = set()
        #: Messages sent, and replies that went out merged into another message.
        self.sent = 0
        self.coalesced = 0
        #: The most replies queued in memory at once (bounded by ``max_items``).
        self.peak = 0

    # -- intake ---------------------------------------------------------------------------
    def knows(self, box: str) -> bool:
        """The entry is queued, waiting, or was sent lately (a redelivery adds nothing)."""
        return box in self._boxes or box in self._done

    def submit(
        self,
        box: str | None,
        out: Sequence[OutboundMessage],
        positions: Sequence[int] | None = None,
    ) -> ReplySet:
        """Queue the replies of one unit of work (never waits)."""
        if box is not None and (known := self._boxes.get(box)) is not None:
            return known
        rs = ReplySet(box)
        if not out or self._closing or (box is not None and box in self._done):
            rs.settled.set()  # stopping: the outbox keeps them for the next start
            return rs
        if box is not None:
            self._boxes[box] = rs
            if self._loader is not None and (self._spilled or self._items >= self.max_items):
                self._spill(rs)
                return rs
        at = list(positions) if positions is not None else list(range(len(out)))
        self._enqueue(rs, zip(at, out, strict=True))
        return rs

    def adopt(self, box: str) -> ReplySet:
        """Queue an outbox entry by id alone (read when there is room; a restart's drain)."""
        known = self._boxes.get(box)
        if known is not None or box in self._done or self._closing:
            return known or _settled()
        rs = ReplySet(box)
        self._boxes[box] = rs
        self._spill(rs)
        return rs

    def _spill(self, rs: ReplySet) -> None:
        rs.spilled = True
        self._spilled.append(rs)
        self._empty.clear()
        self._start_refill()

    def _enqueue(self, rs: ReplySet, pairs: Iterable[tuple[int, OutboundMessage]]) -> None:
        for position, message in pairs:
            if rs.box is not None:
                message = replace(message, send_key=f"{rs.box}.{position}")
            item = _Item(rs, position, message)
            key = destination(message)
            dest = self._dests.get(key)
            if dest is None:
                dest = self._dests[key] = _Destination(key)
            (dest.urgent if message.urgent else dest.normal).append(item)
            rs.left += 1
            self._items += 1
            if key[0] in self._down:
                item.parked = True
                rs.parked += 1
            else:
                rs.unsettled += 1
                self._wake(dest)
        self.peak = max(self.peak, self._items)
        if self._items:
            self._empty.clear()
        self._check(rs)

    def _wake(self, dest: _Destination) -> None:
        if dest.worker is None and not self._closing:
            dest.worker = asyncio.create_task(self._work(dest))

    # -- sending --------------------------------------------------------------------------
    async def _work(self, dest: _Destination) -> None:
        try:
            while not self._closing:
                if dest.key[0] in self._down:
                    self._park(dest)
                    return
                if self._recheck and not await self._reread(dest):
                    self._down.add(dest.key[0])  # the outbox is away: the retry reads it
                    self._park(dest)
                    return
                taken = dest.take()
                if taken is None:
                    return
                item, urgent = taken
                self._unpark(item)
                members = [item]
                # Held: the last send waited for the limit, or the transport says the
                # next one will (then the merge starts before the first wait).
                held = dest.held or self._holds(item.message)
                if not urgent and held and mergeable(item.message):
                    members = self._coalesce(dest, item)
                message = merged([m.message for m in members])
                began = time.monotonic()
                try:
                    ok = await self._deliver(message)
                except Exception as exc:  # deliver logs and absorbs; a bug must not stall
                    log.error("send failed: %s", type(exc).__name__)
                    ok = True
                waited = time.monotonic() - began >= self._held_seconds
                dest.held = waited or self._holds(message)
                if not ok:
                    for m in reversed(members):
                        (dest.urgent if m.message.urgent else dest.normal).appendleft(m)
                    self._down.add(dest.key[0])
                    self._park(dest)
                    return
                self.sent += 1
                self.coalesced += len(members) - 1
                marks = [mark for m in members if (mark := self._sent(m)) is not None]
                if marks:
                    # Committed before this destination's next send (also one queued while
                    # this worker waits): after a crash one reply per destination is in doubt.
                    await asyncio.gather(*marks)
        finally:
            dest.worker = None
            if not dest and self._dests.get(dest.key) is dest:
                del self._dests[dest.key]

    def recheck(self) -> None:
        """An erasure committed: every queued set with an outbox entry is read again
        before its next send, so replies it erased are dropped, never sent."""
        for dest in self._dests.values():
            for item in dest.items():
                if item.rs.box is not None:
                    self._recheck.add(item.rs.box)

    async def _reread(self, dest: _Destination) -> bool:
        """Drop what erasures took from this destination's queued sets (False: the
        outbox could not be read; nothing of those sets may go out now)."""
        boxes = list(
            dict.fromkeys(
                i.rs.box for i in dest.items() if i.rs.box is not None and i.rs.box in self._recheck
            )
        )
        for box in boxes:
            rs = self._boxes.get(box)
            if rs is None or self._loader is None:
                self._recheck.discard(box)
                continue
            try:
                found = await self._loader(box)
            except Exception as exc:
                log.error("reading a queued reply set again failed: %s", type(exc).__name__)
                return False
            self._recheck.discard(box)
            self._drop(_erased(rs, set(found[1]) if found is not None else set()))
        return True

    def _holds(self, message: OutboundMessage) -> bool:
        """The transport's hint: sends to this destination wait for its limit now."""
        if self._held is None:
            return False
        try:
            return bool(self._held(message))
        except Exception as exc:  # a hint only: never stops the sending
            log.error("held hint failed: %s", type(exc).__name__)
            return False

    def _coalesce(self, dest: _Destination, first: _Item) -> list[_Item]:
        """Take the pending relays of ``first``'s topic (in order) to go out with it; stop
        at the first message of that topic that cannot merge (it keeps its place)."""
        members, size, keep = [first], len(first.message.text), deque[_Item]()
        where = topic(first.message)
        closed = False
        for item in dest.normal:
            if not closed and topic(item.message) == where:
                grown = size + len(item.message.text) + 2
                if mergeable(item.message) and grown <= MERGE_LIMIT:
                    self._unpark(item)
                    members.append(item)
                    size = grown
                    continue
                closed = True
            keep.append(item)
        dest.normal = keep
        return members

    def _unpark(self, item: _Item) -> None:
        """A parked reply taken to be sent counts as unsettled again (its set waits)."""
        if item.parked:
            item.parked = False
            item.rs.parked -= 1
            item.rs.unsettled += 1
            self._check(item.rs)

    def _sent(self, item: _Item) -> asyncio.Future[None] | None:
        rs = item.rs
        rs.left -= 1
        rs.unsettled -= 1
        self._items -= 1
        mark = None
        if rs.box is not None and self.progress is not None:
            mark = self.progress.mark(rs.box, item.position)
        self._check(rs)
        if not self._items and not self._spilled:
            self._empty.set()
        if self._spilled and self._items <= self.max_items // 2:
            self._start_refill()
        return mark

    def _check(self, rs: ReplySet) -> None:
        if rs.unsettled == 0 and not rs.spilled:
            rs.settled.set()
        else:
            rs.settled.clear()
        if rs.left == 0 and not rs.spilled and rs.box is not None:
            if self._boxes.get(rs.box) is rs:
                del self._boxes[rs.box]
            self._done[rs.box] = None

    def _park(self, dest: _Destination) -> None:
        for item in dest.items():
            if not item.parked:
                item.parked = True
                item.rs.unsettled -= 1
                item.rs.parked += 1
                self._check(item.rs)

    # -- refill (bounded memory) ------------------------------------------------------------
    def _start_refill(self) -> None:
        if (self._refill is None or self._refill.done()) and not self._closing:
            self._refill = asyncio.create_task(self._refill_loop())

    async def _refill_loop(self) -> None:
        while self._spilled and self._items < self.max_items and not self._closing:
            rs = self._spilled[0]
            found = None
            if self._loader is not None and rs.box is not None:
                try:
                    found = await self._loader(rs.box)
                except Exception as exc:  # the database is away: try again later
                    log.error("reading a waiting reply set failed: %s", type(exc).__name__)
                    return
            self._spilled.popleft()
            rs.spilled = False
            if found is None:
                self._check(rs)
            else:
                out, positions = found
                self._enqueue(rs, zip(positions, out, strict=True))
        if not self._items and not self._spilled:
            self._empty.set()

    # -- waiting for a platform -------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Reply sets with replies kept for a platform that was unreachable."""
        return sum(1 for rs in self._waiting_sets())

    def waiting_boxes(self) -> set[str]:
        """Outbox entries of the waiting sets."""
        return {rs.box for rs in self._waiting_sets() if rs.box is not None}

    def _waiting_sets(self) -> list[ReplySet]:
        seen: dict[int, ReplySet] = {}
        for dest in self._dests.values():
            for item in dest.items():
                if item.parked:
                    seen.setdefault(id(item.rs), item.rs)
        return list(seen.values())

    async def retry(self, timeout: float | None = RETRY_WAIT) -> None:  # noqa: ASYNC109
        """Try the parked destinations again, oldest first; wait until each set settled.

        Waiting sets are read again from the outbox first: replies erased meanwhile
        are dropped, never sent.
        """
        # The outbox is read while the platforms still count as down: new traffic parks
        # meanwhile, and no worker sends a parked reply behind this round's back. The
        # un-parking below runs without an await in between.
        sets = self._waiting_sets()
        for rs in sets:
            if rs.box is not None and self._loader is not None:
                try:
                    found = await self._loader(rs.box)
                except Exception as exc:  # the database is away: next round
                    log.error("outbox retry failed: %s", type(exc).__name__)
                    continue
                self._recheck.discard(rs.box)
                self._drop(_erased(rs, set(found[1]) if found is not None else set()))
        self._down.clear()
        sets = self._waiting_sets()  # also what parked while the outbox was read
        for dest in list(self._dests.values()):
            for item in dest.items():
                if item.parked:
                    item.parked = False
                    item.rs.parked -= 1
                    item.rs.unsettled += 1
                    self._check(item.rs)
            if dest:
                self._wake(dest)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(rs.wait() for rs in sets))
        except TimeoutError:  # a bound: the retry loop goes on, the sets keep sending
            log.error("retry round: %d reply sets not settled in time", len(sets))

    def _drop(self, gone: Callable[[_Item], bool]) -> int:
        dropped = 0
        for key, dest in list(self._dests.items()):
            for lane in (dest.urgent, dest.normal):
                for item in [i for i in lane if gone(i)]:
                    lane.remove(item)
                    dropped += 1
                    self._items -= 1
                    item.rs.left -= 1
                    if item.parked:
                        item.rs.parked -= 1
                    else:
                        item.rs.unsettled -= 1
                    self._check(item.rs)
            if not dest and dest.worker is None:
                del self._dests[key]
        if not self._items and not self._spilled:
            self._empty.set()
        return dropped

    def drop_platforms(self, platforms: set[Platform]) -> int:
        """Forget what waits for ``platforms`` (another instance took them over; replies
        with an outbox entry are sent by it). Returns how many replies were dropped."""
        dropped = self._drop(lambda i: i.message.address.platform in platforms)
        for rs in [rs for rs in self._boxes.values() if rs.left == 0 and not rs.spilled]:
            if rs.box is not None:
                del self._boxes[rs.box]
        return dropped

    # -- stopping ---------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Replies in memory, not yet sent."""
        return self._items

    async def idle(self) -> None:
        """Until nothing is queued (parked replies count as queued)."""
        await self._empty.wait()

    async def idle_or_waiting(self) -> None:
        """Until every queued reply was sent or waits for its platform."""
        await self._settled_or_parked()

    async def close(self, grace: float = 1.0, finish: float = 0.5) -> None:
        """Send for up to ``grace`` seconds, then let the sends in flight finish (up to
        ``finish``) and stop; what is left stays in the outbox. Marks are committed."""
        if any(not item.parked for d in self._dests.values() for item in d.items()):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._settled_or_parked()
        self._closing = True
        tasks = [d.worker for d in self._dests.values() if d.worker is not None]
        if self._refill is not None:
            tasks.append(self._refill)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=finish)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for dest in self._dests.values():  # nobody waits for what stays in the outbox
            for item in dest.items():
                item.rs.settled.set()
        for rs in self._spilled:
            rs.settled.set()
        if self.progress is not None:
            await self.progress.flush()

    async def _settled_or_parked(self) -> None:
        while True:
            busy = [d.worker for d in self._dests.values() if d.worker is not None]
            if self._refill is not None and not self._refill.done():
                busy.append(self._refill)
            if not busy:
                return
            await asyncio.wait(busy)

    def abandon(self) -> None:
        """Stop at once, writing nothing more (tests: the process dies)."""
        self._closing = True
        for dest in self._dests.values():
            if dest.worker is not None:
                dest.worker.cancel()
        if self._refill is not None:
            self._refill.cancel()
        if self.progress is not None:
            self.progress.abandon()


def _erased(rs: ReplySet, keep: set[int]) -> Callable[[_Item], bool]:
    """The items of ``rs`` whose position is no longer to be sent."""
    return lambda item: item.rs is rs and item.position not in keep


def _settled() -> ReplySet:
    rs = ReplySet(None)
    rs.settled.set()
    return rs
