"""One send, as the queues' workers call it: the case's thread, refs for /vanish,
withheld replies, metrics; and the message refs written in batches, off the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import insert, select

from bot.metrics import Metrics
from bot.transports.base import SendLater, Transport, Withheld
from config.clock import Clock, hour
from config.directory import Directory
from config.i18n import translator
from config.messages import Address, OutboundMessage, OutKind, Platform, SendResult
from storage.db import Database
from storage.keystore import KeyStore
from storage.models import Case, Contact, MessageRef, StaffThread
from storage.repositories import new_id, unit
from storage.threads import ThreadMap

log = logging.getLogger(__name__)

#: Message refs are written in batches, off the hot path.
REF_BATCH = 200
REF_FLUSH_SECONDS = 1.0


@dataclass
class Stores:
    """What a send reads and writes (set once the app started)."""

    db: Database
    keystore: KeyStore


class Delivery:
    """Sends one message through its platform's transport and remembers what it needs."""

    def __init__(
        self,
        transports: Mapping[Platform, Transport],
        threads: ThreadMap,
        metrics: Metrics,
        clock: Clock,
        *,
        vanish_hours: int,
        default_locale: str,
        directory: Callable[[], Directory | None],
        tell: Callable[[Sequence[OutboundMessage]], object],
    ) -> None:
        self.transports = transports
        self.threads = threads
        self.metrics = metrics
        self.clock = clock
        self.stores: Stores | None = None
        self._vanish_hours = vanish_hours
        self._default_locale = default_locale
        self._directory = directory
        self._tell = tell
        self.dropped = 0
        self._refs: dict[str, list[str]] = defaultdict(list)
        self._ref_count = 0
        self._ref_wake = asyncio.Event()
        #: /vanish refs of a deletion that must wait (never flushed: the retry needs them).
        self._held_refs: dict[str, list[str]] = {}

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
        directory = self._directory()
        if out.contact_id is None or self.stores is None or directory is None:
            return
        try:
            async with self.stores.db.transaction() as s:
                case = (
                    (await s.execute(select(Case).where(Case.contact_id == out.contact_id)))
                    .scalars()
                    .first()
                )
            programme = directory.by_id.get(case.programme_id) if case else None
            if case is None or programme is None:
                return
            staff = programme.staff
            t = translator(staff[0].locale if staff else self._default_locale)
            text = t("staff.person_chat_watched", code=case.code)
            self._tell(
                [
                    OutboundMessage(
                        Address(Platform(platform), room),
                        text,
                        protect=False,
                        case_code=case.code,
                        programme=programme.id,
                    )
                    for platform, room in programme.staff_rooms.items()
                ]
            )
        except Exception as exc:
            log.error("telling staff about a withheld reply failed: %s", type(exc).__name__)

    async def _remember(self, out: OutboundMessage, result: SendResult) -> None:
        if result.ref and out.contact_id and out.kind is not OutKind.VANISH:
            self.note_ref(out.contact_id, result.ref)
        if result.thread is not None and out.case_code and out.programme:
            await self._store_thread(out.case_code, out.programme, result.thread)

    async def _store_thread(self, code: str, programme: str, thread: Address) -> None:
        if self.stores is None:
            return
        async with self.stores.db.transaction() as s:
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
    def note_ref(self, contact_id: str, ref: str) -> None:
        """Remember a platform message id in the person's chat (written in batches)."""
        self._refs[contact_id].append(ref)
        self._ref_count += 1
        if self._ref_count >= REF_BATCH:
            self._ref_wake.set()

    async def flush_loop(self, also: Callable[[], object]) -> None:
        """Write refs every ``REF_FLUSH_SECONDS`` (or at ``REF_BATCH``); then ``also``."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ref_wake.wait(), REF_FLUSH_SECONDS)
            self._ref_wake.clear()
            try:
                await self.flush_refs()
                done = also()
                if asyncio.iscoroutine(done):
                    await done
            except Exception as exc:
                log.error("storing message refs failed: %s", type(exc).__name__)

    async def flush_refs(self) -> None:
        """Write remembered message refs (encrypted, 48 h) in one transaction."""
        if not self._refs or self.stores is None:
            return
        pending, self._refs, self._ref_count = dict(self._refs), defaultdict(list), 0
        until = hour(self.clock.now()) + timedelta(hours=self._vanish_hours)
        async with unit(self.stores.db, self.stores.keystore, self.clock.now()) as uow:
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
