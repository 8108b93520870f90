"""Composition root: settings -> database -> vault -> directory -> router -> transports.

Start order: check secrets, take the lease, migrate, build the core, load staff
threads, start the transports every instance runs, then - when leading - rebuild
scheduled follow-ups, start the leader's transports and send what a crashed leader
left in the outbox. Stop order is the reverse; transports stop before the database
closes and pending message refs are flushed.

Leadership (:mod:`bot.leader`): with PostgreSQL two instances can share one
database; only the leader polls Telegram, syncs Matrix, fires follow-ups and
purges. A Telegram webhook is served by every instance. A follower that gains the
lease takes all of that over; a leader that loses it stops those parts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import insert, select

from bot.bounded import BoundedDict
from bot.leader import Lease, lease_for
from bot.metrics import Metrics
from bot.router import Handled, Router
from bot.scheduler import REFRESH_MINUTES, Scheduler
from bot.transports.base import SendLater, Transport, Withheld
from config.clock import Clock, SystemClock, hour
from config.directory import Directory, load_directory
from config.i18n import translator
from config.langdetect import warm_up
from config.messages import (
    Address,
    InboundMessage,
    OutboundMessage,
    OutKind,
    Platform,
    SendResult,
)
from config.settings import Settings, decode_key
from handlers.casework.inactivity import InactivityReport, close_inactive
from handlers.limits import Limits
from storage.db import Database
from storage.keystore import KeyStore
from storage.migrate import upgrade
from storage.models import Case, Contact, FollowUp, MessageRef, OutboxEntry, StaffThread
from storage.repositories import JobChange, new_id, unit
from storage.retention import PurgeReport, purge
from storage.threads import ThreadMap
from storage.vault import Vault

log = logging.getLogger(__name__)
#: The hourly purge also runs VACUUM once a day.
VACUUM_EVERY = 24
#: Message refs are written in batches, off the hot path.
REF_BATCH = 200
REF_FLUSH_SECONDS = 1.0
#: How often replies a platform could not take (it was unreachable) are tried again.
RETRY_SECONDS = 30.0
#: Sent outbox entries remembered in memory (concurrent redeliveries of one update).
DONE_REMEMBERED = 4096


@dataclass(frozen=True, slots=True)
class _Waiting:
    """Replies kept for a platform that was unreachable.

    Attributes:
        indices: which replies of the set are still to be sent (in order).
        platforms: the platforms they go to (newer replies queue behind them).
        box: the outbox entry they come from (read again for each attempt), or None
            for replies without one (crisis numbers when the database failed), which
            are then kept here in memory (``out``).
    """

    indices: list[int]
    platforms: frozenset[Platform]
    box: str | None
    out: list[OutboundMessage] | None


def build_vault(settings: Settings) -> Vault:
    """The vault from the configured keys (already checked)."""
    return Vault(
        {v: decode_key(k.get_secret_value()) for v, k in settings.crypto.master_keys.items()},
        {v: decode_key(k.get_secret_value()) for v, k in settings.crypto.pseudonym_keys.items()},
    )


class App:
    """The running bot: owns the database, the core, the scheduler and the transports."""

    def __init__(
        self,
        settings: Settings,
        transports: Sequence[Transport] = (),
        clock: Clock | None = None,
        directory: Directory | None = None,
        *,
        schedule: bool = True,
        limits: Limits | None = None,
        retry_seconds: float = RETRY_SECONDS,
        lease: Lease | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.transports: dict[Platform, Transport] = {t.platform: t for t in transports}
        self._directory = directory
        self.db: Database | None = None
        self.vault: Vault | None = None
        self.keys_db: Database | None = None
        self.keystore: KeyStore | None = None
        self.router: Router | None = None
        self.threads = ThreadMap()
        self.scheduler = Scheduler(self.clock) if schedule else None
        #: Decides whether this instance leads (default: fits the database; see start).
        self.lease = lease
        #: Serialises taking over and standing down (the lease loop vs. stop).
        self._turn = asyncio.Lock()
        self.metrics = Metrics()
        self.limits = limits or Limits()
        self.dropped = 0
        self._refs: dict[str, list[str]] = defaultdict(list)
        self._ref_count = 0
        self._ref_wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._sending: set[str] = set()
        #: Staff rooms transports created for programmes without one (see ``_hand_directory``).
        self._created: dict[Platform, dict[str, str]] = {}
        #: Outbox entries sent lately: a copy read before its delete committed is skipped.
        self._done: BoundedDict[str, None] = BoundedDict(DONE_REMEMBERED)
        #: Outbox entries to send again (a platform was unreachable); see ``_retry_loop``.
        self._later: dict[str, _Waiting] = {}
        #: /vanish refs of a deletion that must wait (never flushed: the retry needs them).
        self._held_refs: dict[str, list[str]] = {}
        self._retry_seconds = retry_seconds
        self._retrier: asyncio.Task[None] | None = None
        #: A reload's release of removed staff's cases, awaited before the next message.
        self._orphans: asyncio.Task[None] | None = None
        #: Set once the outbox left by a crash was sent (inbound messages wait for it).
        self._drained = asyncio.Event()
        self._purges = 0
        self.last_purge: PurgeReport | None = None
        self.last_inactivity: InactivityReport | None = None

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Check configuration, migrate, build the core, rebuild jobs, start transports."""
        self.settings.load_key_file()
        self.settings.check_secrets()
        self.settings.check_operator()
        directory = self._directory or load_directory(self.settings.directory_path)
        self._directory = directory
        if self.lease is None:
            self.lease = lease_for(self.settings.database_url, self.settings.database.connect_args)
        leading = await self.lease.acquire()  # SQLite: refuses a second instance here
        self.db = Database(
            self.settings.database_url,
            echo=self.settings.database.echo,
            connect_args=self.settings.database.connect_args,
        )
        await upgrade(self.db.engine)
        # The language detector's models load once, here, not on a person's first message.
        await asyncio.to_thread(warm_up)
        self.vault = build_vault(self.settings)
        self.keys_db = Database(self.settings.keystore_url)
        self.keystore = KeyStore(self.keys_db, self.vault)
        await self.keystore.create_schema()
        self.router = Router(
            self.db,
            self.vault,
            self.keystore,
            directory,
            self.settings.retention,
            self.clock,
            self.threads,
            self.limits,
            relay_attachments=self.settings.relay_attachments,
            matrix_contact=self.settings.matrix.user_id if self.settings.matrix.enabled else None,
            controller=self.settings.controller(),
        )
        await self.threads.load(self.db)
        self._flusher = asyncio.create_task(self._flush_loop())
        self.router.outbox = any(getattr(t, "redelivers", False) for t in self.transports.values())
        for platform in self.transports:  # every series present from the start
            for counter in (self.metrics.messages_in, self.metrics.messages_out):
                counter.labels(platform=platform.value)
            self.metrics.send_retries.labels(platform=platform.value)
        for transport in self.transports.values():
            self._hand_directory(transport, directory)
            if not _leader_only(transport):
                await transport.start(self.on_message)
        if leading:
            await self._lead()
        else:
            self._drained.set()
            log.info("standing by: another instance leads")
        if self.router.outbox:
            self._retrier = asyncio.create_task(self._retry_loop())
        self.lease.watch(self._take_over, self._stand_down)
        # Not "ready": the runner says that once a platform is connected.
        log.info("started: %d transport(s)", len(self.transports))

    @property
    def leading(self) -> bool:
        """This instance polls, syncs, fires follow-ups and purges."""
        return self.lease is not None and self.lease.leading

    def standby(self, transport: Transport) -> bool:
        """A transport only the leader runs, on an instance that does not lead."""
        return _leader_only(transport) and not self.leading

    async def _lead(self) -> None:
        """Run the leader's parts: jobs, the leader's transports, the outbox a crashed
        leader left (sent before any new message is handled)."""
        if self.router is None:
            return
        self._drained.clear()
        if self.scheduler is not None:
            self.scheduler.start(self.fire_followup)
            self.scheduler.every("escalate", 15, self.escalate)
            # Every minute: an unclaimed urgent case must reach the coordinator within
            # minutes of its window (reads only cases whose window runs).
            self.scheduler.every("urgent", 1, self.escalate_urgent)
            self.scheduler.every("purge", 60, self.purge)
            self.scheduler.every("followup-window", REFRESH_MINUTES, self.load_followup_window)
            await self.load_followup_window()
        for transport in self.transports.values():
            if _leader_only(transport):
                await transport.start(self.on_message)
        if self.router.outbox:
            await self.drain_outbox()
        # Staff removed while the bot was down leave no case without anyone holding it.
        await self.release_orphans()
        self._drained.set()

    async def _take_over(self) -> None:
        """The lease came to this instance (the leader died or lost its connection)."""
        async with self._turn:
            if self.router is not None and self.leading:
                log.info("taking over as leader")
                await self._lead()

    async def _stand_down(self) -> None:
        """The lease is lost: stop the leader's parts at once (another takes over)."""
        async with self._turn:
            await self._stop_leader_parts()

    async def _stop_leader_parts(self) -> None:
        for transport in reversed(list(self.transports.values())):
            if _leader_only(transport):
                await self._stop_transport(transport)
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = Scheduler(self.clock, self.scheduler.horizon)

    async def _stop_transport(self, transport: Transport) -> None:
        try:
            await transport.stop()
        except Exception as exc:
            name = transport.platform.value
            log.error("transport %s did not stop cleanly: %s", name, type(exc).__name__)

    async def stop(self) -> None:
        """Stop retries, transports and jobs, flush refs, then close the database."""
        if self.lease is not None:
            await self.lease.unwatch()  # a take-over must not start what is being stopped
        if self._orphans is not None:  # a reload's release finishes before the database closes
            await asyncio.gather(self._orphans, return_exceptions=True)
            self._orphans = None
        if self._retrier is not None:  # first: a retry must not meet a stopped transport
            self._retrier.cancel()
            await asyncio.gather(self._retrier, return_exceptions=True)
            self._retrier = None
        for transport in reversed(list(self.transports.values())):
            await self._stop_transport(transport)
        if self.scheduler is not None:
            self.scheduler.stop()
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self.db is not None:
            await self.flush_refs()
            if self.router is not None:
                await self.router.forget_delivered()
            await self.db.dispose()
            self.db = None
        if self.keys_db is not None:
            await self.keys_db.dispose()
            self.keys_db = None
        if self.lease is not None:
            await self.lease.release()  # last: the next leader finds the work finished

    def reload_directory(self, directory: Directory | None = None) -> None:
        """Use a new directory at once (e.g. a counsellor was removed)."""
        if self.router is None:
            raise RuntimeError("app not started")
        self._directory = directory or load_directory(self.settings.directory_path)
        self.router.use_directory(self._with_created_rooms(self._directory))
        for transport in self.transports.values():
            self._hand_directory(transport, self._directory)
        # Cases of removed staff go back to the queue before the next message is handled.
        self._orphans = asyncio.get_running_loop().create_task(self.release_orphans())

    async def release_orphans(self) -> None:
        """Put the cases of staff no longer in the directory back into their queues."""
        if self.router is not None:
            await self._finish(await self.router.run("orphans"))

    def _hand_directory(self, transport: Transport, directory: Directory) -> None:
        """Transports that create staff rooms learn the staff lists and report the rooms."""
        use = getattr(transport, "use_directory", None)
        if callable(use):
            transport.on_staff_rooms = self._staff_rooms_created  # type: ignore[attr-defined]
            use(directory)

    def _staff_rooms_created(self, platform: Platform, rooms: dict[str, str]) -> None:
        """A transport created (or re-found) staff rooms: route announcements there."""
        self._created[platform] = rooms
        if self.router is not None and self._directory is not None:
            self.router.use_directory(self._with_created_rooms(self._directory))

    def _with_created_rooms(self, directory: Directory) -> Directory:
        for platform, rooms in self._created.items():
            directory = directory.with_staff_rooms(platform.value, rooms)
        return directory

    # -- messages -----------------------------------------------------------------------
    async def on_message(self, msg: InboundMessage) -> None:
        """Handle one inbound message and deliver the replies (after the commit)."""
        if self.router is None:
            raise RuntimeError("app not started")
        if not self._drained.is_set():
            # Replies a crash left behind go first: a new answer must not overtake them.
            await self._drained.wait()
        if self._orphans is not None:  # a reload's release first (it may call the coordinator)
            orphans, self._orphans = self._orphans, None
            await asyncio.gather(orphans, return_exceptions=True)
        self.metrics.messages_in.labels(platform=msg.address.platform.value).inc()
        try:
            handled = await self.router.handle(msg)
        except Exception:
            self.metrics.error("handler")
            raise
        if msg.message_ref and handled.contact_id:
            self._note_ref(handled.contact_id, msg.message_ref)
        await self._finish(handled)

    async def _finish(self, handled: Handled) -> None:
        """Schedule the jobs, send the replies, clear the outbox entry once all went out."""
        if self.scheduler is not None:
            for job in handled.jobs:
                self.scheduler.followup(job.followup_id, job.due)
        box = handled.outbox_id
        waiting = self._later.get(box) if box is not None else None
        only = waiting.indices if waiting is not None else None  # a redelivered waiting set
        await self._send_set(
            box, handled.out, only, self._blocked(box), positions=handled.positions
        )

    async def _send_set(
        self,
        box: str | None,
        out: Sequence[OutboundMessage],
        only: list[int] | None,
        blocked: set[Platform],
        key: str | None = None,
        positions: Sequence[int] | None = None,
    ) -> None:
        """Send ``out`` (only the indices ``only``), in order per platform.

        A platform that is unreachable - now, or in ``blocked`` because older replies
        still wait for it - gets its replies kept (with their index) for the retry loop;
        the other platforms' replies go on. ``key`` names an existing waiting entry.
        ``positions`` are the indices of ``out`` in its outbox entry when replies there
        were erased meanwhile (they are not sent, and count as done).
        """
        at = list(positions) if positions is not None else list(range(len(out)))
        if box is not None:
            if box in self._sending or box in self._done:
                return  # the same replies are on their way or out (drain vs. redelivery)
            self._sending.add(box)
        later: list[int] = []
        try:
            for index, message in zip(at, out, strict=True):
                if only is not None and index not in only:
                    continue  # went out before the platform became unreachable
                platform = message.address.platform
                if platform not in blocked:
                    if box is not None:
                        message = replace(message, send_key=f"{box}.{index}")
                    if await self.deliver(message):
                        continue
                    blocked.add(platform)
                later.append(index)
            key = key or box
            if later:
                where = dict(zip(at, out, strict=True))
                platforms = frozenset(where[i].address.platform for i in later)
                stored = None if box is not None else list(out)  # box: read from the outbox
                self._later[key or f"mem:{new_id()}"] = _Waiting(later, platforms, box, stored)
                return
            if key is not None:
                self._later.pop(key, None)
            if box is not None:
                self._done[box] = None
                await self._sent(box)
        finally:
            if box is not None:
                self._sending.discard(box)

    def _blocked(self, exclude: str | None) -> set[Platform]:
        """Platforms older reply sets still wait for: new replies queue behind them."""
        return {p for k, w in self._later.items() if k != exclude for p in w.platforms}

    async def _sent(self, outbox_id: str) -> None:
        """Forget replies once they were handed to the platforms.

        The entry is deleted with the next unit of work (or by the flush loop within
        ``REF_FLUSH_SECONDS`` when idle), not in a transaction of its own; after a
        crash the few entries not yet deleted are sent again (at least once).
        """
        if self.router is not None:
            self.router.delivered.add(outbox_id)

    async def drain_outbox(self) -> int:
        """Send replies a crash left behind (committed, never sent); returns how many sets."""
        if self.db is None or self.router is None:
            return 0
        async with self.db.transaction() as s:
            entries = (await s.execute(select(OutboxEntry))).scalars().all()
        # Inbound messages wait for this (``_drained``): no redelivery sends these meanwhile.
        for entry in entries:
            found = await self._unpack(entry)
            if found is not None:
                await self._finish(Handled(found[0], outbox_id=entry.id, positions=found[1]))
        await self.router.forget_delivered()
        if entries:
            log.info("outbox: %d reply set(s) sent after a restart", len(entries))
        return len(entries)

    @property
    def waiting(self) -> int:
        """Reply sets kept for a platform that was unreachable (for health checks)."""
        return len(self._later)

    async def _retry_loop(self) -> None:
        """Every ``retry_seconds``, try the waiting reply sets again."""
        while True:
            await asyncio.sleep(self._retry_seconds)
            if self._later:
                try:
                    await self.retry_waiting()
                except Exception as exc:  # a bug must not end the retries
                    log.error("retry round failed: %s", type(exc).__name__)
                    self.metrics.error("retry")

    async def retry_waiting(self) -> None:
        """One round over the waiting reply sets, oldest first.

        A platform that fails again is not tried again in this round, so the sets behind
        it keep their order.
        """
        failed: set[Platform] = set()
        for key, waiting in list(self._later.items()):
            if self._later.get(key) is not waiting:
                continue  # sent meanwhile (a redelivery)
            try:
                found = (waiting.out, None) if waiting.out is not None else await self._load(key)
            except Exception as exc:  # the database is away: next round
                log.error("outbox retry failed: %s", type(exc).__name__)
                continue
            if found is None:  # gone: sent by a redelivery, erased, or unreadable
                self._later.pop(key, None)
                continue
            out, positions = found
            await self._send_set(waiting.box, out, waiting.indices, failed, key, positions)

    async def _load(self, box: str) -> tuple[list[OutboundMessage], list[int]] | None:
        """The replies of an outbox entry and their positions (None: gone, or unreadable
        and dropped)."""
        if self.db is None or self.router is None:
            return None
        async with self.db.transaction() as s:
            entry = await s.get(OutboxEntry, box)
        return None if entry is None else await self._unpack(entry)

    async def _unpack(self, entry: OutboxEntry) -> tuple[list[OutboundMessage], list[int]] | None:
        """The replies of an entry still to send, with their positions; an entry with
        none left (erased) or unreadable (a retired key) is dropped."""
        if self.router is None:
            return None
        try:
            out, positions = await self.router.unpack(entry)
        except Exception as exc:
            log.error("outbox entry unreadable: %s", type(exc).__name__)
            await self._sent(entry.id)
            return None
        if not out:  # every reply in it was erased
            await self._sent(entry.id)
            return None
        return out, positions

    async def deliver(self, out: OutboundMessage) -> bool:
        """Send through the transport of the address's platform; remember refs / threads.

        Returns False only when the platform could not take the message now
        (:class:`SendLater`); a permanent refusal is logged and counts as done.
        """
        if out.case_code and out.programme:
            # Per programme: after a transfer the old programme's thread is never used.
            thread = self.threads.thread_of(out.case_code, out.programme, out.address.platform)
            if thread is not None:
                out = replace(out, address=thread)
        pending: list[str] = []
        if out.kind is OutKind.VANISH and out.contact_id:
            pending = self._refs.pop(out.contact_id, []) + self._held_refs.pop(out.contact_id, [])
            out = replace(out, refs=(*out.refs, *pending))
        transport = self.transports.get(out.address.platform)
        if transport is None:
            self.dropped += 1
            log.warning("no transport for %s; message not sent", out.address.platform.value)
            return True
        platform = out.address.platform.value
        try:
            result = await transport.send(out)
        except SendLater:
            log.warning("%s unreachable; a reply waits to be sent again", out.address.platform)
            self.metrics.send_retries.labels(platform=platform).inc()
            if pending and out.contact_id:
                self._held_refs[out.contact_id] = pending  # for the next attempt
            return False
        except Withheld:
            log.warning("a reply was withheld: someone else is in the person's chat")
            await self._tell_withheld(out)
            return True
        except Exception as exc:
            log.error("sending failed on %s: %s", platform, type(exc).__name__)
            self.metrics.error("send")
            return True
        self.metrics.messages_out.labels(platform=platform).inc()
        if result is not None:
            await self._remember(out, result)
        if out.kind is OutKind.CLOSE:
            self.threads.drop(out.address)  # its row went with the transfer's transaction
        return True

    async def _tell_withheld(self, out: OutboundMessage) -> None:
        """Tell the staff of the person's case (in its thread) that a reply was not
        delivered; names the case code only. Failures are logged, never raised."""
        if out.contact_id is None or self.db is None or self._directory is None:
            return
        try:
            async with self.db.transaction() as s:
                case = (
                    await s.execute(select(Case).where(Case.contact_id == out.contact_id))
                ).scalars().first()
            directory = self._with_created_rooms(self._directory)
            programme = directory.by_id.get(case.programme_id) if case else None
            if case is None or programme is None:
                return
            staff = programme.staff
            t = translator(staff[0].locale if staff else self.settings.default_locale)
            text = t("staff.person_chat_watched", code=case.code)
            for platform, room in programme.staff_rooms.items():
                note = OutboundMessage(
                    Address(Platform(platform), room),
                    text,
                    protect=False,
                    case_code=case.code,
                    programme=programme.id,
                )
                await self.deliver(note)
        except Exception as exc:
            log.error("telling staff about a withheld reply failed: %s", type(exc).__name__)

    async def _remember(self, out: OutboundMessage, result: SendResult) -> None:
        if result.ref and out.contact_id and out.kind is not OutKind.VANISH:
            self._note_ref(out.contact_id, result.ref)
        if result.thread is not None and out.case_code and out.programme and self.db is not None:
            await self._store_thread(out.case_code, out.programme, result.thread)

    async def _store_thread(self, code: str, programme: str, thread: Address) -> None:
        if self.db is None:
            return
        async with self.db.transaction() as s:
            case = (await s.execute(select(Case).where(Case.code == code))).scalar_one_or_none()
            if case is None or case.programme_id != programme:
                return  # moved on meanwhile: the old programme gets no thread of it
            s.add(
                StaffThread(
                    id=new_id(),
                    case_id=case.id,
                    programme_id=programme,
                    platform=thread.platform.value,
                    chat_id=thread.chat_id,
                    thread_id=thread.thread_id,
                    delete_after=case.delete_after,
                )
            )
        self.threads.add(code, programme, thread)

    # -- message refs for /vanish ----------------------------------------------------------
    def _note_ref(self, contact_id: str, ref: str) -> None:
        self._refs[contact_id].append(ref)
        self._ref_count += 1
        if self._ref_count >= REF_BATCH:
            self._ref_wake.set()

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ref_wake.wait(), REF_FLUSH_SECONDS)
            self._ref_wake.clear()
            try:
                await self.flush_refs()
                if self.router is not None:
                    await self.router.forget_delivered()
            except Exception as exc:
                log.error("storing message refs failed: %s", type(exc).__name__)

    async def flush_refs(self) -> None:
        """Write remembered message refs (encrypted, 48 h) in one transaction."""
        if not self._refs or self.db is None or self.keystore is None:
            return
        pending, self._refs, self._ref_count = dict(self._refs), defaultdict(list), 0
        until = hour(self.clock.now()) + timedelta(hours=self.settings.retention.vanish_hours)
        async with unit(self.db, self.keystore, self.clock.now()) as uow:
            keys = uow.keys
            rows = (
                await uow.conn.execute(
                    select(Contact.id, Contact.key_id).where(Contact.id.in_(list(pending)))
                )
            ).all()
            deks = await keys.get_many([k for _, k in rows])
            values = []
            for contact_id, key_id in rows:
                dek = deks.get(key_id)
                if dek is None:
                    continue
                for ref in pending[contact_id]:
                    row_id = new_id()
                    values.append(
                        {
                            "id": row_id,
                            "contact_id": contact_id,
                            "delete_after": until,
                            "ref_ct": keys.seal_json(dek, "message_refs", "ref", row_id, ref),
                        }
                    )
            if values:  # one executemany, no ORM objects to track
                await uow.conn.execute(insert(MessageRef), values)

    # -- scheduled work ------------------------------------------------------------------
    async def fire_followup(self, followup_id: str) -> None:
        """Scheduler callback: send one follow-up if it is due."""
        if self.router is not None:
            self.metrics.followups_fired.inc()
            try:
                handled = await self.router.run("followup", followup_id)
            except Exception:
                self.metrics.error("followup")
                raise
            await self._finish(handled)

    async def escalate(self) -> None:
        """Scheduler callback: remind staff of overdue cases."""
        if self.router is not None:
            await self._finish(await self.router.run("escalate"))

    async def escalate_urgent(self) -> None:
        """Scheduler callback: unclaimed urgent cases past their window to the coordinator."""
        if self.router is not None:
            await self._finish(await self.router.run("urgent"))

    async def purge(self, *, vacuum: bool | None = None) -> None:
        """Scheduler callback: retention by the app's clock (see storage.retention).

        Warns about and closes inactive cases (messages go out through
        :meth:`deliver`), purges expired rows, removes jobs of purged follow-ups.
        Reports land in ``last_inactivity`` / ``last_purge``; failures are logged
        by type only and retried at the next run.
        """
        if self.db is None or self.keystore is None or self.router is None:
            return
        now = self.clock.now()
        self._purges += 1
        try:
            inactive = await close_inactive(
                self.db, self.keystore, self.router.directory, self.settings.retention, now
            )
            self._apply_jobs(inactive.jobs)
            for out in inactive.out:
                await self.deliver(out)
            if vacuum is None:
                vacuum = self._purges % VACUUM_EVERY == 0
            report = await purge(self.db, self.keystore, now, vacuum=vacuum)
        except Exception as exc:
            log.error("purge failed: %s", type(exc).__name__)
            self.metrics.error("purge")
            return
        self.metrics.purges.inc()
        for kind, count in report.counts.items():
            self.metrics.purged.labels(kind=kind).inc(count)
        self._apply_jobs([JobChange(fid, None) for fid in report.followup_ids])
        for room in report.rooms:  # the person's chat on platforms with rooms
            await self.deliver(OutboundMessage(room, "", kind=OutKind.FORGET))
        for code in report.case_codes:
            for thread in self.threads.threads_of(code):
                await self.deliver(OutboundMessage(thread, "", kind=OutKind.FORGET))
            self.threads.forget(code)
        self.last_inactivity, self.last_purge = inactive, report
        log.info(
            "purge: %d rows, %d keys, %d warned, %d closed inactive, %.2f s",
            report.total,
            report.counts["data_keys"],
            inactive.warned,
            inactive.closed,
            report.seconds,
        )

    def _apply_jobs(self, jobs: Sequence[JobChange]) -> None:
        if self.scheduler is not None:
            for job in jobs:
                self.scheduler.followup(job.followup_id, job.due)

    async def run_due_followups(self) -> int:
        """Fire every follow-up that is due by the app's clock; returns how many ran."""
        if self.db is None:
            return 0
        async with self.db.transaction() as s:
            rows = await s.execute(select(FollowUp.id).where(FollowUp.due_at <= self.clock.now()))
            due = [fid for (fid,) in rows]
        for fid in due:
            await self.fire_followup(fid)
        return len(due)

    async def refresh_metrics(self) -> None:
        """Bring the gauges up to date (called when /metrics is scraped)."""
        self.metrics.leader.set(1 if self.leading else 0)
        self.metrics.outbox_waiting.set(self.waiting)
        if self.db is not None and self.router is not None:
            programmes = {p.id for p in self.router.directory.programmes}
            await self.metrics.refresh(self.db, self.clock.now(), programmes)

    async def load_followup_window(self) -> int:
        """Schedule the stored follow-ups due within the scheduler's window (at start, after
        a restart, and periodically); returns how many. One indexed range query."""
        if self.db is None or self.scheduler is None:
            return 0
        end = self.scheduler.window_end()
        async with self.db.transaction() as s:
            rows = (
                await s.execute(select(FollowUp.id, FollowUp.due_at).where(FollowUp.due_at <= end))
            ).all()
        for fid, due in rows:
            self.scheduler.followup(fid, due)
        return len(rows)


def _leader_only(transport: Transport) -> bool:
    """Receiving that must run once (Telegram polling, the Matrix sync)."""
    return bool(getattr(transport, "leader_only", False))
