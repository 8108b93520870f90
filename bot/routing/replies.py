"""Replies kept (encrypted) in the message's transaction until they were sent.

Each reply is sealed under the key that covers it (see storage.outbox): the
person's, the case's, or the entry's own key, so an erasure covers waiting replies
too and nothing opens with the master key alone. An entry whose replies were handed
over is deleted inside the next unit of work (no commit of its own).
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import bindparam, delete, func, insert, select

from config.clock import hour
from config.messages import OutboundMessage, outbound_from_dict, outbound_to_dict
from storage import outbox
from storage.keystore import KeyStore
from storage.models import Case, Contact, OutboxEntry
from storage.repositories import UnitOfWork, new_id
from storage.vault import Vault, aad

#: A Core insert on the unit's connection: storing replies needs no ORM session.
#: ``seq`` is the last entry's + 1 in the same transaction: a chat's next update is
#: handled after this one committed, so its entry sorts after this one (both databases).
_STASH = insert(OutboxEntry).values(
    seq=select(func.coalesce(func.max(OutboxEntry.seq), 0) + 1).scalar_subquery()
)
_CONTACT_KEY = select(Contact.key_id).where(Contact.id == bindparam("i"))
_CASE_KEY = select(Case.key_id).where(Case.code == bindparam("c"))
_UNSTASH = delete(OutboxEntry).where(OutboxEntry.id.in_(bindparam("ids", expanding=True)))


class Replies:
    """The outbox side of the router: stash, unpack, forget once delivered."""

    def __init__(self, vault: Vault, keystore: KeyStore, dedup_hours: int) -> None:
        self.vault = vault
        self.keystore = keystore
        self.dedup_hours = dedup_hours
        #: Store replies until sent (on for transports that redeliver after a crash).
        self.enabled = False
        #: Outbox entries whose replies were handed over; deleted in the next unit of work
        #: (no commit of their own) or by the router's ``forget_delivered``.
        self.delivered: set[str] = set()
        #: Outbox entries with a key of their own (entry id -> key id), shredded with them.
        self._own: dict[str, str] = {}

    async def stash(
        self, uow: UnitOfWork, out: list[OutboundMessage], key: str | None
    ) -> str | None:
        """Keep the replies (encrypted) in the unit's transaction until they were sent."""
        if not self.enabled or not out:
            return None
        key = key or new_id()
        expiry = hour(uow.now) + timedelta(hours=self.dedup_hours)
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

    async def forget_delivered(self, uow: UnitOfWork) -> None:
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

    async def unsent(
        self, uow: UnitOfWork, key: str
    ) -> tuple[list[OutboundMessage], list[int]] | None:
        """A redelivered update's stored replies (None: nothing stored for it)."""
        if not self.enabled:
            return None
        entry = await uow.session.get(OutboxEntry, key)
        if entry is None:
            return None
        return await self.unpack(entry)

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
