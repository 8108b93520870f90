"""The router: one inbound message -> one transaction -> outbound messages.

Steps: de-duplicate, resolve the sender to a pseudonymous contact (or a staff
role), run the handler for its state, apply effects through the case service,
commit. Replies are returned only after the commit; a failure rolls everything
back and the sender gets a kind error message instead of a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select

from bot.bounded import BoundedDict
from config.clock import Clock, hour
from config.directory import Directory
from config.i18n import SUPPORTED, pick_locale, translator
from config.langdetect import detect_language
from config.messages import (
    Address,
    ChatKind,
    InboundMessage,
    OutboundMessage,
    OutKind,
    outbound_from_dict,
    outbound_to_dict,
)
from config.register import addressed
from config.settings import DEMO_OPERATOR, OperatorSettings, RetentionSettings
from handlers import intake, staff
from handlers.base import Transition
from handlers.casework import CaseService, Person, StaffRole
from handlers.followups import FollowUpService
from handlers.limits import Limits
from handlers.safety import detect
from storage import outbox
from storage.db import Database, is_disconnect
from storage.keystore import KeyStore
from storage.models import Case, Contact, OutboxEntry, Referral, touch
from storage.repositories import JobChange, UnitOfWork, Updates, new_id, unit
from storage.threads import ThreadMap
from storage.vault import Vault, aad

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
#: A Core insert on the unit's connection: storing replies needs no ORM session.
_STASH = insert(OutboxEntry)
_CONTACT_KEY = select(Contact.key_id).where(Contact.id == bindparam("i"))
_CASE_KEY = select(Case.key_id).where(Case.code == bindparam("c"))
_UNSTASH = delete(OutboxEntry).where(OutboxEntry.id.in_(bindparam("ids", expanding=True)))


def _valid(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates from a JSON escape: cannot be stored
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean(msg: InboundMessage) -> InboundMessage:
    """The message with text fields that can be encoded (cheap when they already can)."""
    fields = (msg.text, msg.sender_id, msg.button or "", msg.locale or "", msg.update_id)
    if all(_valid(f) is f for f in fields):
        return msg
    return replace(
        msg,
        text=_valid(msg.text),
        sender_id=_valid(msg.sender_id),
        button=_valid(msg.button) if msg.button else msg.button,
        locale=_valid(msg.locale) if msg.locale else msg.locale,
        update_id=_valid(msg.update_id),
    )


def _crisis(msg: InboundMessage) -> str | None:
    """The crisis reply's key for a message that cannot be handled in full (rate limit,
    busy, database down): the category's numbers, or all of them for a pressed
    "contact me now" / "yes, right now" (no case can be opened, so no one would call)."""
    danger = detect(msg.text) if msg.text else None
    if danger is not None:
        return f"crisis.{danger.value}"
    if msg.button and (msg.button.startswith(intake.CONTACT_NOW) or msg.button == "safety:yes"):
        return "crisis"
    return None


#: The script each language is written in (detection switches a consent in progress
#: only across scripts: a person who chose English and types "ja" stays in English).
_SCRIPT = {"de": "latin", "en": "latin", "tr": "latin", "ru": "cyrillic", "uk": "cyrillic"}


def first_language(contact: Contact, msg: InboundMessage) -> InboundMessage:
    """Detect the language of a new contact's first messages (off the hot path: only
    before consent, only free text) and follow it.

    A first message sets the contact's locale, so the greeting is in the person's
    language (a supported platform hint stands, except against Cyrillic or Arabic text).
    At consent, text in another script ("да" under a German notice) asks again in the
    detected language: consent is informed only in a language the person reads. A
    crisis text is never rewritten (its numbers come in the new language).
    """
    new, consent = intake.State.NEW.value, intake.State.CONSENT.value
    if contact.state not in (new, consent) or msg.button or not msg.text:
        return msg
    if intake.command_of(msg) is not None:
        return msg
    found = detect_language(msg.text)
    if found is None or found == contact.locale:
        return msg
    same_script = _SCRIPT.get(found, found) == _SCRIPT.get(contact.locale, contact.locale)
    hint = (msg.locale or "").replace("_", "-").split("-")[0].lower()
    hinted = hint in SUPPORTED and hint == contact.locale  # "fr" -> English is no hint
    if contact.state == new:
        # A supported platform hint stands, unless the text is in a script its language
        # is not written in and that is not Latin (Cyrillic from a German phone): people
        # with a Russian phone may type German or transliterate, the reverse is rare.
        if not hinted or (not same_script and _SCRIPT.get(found, found) != "latin"):
            contact.locale = found
        return msg
    if same_script:
        return msg
    contact.locale = found
    if detect(msg.text) is not None:
        return msg
    return replace(msg, text="", button=f"lang:{found}")


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
        #: Store replies until sent (on for transports that redeliver after a crash).
        self.outbox = False
        #: Outbox entries whose replies were handed over; deleted in the next unit of work
        #: (no commit of their own) or by :meth:`forget_delivered`.
        self.delivered: set[str] = set()
        #: Unconfigured groups told that the bot leaves (once), with when it last left them.
        self._leaving: BoundedDict[tuple[str, str], float] = BoundedDict(LEAVING_REMEMBERED)
        #: A person's last message without danger (pseudonym -> tail, when): memory only.
        self._fragments: BoundedDict[str, tuple[str, float]] = BoundedDict(FRAGMENTS_REMEMBERED)
        #: Outbox entries with a key of their own (entry id -> key id), shredded with them.
        self._own: dict[str, str] = {}
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
        if msg.edited and (msg.chat_kind is ChatKind.GROUP or _crisis(msg) is None):
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
                _crisis(msg) is None or not self.limits.crisis_pass(pseudonyms[0], now)
            ):
                return self._limited(msg, pseudonyms[0])
        key = Updates.key(msg.platform.value, msg.update_id) if msg.update_id else None
        try:
            async with unit(self.db, self.keystore, self.clock.now()) as uow:
                await self._forget_delivered(uow)
                if key and not await uow.updates.first_time_key(
                    key, hour(uow.now) + timedelta(hours=self.retention.dedup_hours)
                ):
                    log.info("duplicate update skipped")
                    return await self._unsent(uow, key)
                svc = CaseService(uow, self.directory, self.retention, self.limits)
                if roles:
                    out = await staff.handle(
                        svc, roles, msg, case_hint, relay_attachments=self.relay_attachments
                    )
                    return Handled(out, None, uow.jobs, await self._stash(uow, out, key))
                if msg.chat_kind is ChatKind.GROUP:
                    log.info("message from a non-staff account in a group ignored")
                    return Handled()
                out, contact_id = await self._person(uow, svc, msg, pseudonyms)
                return Handled(out, contact_id, uow.jobs, await self._stash(uow, out, key))
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
        crisis = _crisis(msg)
        if crisis is not None:
            text = translator(pick_locale(msg.locale))(crisis)
            out.insert(0, OutboundMessage(msg.address, text, urgent=True, protect=False))
        return Handled(out)

    def _fallback(self, msg: InboundMessage, key: str) -> Handled:
        """A kind answer when nothing could be stored - with the crisis numbers if needed."""
        t = translator(pick_locale(msg.locale))
        out = [OutboundMessage(msg.address, t(key))]
        crisis = _crisis(msg)
        if crisis is not None:
            out.insert(0, OutboundMessage(msg.address, t(crisis), urgent=True))
        return Handled(out)

    async def _stash(
        self, uow: UnitOfWork, out: list[OutboundMessage], key: str | None
    ) -> str | None:
        """Keep the replies (encrypted) in the same transaction until they were sent.

        Each reply is sealed under the key that covers it (see storage.outbox): the
        person's, the case's, or the entry's own key, so an erasure covers waiting
        replies too and nothing opens with the master key alone.
        """
        if not self.outbox or not out:
            return None
        key = key or new_id()
        expiry = hour(uow.now) + timedelta(hours=self.retention.dedup_hours)
        covers = await self._covers(uow, out)
        deks = await uow.keys.get_many([k for k in set(covers) if k])
        own: tuple[str, bytes] | None = None
        parts = []
        for index, (message, cover) in enumerate(zip(out, covers, strict=True)):
            dek = deks.get(cover) if cover else None
            if cover is None or dek is None:
                own = own or uow.keys.create(expiry)
                cover, dek = own
            raw = json.dumps(outbound_to_dict(message), ensure_ascii=False).encode()
            parts.append((cover, self.vault.seal(dek, raw, outbox.part_aad(key, index))))
        own_id = own[0] if own else None
        await uow.conn.execute(
            _STASH, {"id": key, "payload_ct": outbox.pack(own_id, parts), "delete_after": expiry}
        )
        if own_id is not None:
            uow.on_commit.append(lambda: self._own.__setitem__(key, own_id))
        return key

    async def _covers(self, uow: UnitOfWork, out: list[OutboundMessage]) -> list[str | None]:
        """The data key id covering each reply: the person's, else the case's (None: the
        entry's own). Keys this unit shreds cover nothing (their replies must survive)."""
        contacts: dict[str, str | None] = {}
        cases: dict[str, str | None] = {}
        for row in uow.loaded():
            if isinstance(row, Contact):
                contacts[row.id] = row.key_id
            elif isinstance(row, Case):
                cases[row.code] = row.key_id
        gone = set(uow.keys.shredding)
        covers: list[str | None] = []
        for message in out:
            cover: str | None = None
            if message.contact_id:
                if message.contact_id not in contacts:
                    contacts[message.contact_id] = (
                        await uow.conn.execute(_CONTACT_KEY, {"i": message.contact_id})
                    ).scalar_one_or_none()
                cover = contacts[message.contact_id]
            if cover is None and message.case_code:
                if message.case_code not in cases:
                    cases[message.case_code] = (
                        await uow.conn.execute(_CASE_KEY, {"c": message.case_code})
                    ).scalar_one_or_none()
                cover = cases[message.case_code]
            covers.append(None if cover in gone else cover)
        return covers

    async def _forget_delivered(self, uow: UnitOfWork) -> None:
        """Delete the entries of replies already handed over, within this transaction.

        The ids leave :attr:`delivered` only once it committed; until then a crash
        leaves the entries, and they are sent again (at least once).
        """
        if self.delivered:
            ids = list(self.delivered)
            await uow.conn.execute(_UNSTASH, {"ids": ids})
            # an entry's own key goes with it (no checkpoint of its own: see Keys.shred)
            uow.keys.shred([self._own[i] for i in ids if i in self._own], erasure=False)

            def done() -> None:
                self.delivered.difference_update(ids)
                for i in ids:
                    self._own.pop(i, None)

            uow.on_commit.append(done)

    async def forget_delivered(self) -> None:
        """Delete the entries of replies already handed over now (idle time, shutdown)."""
        if self.delivered:
            async with unit(self.db, self.keystore, self.clock.now()) as uow:
                await self._forget_delivered(uow)

    async def _unsent(self, uow: UnitOfWork, key: str) -> Handled:
        """A redelivered update: send its replies if the first attempt never finished."""
        if not self.outbox:
            return Handled()
        entry = await uow.session.get(OutboxEntry, key)
        if entry is None:
            return Handled()
        out, positions = await self.unpack(entry)
        return Handled(out, outbox_id=key, positions=positions)

    async def unpack(self, entry: OutboxEntry) -> tuple[list[OutboundMessage], list[int]]:
        """The replies stored in an outbox entry that still open, and their positions.

        A reply whose key was shredded meanwhile (the person or case was erased) is
        left out: it must not be sent any more.
        """
        sealed = outbox.parse(entry.payload_ct)
        if sealed is None:  # written by an older version, under a master-derived key
            raw = self.vault.open_transient(
                "outbox", entry.payload_ct, aad("outbox", "payload", entry.id)
            )
            legacy = [outbound_from_dict(d) for d in json.loads(raw)]
            return legacy, list(range(len(legacy)))
        if sealed.own:
            self._own[entry.id] = sealed.own
        deks = await self.keystore.fetch({k for k, _ in sealed.parts})
        out: list[OutboundMessage] = []
        positions: list[int] = []
        for index, (key_id, blob) in enumerate(sealed.parts):
            dek = deks.get(key_id)
            if dek is None:
                continue
            raw = self.vault.open(dek, blob, outbox.part_aad(entry.id, index))
            out.append(outbound_from_dict(json.loads(raw)))
            positions.append(index)
        return out, positions

    def _limited(self, msg: InboundMessage, pseudonym: str) -> Handled:
        """Over the rate, at most one reply per notice interval: the numbers again for
        crisis words (they went out in full moments ago), else a kind note. Repeating
        them in a burst helps no one and would turn a flood into outbound load."""
        if not self.limits.notice(pseudonym, time.monotonic()):
            return Handled()
        t = translator(pick_locale(msg.locale))
        crisis = _crisis(msg)
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
                return Handled(out, None, uow.jobs, await self._stash(uow, out, None))
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
        tr = intake.step(
            self._ctx, contact.state, profile, contact.locale, msg, audience, previous
        )
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
