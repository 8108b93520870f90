"""The router: one inbound message -> one transaction -> outbound messages.

Steps: de-duplicate, resolve the sender to a pseudonymous contact (or a staff
role), run the handler for its state, apply effects through the case service,
commit. Replies are returned only after the commit; a failure rolls everything
back and the sender gets a kind error message instead of a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.bounded import BoundedDict
from bot.routing.inbound import clean, crisis_key, first_language
from bot.routing.replies import Replies
from config.clock import Clock, hour
from config.directory import Directory
from config.i18n import pick_locale, translator
from config.messages import (
    Address,
    ChatKind,
    InboundMessage,
    OutboundMessage,
    OutKind,
)
from config.register import addressed
from config.settings import DEMO_OPERATOR, OperatorSettings, RetentionSettings
from handlers import intake, staff
from handlers.base import Transition
from handlers.casework import CaseService, Person, StaffRole
from handlers.followups import FollowUpService
from handlers.limits import Limits
from handlers.safety import detect
from storage.db import Database, is_disconnect
from storage.group_commit import GroupCommit
from storage.keystore import KeyStore
from storage.models import Contact, OutboxEntry, Referral, touch
from storage.repositories import JobChange, UnitOfWork, Updates, new_id, unit
from storage.threads import ThreadMap
from storage.vault import Vault

log = logging.getLogger(__name__)
#: Unconfigured groups remembered as told (a redelivered or late message says nothing).
LEAVING_REMEMBERED = 4096
#: A group that still sends messages this long after the bot left it is left again.
LEAVE_AGAIN_SECONDS = 60.0
#: How long one update is tried again while the database connection keeps breaking
#: (a server restart or failover takes seconds); the pause doubles up to the cap.
DB_RETRY_WINDOW = 30.0
DB_RETRY_FIRST = 0.05
DB_RETRY_CAP = 2.0
#: A person's last message is joined to the next for crisis detection within this time
#: (people chat in fragments); kept in memory only, for this many people, this long.
FRAGMENT_SECONDS = 90.0
FRAGMENTS_REMEMBERED = 2048
FRAGMENT_CHARS = 200


class Busy(Exception):
    """Too many newcomers right now: answer kindly, store nothing."""


class _Disconnected(Exception):
    """The database connection broke during an update (rolled back; worth a retry)."""


@dataclass(slots=True)
class Handled:
    """What one unit of work produced.

    Attributes:
        out: messages to send (after the commit).
        contact_id: the person it was about (for remembering message refs).
        jobs: scheduler changes to apply after the commit.
        outbox_id: the stored copy of ``out`` to delete once sent (outbox on).
        positions: where each of ``out`` sits in that entry (None: 0, 1, 2 ...).
    """

    out: list[OutboundMessage] = field(default_factory=list)
    contact_id: str | None = None
    jobs: list[JobChange] = field(default_factory=list)
    outbox_id: str | None = None
    #: Positions of ``out`` in its outbox entry when some replies there were erased.
    positions: list[int] | None = None


class Router:
    """Platform-neutral core entry point."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        keystore: KeyStore,
        directory: Directory,
        retention: RetentionSettings,
        clock: Clock,
        threads: ThreadMap | None = None,
        limits: Limits | None = None,
        *,
        relay_attachments: bool = False,
        matrix_contact: str | None = None,
        controller: OperatorSettings = DEMO_OPERATOR,
    ) -> None:
        self.db = db
        self.vault = vault
        self.keystore = keystore
        self.directory = directory
        self.retention = retention
        self.clock = clock
        self.threads = threads or ThreadMap()
        self.limits = limits or Limits()
        self.relay_attachments = relay_attachments
        #: Replies kept until sent (outbox; on for transports that redeliver).
        self.replies = Replies(vault, keystore, retention.dedup_hours)
        #: Called after a commit that shredded keys (an erasure): the send queues read
        #: their waiting sets again before sending (bot.app wires it to the Sender).
        self.on_erased: Callable[[], None] | None = None
        #: Messages arriving together share one transaction (each in a savepoint).
        self.commits = GroupCommit(db, keystore, clock.now, prologue=self.replies.forget_delivered)
        #: Unconfigured groups told that the bot leaves (once), with when it last left them.
        self._leaving: BoundedDict[tuple[str, str], float] = BoundedDict(LEAVING_REMEMBERED)
        #: A person's last message without danger (pseudonym -> tail, when): memory only.
        self._fragments: BoundedDict[str, tuple[str, float]] = BoundedDict(FRAGMENTS_REMEMBERED)
        self._ctx = intake.IntakeContext(
            directory,
            {
                "intake_hours": retention.intake_hours,
                "held_days": retention.held_message_days,
                "case_days": retention.inactive_case_days,
                "matrix": matrix_contact or "",
            },
            relay_attachments=relay_attachments,
            controller=controller,
        )

    @property
    def outbox(self) -> bool:
        """Whether replies are stored until sent (on for transports that redeliver)."""
        return self.replies.enabled

    @outbox.setter
    def outbox(self, on: bool) -> None:
        self.replies.enabled = on

    @property
    def delivered(self) -> set[str]:
        """Outbox entries whose replies were handed over (deleted with the next unit)."""
        return self.replies.delivered

    def use_directory(self, directory: Directory) -> None:
        """Switch to a reloaded directory (access changes take effect at once)."""
        self.directory = directory
        self._ctx = replace(self._ctx, directory=directory)

    async def handle(self, msg: InboundMessage) -> Handled:
        """Process one message in one transaction; never raises.

        A broken database connection rolls the transaction back; the update is then
        tried again on a fresh connection (nothing of the failed attempt was stored, and
        a commit whose answer was lost is found by the dedup key and its stored replies).
        """
        give_up = time.monotonic() + DB_RETRY_WINDOW
        pause = DB_RETRY_FIRST
        while True:
            try:
                return await self._handle_once(msg)
            except _Disconnected:
                if time.monotonic() + pause > give_up:
                    break
                log.warning("database connection lost; trying the update again")
                await asyncio.sleep(pause)
                pause = min(pause * 2, DB_RETRY_CAP)
        log.error("database unreachable; update answered with the error message")
        return self._fallback(clean(msg), "error.generic")

    async def _handle_once(self, msg: InboundMessage) -> Handled:
        """One attempt at :meth:`handle`; raises :class:`_Disconnected` only."""
        msg = clean(msg)
        if msg.edited and (msg.chat_kind is ChatKind.GROUP or crisis_key(msg) is None):
            return Handled()  # an edit is never an answer: only a danger in it counts
        roles = [
            StaffRole(p, m)
            for p, m in self.directory.staff_roles(msg.platform.value, msg.sender_id)
        ]
        if msg.edited and roles:
            return Handled()  # a staff member's edit is never a command run again
        case_hint = self.threads.case_at(msg.address)
        whoami = staff.whoami(msg)
        if whoami:  # before any lookup or write: the operator needs them to set the group up
            here = self.directory.programmes_of_room(msg.platform.value, msg.address.chat_id)
            if case_hint is None and not here:
                return Handled([*whoami, *self._unknown_group(msg).out])
            return Handled(whoami)
        if msg.chat_kind is ChatKind.GROUP and case_hint is None:
            here = self.directory.programmes_of_room(msg.platform.value, msg.address.chat_id)
            if not here:  # before any database work: nothing is written for such a group
                return self._unknown_group(msg)
            # In a staff room a counsellor acts only for the programmes whose room it is.
            ids = {p.id for p in here}
            if roles and not (roles := [r for r in roles if r.programme.id in ids]):
                return Handled()
        pseudonyms: list[str] = []  # current key version first
        if not roles and msg.chat_kind is ChatKind.PRIVATE:
            pseudonyms = [
                self.vault.pseudonym(msg.platform.value, msg.sender_id, v)
                for v in self.vault.pseudonym_versions()
            ]
            now = time.monotonic()
            if not self.limits.allow_message(pseudonyms[0], now) and (
                # A crisis goes the whole way (urgent case, staff alerted), once per interval.
                crisis_key(msg) is None or not self.limits.crisis_pass(pseudonyms[0], now)
            ):
                return self._limited(msg, pseudonyms[0])
        key = Updates.key(msg.platform.value, msg.update_id) if msg.update_id else None

        async def work(uow: UnitOfWork) -> Handled:
            if key and not await uow.updates.first_time_key(
                key, hour(uow.now) + timedelta(hours=self.retention.dedup_hours)
            ):
                log.info("duplicate update skipped")
                unsent = await self.replies.unsent(uow, key)
                if unsent is None:
                    return Handled()
                return Handled(unsent[0], outbox_id=key, positions=unsent[1])
            svc = CaseService(uow, self.directory, self.retention, self.limits)
            if roles:
                out = await staff.handle(
                    svc, roles, msg, case_hint, relay_attachments=self.relay_attachments
                )
                return Handled(out, None, uow.jobs, await self.replies.stash(uow, out, key))
            if msg.chat_kind is ChatKind.GROUP:
                log.info("message from a non-staff account in a group ignored")
                return Handled()
            out, contact_id = await self._person(uow, svc, msg, pseudonyms)
            return Handled(out, contact_id, uow.jobs, await self.replies.stash(uow, out, key))

        async def work_then_recheck(uow: UnitOfWork) -> Handled:
            handled = await work(uow)
            if uow.keys.shredding and self.on_erased is not None:
                uow.on_commit.append(self.on_erased)  # replies queued in memory: read again
            return handled

        try:
            return await self.commits.run(work_then_recheck)
        except Busy:
            return self._fallback(msg, "limits.busy")
        except Exception as exc:  # one bad update must never stop the bot
            if is_disconnect(exc):
                raise _Disconnected from exc
            log.error("handling failed: %s", type(exc).__name__, exc_info=True)
            return self._fallback(msg, "error.generic")

    def _unknown_group(self, msg: InboundMessage) -> Handled:
        """A group that is neither a staff room nor a case's thread: say so once, leave.

        Nothing there is relayed or answered (staff commands included), and nothing is
        stored; the notice names no programme. Crisis words still get the numbers.
        """
        place = (msg.platform.value, msg.address.chat_id)
        now = time.monotonic()
        leave = OutboundMessage(Address(msg.platform, msg.address.chat_id), "", kind=OutKind.LEAVE)
        out: list[OutboundMessage] = []
        told = self._leaving.get(place)
        if told is None:
            log.info("message in a group that is not configured: leaving it")
            t = translator(pick_locale(msg.locale))
            out = [OutboundMessage(msg.address, t("group.leaving"), protect=False), leave]
            self._leaving[place] = now
        elif now - told >= LEAVE_AGAIN_SECONDS:  # added again, or the leave failed: no notice
            out = [leave]
            self._leaving[place] = now
        crisis = crisis_key(msg)
        if crisis is not None:
            text = translator(pick_locale(msg.locale))(crisis)
            out.insert(0, OutboundMessage(msg.address, text, urgent=True, protect=False))
        return Handled(out)

    def _fallback(self, msg: InboundMessage, key: str) -> Handled:
        """A kind answer when nothing could be stored - with the crisis numbers if needed."""
        t = translator(pick_locale(msg.locale))
        out = [OutboundMessage(msg.address, t(key))]
        crisis = crisis_key(msg)
        if crisis is not None:
            out.insert(0, OutboundMessage(msg.address, t(crisis), urgent=True))
        return Handled(out)

    async def forget_delivered(self) -> None:
        """Delete the entries of replies already handed over now (idle time, shutdown)."""
        if self.delivered:
            async with unit(self.db, self.keystore, self.clock.now()) as uow:
                await self.replies.forget_delivered(uow)

    async def unpack(self, entry: OutboxEntry) -> tuple[list[OutboundMessage], list[int]]:
        """The replies stored in an outbox entry that still open, and their positions."""
        return await self.replies.unpack(entry)

    def _limited(self, msg: InboundMessage, pseudonym: str) -> Handled:
        """Over the rate, at most one reply per notice interval: the numbers again for
        crisis words (they went out in full moments ago), else a kind note. Repeating
        them in a burst helps no one and would turn a flood into outbound load."""
        if not self.limits.notice(pseudonym, time.monotonic()):
            return Handled()
        t = translator(pick_locale(msg.locale))
        crisis = crisis_key(msg)
        if crisis is not None:
            return Handled([OutboundMessage(msg.address, t(crisis), urgent=True)])
        return Handled([OutboundMessage(msg.address, t("limits.slow_down"))])

    async def run(self, job: str, arg: str | None = None) -> Handled:
        """Run a scheduled job (``followup`` with an id, ``escalate``, ``urgent`` or
        ``orphans``) in one transaction."""
        try:
            async with unit(self.db, self.keystore, self.clock.now()) as uow:
                svc = CaseService(uow, self.directory, self.retention, self.limits)
                if job == "followup" and arg:
                    out = await FollowUpService(svc).fire(arg)
                elif job == "escalate":
                    out = await svc.escalate_overdue()
                elif job == "urgent":
                    out = await svc.escalate_urgent()
                elif job == "orphans":
                    out = await svc.release_orphans()
                else:
                    raise ValueError(f"unknown job {job}")
                return Handled(out, None, uow.jobs, await self.replies.stash(uow, out, None))
        except Exception as exc:
            log.error("job %s failed: %s", job, type(exc).__name__, exc_info=True)
            return Handled()

    async def _load(
        self, uow: UnitOfWork, msg: InboundMessage, pseudonyms: list[str]
    ) -> tuple[Person, dict[str, Any]]:
        platform = msg.platform.value
        found = await uow.contacts.load(pseudonyms)
        if found is not None:
            contact, case = found
            person = Person(contact, await uow.keys.get(contact.key_id), case, case_loaded=True)
            profile: dict[str, Any] = {}
            if contact.profile_ct is not None:
                profile = uow.keys.open_json(
                    person.dek, "contacts", "profile", contact.id, contact.profile_ct
                )
            if contact.state in intake.INTAKE_STATES and contact.delete_after <= uow.now:
                contact.state, contact.urgent, profile = intake.State.NEW.value, False, {}
            return person, profile
        if not self.limits.allow_newcomer(time.monotonic()):
            raise Busy  # crisis words too: the numbers go out (``_fallback``), no contact
        expiry = hour(uow.now) + timedelta(hours=self.retention.intake_hours)
        key_id, dek = uow.keys.create(expiry)
        contact_id = new_id()
        address = {
            "p": platform,
            "c": msg.address.chat_id,
            "t": msg.address.thread_id,
            "a": msg.sender_id,
        }
        contact = Contact(
            id=contact_id,
            pseudonym=pseudonyms[0],
            pseudonym_version=self.vault.pseudonym_version,
            platform=platform,
            key_id=key_id,
            address_ct=uow.keys.seal_json(dek, "contacts", "address", contact_id, address),
            locale=pick_locale(msg.locale),
            state=intake.State.NEW.value,
            profile_ct=None,
            urgent=False,
            created_at=hour(uow.now),
            delete_after=expiry,
        )
        uow.session.add(contact)
        return Person(contact, dek, None, case_loaded=True), {}

    async def _edited(
        self,
        svc: CaseService,
        msg: InboundMessage,
        person: Person,
        profile: dict[str, Any],
        audience: str | None,
    ) -> list[OutboundMessage]:
        """A message edited into a danger: the numbers, and the urgent mark where the
        person has consented (as for a new message); no state change, no relay."""
        danger = detect(msg.text)
        if danger is None:
            return []
        contact = person.contact
        t = addressed(contact.locale, profile.get("audience") or audience)
        reply = intake.crisis_reply(t, danger)
        out = [OutboundMessage(msg.address, reply.text, urgent=True, contact_id=contact.id)]
        states = (intake.State.CASE.value, intake.State.REFERRED.value)
        if profile.get("consent") or contact.state in states:
            out.extend(await svc.mark_urgent(person, danger.value, t))
        return out

    async def _person(
        self, uow: UnitOfWork, svc: CaseService, msg: InboundMessage, pseudonyms: list[str]
    ) -> tuple[list[OutboundMessage], str | None]:
        person, profile = await self._load(uow, msg, pseudonyms)
        contact = person.contact
        msg = first_language(contact, msg)
        case = person.case if person.case_loaded else None
        audience = case.audience if case is not None else None
        if msg.edited:
            return await self._edited(svc, msg, person, profile, audience), contact.id
        now = time.monotonic()
        last = self._fragments.pop(contact.pseudonym, None)
        previous = last[0] if last is not None and now - last[1] < FRAGMENT_SECONDS else None
        tr = intake.step(self._ctx, contact.state, profile, contact.locale, msg, audience, previous)
        if msg.text and not msg.button and not any(r.urgent for r in tr.replies):
            self._fragments[contact.pseudonym] = (msg.text[-FRAGMENT_CHARS:], now)
        out = [
            OutboundMessage(msg.address, r.text, r.buttons, urgent=r.urgent, contact_id=contact.id)
            for r in tr.replies
        ]
        # One register per audience (config/register.py): "Sie" for relatives and professionals.
        audience = tr.profile.get("audience") or profile.get("audience") or audience
        t = addressed(contact.locale, audience)
        for effect in tr.effects:
            kind = effect.kind
            if kind == "erase":
                out.extend(await svc.erase(person, t, receipt=bool(effect.data.get("receipt"))))
                return out, None
            if kind == "set_locale":
                contact.locale = effect.data["locale"]
                t = addressed(contact.locale, audience)
            elif kind == "mark_urgent":
                out.extend(await svc.mark_urgent(person, effect.data.get("danger"), t))
            elif kind == "relay":
                out.extend(await svc.from_person(person, effect.data["text"], t))
            elif kind == "open_case":
                before = person.case
                out.extend(await svc.open_case(person, effect, t))
                if effect.data["route"].opens_case and person.case is before:
                    tr.state = intake.State.MESSAGE.value  # a cap: the answers are kept
                    continue
                # The case keeps the categories it needs; the answers themselves go. After a
                # referral they stay (encrypted, until the intake expiry) for "chat instead".
                if tr.state != intake.State.REFERRED:
                    tr.profile = {}
            elif kind == "restart":
                contact.urgent = False
            elif kind == "vanish":
                out.extend(await svc.vanish(person, msg.message_ref))
                return out, None
            elif kind == "referral":
                await self._referral(uow, tr, effect.data["code"])
            elif kind == "transfer_answer":
                out.extend(await svc.transfer_answer(person, bool(effect.data["yes"]), t))
            elif kind == "relay_attachment" and msg.message_ref:
                out.extend(
                    await svc.attachment_from_person(
                        person, msg.address, msg.message_ref, str(effect.data["kind"]), t
                    )
                )
            elif kind == "who":
                out.extend(await svc.who(person, t))
            elif kind == "followups":
                out.extend(await svc.person_followups(person, str(effect.data["action"]), t))
        touch(contact, state=tr.state)
        if tr.profile != profile:
            contact.profile_ct = (
                uow.keys.seal_json(person.dek, "contacts", "profile", contact.id, tr.profile)
                if tr.profile
                else None
            )
        if tr.state in intake.INTAKE_STATES or tr.state == intake.State.REFERRED:
            expiry = hour(uow.now) + timedelta(hours=self.retention.intake_hours)
            touch(contact, delete_after=expiry)
        return out, contact.id

    async def _referral(self, uow: UnitOfWork, tr: Transition, code: str) -> None:
        row = (
            await uow.session.execute(select(Referral).where(Referral.code == code))
        ).scalar_one_or_none()
        if row is not None and row.delete_after > uow.now:
            tr.profile["ref"], tr.profile["source"] = row.programme_id, row.source
