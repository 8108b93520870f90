"""Composition root: settings -> database -> vault -> directory -> router -> transports.

Start order: check secrets, take the lease, migrate, build the core, load staff
threads, start the transports every instance runs, then - when leading - start the
leader's transports, queue what a crashed leader left in the outbox, and rebuild the
scheduled follow-ups (jobs last: a follow-up due at once finds its platform
connected). Stop order is the reverse; transports stop before the database closes
and pending message refs are flushed.

Leadership (:mod:`bot.leader`): with PostgreSQL two instances can share one
database; only the leader polls Telegram, syncs Matrix, fires follow-ups and
purges. A Telegram webhook is served by every instance. A follower that gains the
lease takes all of that over; a leader that loses it stops those parts at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy import select

from bot.jobs import Jobs
from bot.leader import Lease, lease_for
from bot.metrics import Metrics
from bot.router import Handled, Router
from bot.scheduler import REFRESH_MINUTES, Scheduler
from bot.sending import Sender
from bot.sending.delivery import Delivery, Stores
from bot.sending.progress import Progress
from bot.sending.queues import MAX_ITEMS
from bot.transports.base import Transport
from config.clock import Clock, SystemClock
from config.directory import Directory, load_directory
from config.langdetect import warm_up
from config.messages import InboundMessage, OutboundMessage, Platform
from config.settings import Settings, decode_key
from handlers.casework.inactivity import InactivityReport
from handlers.limits import Limits
from storage.db import Database
from storage.keystore import KeyStore
from storage.migrate import upgrade
from storage.models import OutboxEntry
from storage.retention import PurgeReport
from storage.threads import ThreadMap
from storage.vault import Vault

log = logging.getLogger(__name__)
#: How often replies a platform could not take (it was unreachable) are tried again.
RETRY_SECONDS = 30.0
#: On stop: seconds to go on sending what is queued, then for sends in flight to finish.
STOP_GRACE = 1.0
STOP_FINISH = 0.5


def build_vault(settings: Settings) -> Vault:
    """The vault from the configured keys (already checked)."""
    return Vault(
        {v: decode_key(k.get_secret_value()) for v, k in settings.crypto.master_keys.items()},
        {v: decode_key(k.get_secret_value()) for v, k in settings.crypto.pseudonym_keys.items()},
    )


class App(Jobs):
    """The running bot: owns the database, the core, the scheduler, the send queues and
    the transports."""

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
        wait_for_sends: bool = True,
        max_queued: int = MAX_ITEMS,
    ) -> None:
        """``wait_for_sends``: :meth:`on_message` (and every job) returns only once its
        replies went out or wait for their platform - for tests and the console demo.
        ``ausweg run`` sets it off: an update is confirmed once it is committed and its
        replies go out from the queues (commit, then confirm, then send)."""
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
        self.wait_for_sends = wait_for_sends
        self.delivery = Delivery(
            self.transports,
            self.threads,
            self.metrics,
            self.clock,
            vanish_hours=settings.retention.vanish_hours,
            default_locale=settings.default_locale,
            directory=lambda: (
                self._with_created_rooms(self._directory) if self._directory else None
            ),
            tell=self._tell,
        )
        self.sender = Sender(
            self.delivery.deliver, loader=self._load, held=self._held, max_items=max_queued
        )
        self._flusher: asyncio.Task[None] | None = None
        #: Staff rooms transports created for programmes without one (see ``_hand_directory``).
        self._created: dict[Platform, dict[str, str]] = {}
        self._retry_seconds = retry_seconds
        self._retrier: asyncio.Task[None] | None = None
        #: A reload's release of removed staff's cases, awaited before the next message.
        self._orphans: asyncio.Task[None] | None = None
        #: Set once the outbox left by a crash was queued (inbound messages wait for it).
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
        self.delivery.stores = Stores(self.db, self.keystore)
        self._flusher = asyncio.create_task(self.delivery.flush_loop(self.router.forget_delivered))
        self.router.outbox = any(getattr(t, "redelivers", False) for t in self.transports.values())
        self.router.on_erased = self.sender.recheck  # queued replies an erasure took: dropped
        if self.router.outbox:  # progress per reply, so a crash resends only what was in flight
            self.sender.progress = Progress(self.db, self._sent)
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
        """Run the leader's parts: the leader's transports, the outbox a crashed leader
        left (queued before any new message is handled), then the jobs.

        Transports first: a job that fires (a follow-up due at a take-over) must find
        its platform connected - a send before that would park the platform's queues
        until the next retry round. Jobs after the drain: a follow-up queues behind
        what the crashed leader left for the same chat.
        """
        if self.router is None:
            return
        self._drained.clear()
        for transport in self.transports.values():
            if _leader_only(transport):
                await transport.start(self.on_message)
        if self.router.outbox:
            await self.drain_outbox()
            if self.wait_for_sends:
                await self.sender.idle_or_waiting()
        if self.scheduler is not None:
            self.scheduler.start(self.fire_followup)
            self.scheduler.every("escalate", 15, self.escalate)
            # Every minute: an unclaimed urgent case must reach the coordinator within
            # minutes of its window (reads only cases whose window runs).
            self.scheduler.every("urgent", 1, self.escalate_urgent)
            self.scheduler.every("purge", 60, self.purge)
            self.scheduler.every("followup-window", REFRESH_MINUTES, self.load_followup_window)
            await self.load_followup_window()
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
        led = {p for p, t in self.transports.items() if _leader_only(t)}
        for transport in reversed(list(self.transports.values())):
            if _leader_only(transport):
                await self._stop_transport(transport)
        # The new leader sends what is in the outbox: queued copies here would come twice.
        self.sender.drop_platforms(led)
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
        # Queued replies go on for a moment; what is left stays in the outbox.
        await self.sender.close(STOP_GRACE, STOP_FINISH)
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
        """Handle one inbound message: commit its effects and replies, queue the replies.

        Returns once the update is durable (committed with its replies in the outbox),
        not when the replies went out - unless the app waits for sends
        (``wait_for_sends``: tests, and ``ausweg demo``).
        """
        if self.router is None:
            raise RuntimeError("app not started")
        if not self._drained.is_set():
            # Replies a crash left behind are queued first: a new answer must not overtake them.
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
            self.delivery.note_ref(handled.contact_id, msg.message_ref)
        await self._finish(handled)

    async def _finish(self, handled: Handled) -> None:
        """Schedule the jobs, queue the replies (and wait for them if the app does)."""
        if self.scheduler is not None:
            for job in handled.jobs:
                self.scheduler.followup(job.followup_id, job.due)
        replies = self.sender.submit(handled.outbox_id, handled.out, handled.positions)
        if self.wait_for_sends:
            await replies.wait()
            if self.sender.progress is not None:
                await self.sender.progress.flush()

    async def _send(self, out: Sequence[OutboundMessage]) -> None:
        """Queue replies that have no outbox entry (purge notices, staff notes)."""
        if out:
            await self._finish(Handled(list(out)))

    def _held(self, message: OutboundMessage) -> bool:
        """The transport's hint (``held(message)``, if it has one): sends to this
        destination wait for the platform's limit now, so the queues merge staff relays."""
        hint = getattr(self.transports.get(message.address.platform), "held", None)
        return bool(callable(hint) and hint(message))

    def _tell(self, out: Sequence[OutboundMessage]) -> None:
        self.sender.submit(None, out)

    async def deliver(self, out: OutboundMessage) -> bool:
        """Send one message now, outside the queues (see :meth:`Delivery.deliver`)."""
        return await self.delivery.deliver(out)

    async def flush_refs(self) -> None:
        """Write remembered message refs now."""
        await self.delivery.flush_refs()

    @property
    def dropped(self) -> int:
        """Messages for a platform without transport."""
        return self.delivery.dropped

    def _sent(self, outbox_id: str) -> None:
        """An entry with nothing left to send: deleted with the next unit of work (or by
        the flush loop within a second when idle), with its own key."""
        if self.router is not None:
            self.router.delivered.add(outbox_id)

    async def drain_outbox(self) -> int:
        """Queue the replies a crash left behind (committed, not all sent); returns how
        many sets. Entries are read when the queues have room; only the replies not
        marked as sent go out again."""
        if self.db is None or self.router is None:
            return 0
        async with self.db.transaction() as s:
            # In the order written: one chat's sets must go out in their order.
            ids = [
                i
                for (i,) in await s.execute(
                    select(OutboxEntry.id).order_by(OutboxEntry.seq.nulls_first(), OutboxEntry.id)
                )
            ]
        # Inbound messages wait for this (``_drained``): their replies queue behind these.
        fresh = [box for box in ids if not self.sender.knows(box)]
        for box in fresh:
            self.sender.adopt(box)
        if fresh:
            log.info("outbox: %d reply set(s) to send after a restart", len(fresh))
        return len(fresh)

    @property
    def waiting(self) -> int:
        """Reply sets kept for a platform that was unreachable (for health checks)."""
        return self.sender.waiting

    @property
    def _later(self) -> set[str]:
        """Outbox entries of the waiting reply sets."""
        return self.sender.waiting_boxes()

    async def _retry_loop(self) -> None:
        """Every ``retry_seconds``, try the waiting reply sets again."""
        while True:
            await asyncio.sleep(self._retry_seconds)
            if self.sender.waiting:
                try:
                    await self.retry_waiting()
                except Exception as exc:  # a bug must not end the retries
                    log.error("retry round failed: %s", type(exc).__name__)
                    self.metrics.error("retry")

    async def retry_waiting(self) -> None:
        """One round over the waiting reply sets, oldest first (read again from the
        outbox: replies erased meanwhile are not sent)."""
        await self.sender.retry()
        if self.sender.progress is not None:
            await self.sender.progress.flush()

    async def _load(self, box: str) -> tuple[list[OutboundMessage], list[int]] | None:
        """The replies of an outbox entry still to send and their positions (None: gone,
        or unreadable and dropped)."""
        if self.db is None or self.router is None:
            return None
        async with self.db.transaction() as s:
            entry = await s.get(OutboxEntry, box)
        if entry is None:
            return None
        try:
            out, positions = await self.router.unpack(entry)
        except Exception as exc:
            log.error("outbox entry unreadable: %s", type(exc).__name__)
            self._sent(entry.id)
            return None
        if not out:  # every reply in it was sent or erased
            self._sent(entry.id)
            return None
        return out, positions

    async def refresh_metrics(self) -> None:
        """Bring the gauges up to date (called when /metrics is scraped)."""
        self.metrics.leader.set(1 if self.leading else 0)
        self.metrics.outbox_waiting.set(self.waiting)
        if self.db is not None and self.router is not None:
            programmes = {p.id for p in self.router.directory.programmes}
            await self.metrics.refresh(self.db, self.clock.now(), programmes)


def _leader_only(transport: Transport) -> bool:
    """Receiving that must run once (Telegram polling, the Matrix sync)."""
    return bool(getattr(transport, "leader_only", False))
