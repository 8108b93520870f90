"""Outbox entries sealed reply by reply under the data key that covers each reply.

Replies wait in the outbox until a platform took them (see bot.router). They hold
relayed text and reply addresses, so each reply is sealed (AES-256-GCM, bound to the
entry and its position) under a key from the key store, never under one derived from
the master key alone (privacy check 18):

* a reply to a person: that person's data key;
* a reply to a staff room about a case: the case's data key;
* anything else, and replies whose key this very unit shreds (the receipt of /delete,
  the staff notice of an erasure): the entry's own key, created with it and shredded
  when the entry is deleted.

So shredding a person's or a case's key also makes their waiting replies unreadable
in every copy, and deleting an entry never needs a key. Layout (binary)::

    0x02 | len(own) u8 | own key id | n u16 | n x (len(key id) u8 | key id | len u32 | sealed)

Entries written before this format start with 0x01 (sealed under a key derived from
the master key): they are still read once, never written.

Progress per reply (:func:`mark_sent`): a reply handed to its platform has its part
replaced by an empty one (no key id, no bytes) right after the send, so after a crash
only the replies whose request was in flight are sent again, not the whole entry.
Positions stay (each sealed part is bound to its index); an entry whose every part
is empty is deleted with the next unit of work (see bot.router).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import OutboxEntry
from storage.vault import aad

FORMAT = 2
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DROP = delete(OutboxEntry).where(OutboxEntry.id.in_(bindparam("ids", expanding=True)))
_REWRITE = (
    update(OutboxEntry)
    .where(OutboxEntry.id == bindparam("entry"))
    .values(payload_ct=bindparam("blob"))
    .execution_options(synchronize_session=False)
)
#: A reply already handed to its platform (its sealed part removed).
SENT_PART: tuple[str, bytes] = ("", b"")


class MalformedEntry(ValueError):
    """An outbox entry that is not in this module's format."""


@dataclass(frozen=True, slots=True)
class Sealed:
    """An entry's replies: the entry's own key id (or None) and (key id, sealed) pairs."""

    own: str | None
    parts: list[tuple[str, bytes]]

    @property
    def key_ids(self) -> set[str]:
        """Every key the entry needs (parts already sent need none)."""
        return {k for k, _ in self.parts if k} | ({self.own} if self.own else set())

    @property
    def part_keys(self) -> set[str]:
        """The keys of the replies still to send."""
        return {k for k, _ in self.parts if k}

    @property
    def unsent(self) -> list[int]:
        """Positions of the replies not yet handed to a platform."""
        return [i for i, part in enumerate(self.parts) if part != SENT_PART]


def part_aad(entry_id: str, index: int) -> bytes:
    """Associated data: a sealed reply opens only in its entry, at its position."""
    return aad("outbox", f"payload.{index}", entry_id)


def _key(key_id: str) -> bytes:
    raw = key_id.encode()
    if len(raw) > 255:
        raise ValueError("key id too long")
    return _U8.pack(len(raw)) + raw


def pack(own: str | None, parts: Iterable[tuple[str, bytes]]) -> bytes:
    """The stored form of an entry."""
    items = list(parts)
    out = [_U8.pack(FORMAT), _key(own or ""), _U16.pack(len(items))]
    for key_id, blob in items:
        out += [_key(key_id), _U32.pack(len(blob)), blob]
    return b"".join(out)


def parse(blob: bytes) -> Sealed | None:
    """The entry's parts; None for an entry in the old format (master-derived key)."""
    if not blob or blob[0] != FORMAT:
        return None
    try:
        pos = 1
        n = blob[pos]
        own = blob[pos + 1 : pos + 1 + n].decode()
        pos += 1 + n
        (count,) = _U16.unpack_from(blob, pos)
        pos += _U16.size
        parts = []
        for _ in range(count):
            n = blob[pos]
            key_id = blob[pos + 1 : pos + 1 + n].decode()
            pos += 1 + n
            (size,) = _U32.unpack_from(blob, pos)
            pos += _U32.size
            parts.append((key_id, blob[pos : pos + size]))
            pos += size
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise MalformedEntry("outbox entry is malformed") from exc
    return Sealed(own or None, parts)


def _sealed(blob: bytes) -> Sealed | None:
    try:
        return parse(blob)
    except MalformedEntry:
        return None


async def mark_sent(conn: AsyncConnection, marks: dict[str, set[int]]) -> set[str]:
    """Record replies as handed to their platform (in the caller's transaction).

    ``marks`` maps entry ids to positions sent. Returns the entries with nothing left
    to send (the caller deletes them, with their own key). Entries gone meanwhile and
    entries in the old format (sent again whole after a crash) are skipped.
    """
    if not marks:
        return set()
    rows = await conn.execute(
        select(OutboxEntry.id, OutboxEntry.payload_ct).where(OutboxEntry.id.in_(list(marks)))
    )
    changed: list[dict[str, object]] = []
    finished: set[str] = set()
    for entry_id, blob in rows:
        sealed = _sealed(blob)
        if sealed is None:
            continue
        parts = list(sealed.parts)
        for position in marks[entry_id]:
            if 0 <= position < len(parts):
                parts[position] = SENT_PART
        changed.append({"entry": entry_id, "blob": pack(sealed.own, parts)})
        if all(part == SENT_PART for part in parts):
            finished.add(entry_id)
    if changed:
        await conn.execute(_REWRITE, changed)
    return finished


async def drop_covered(conn: AsyncConnection, shredded: Iterable[str]) -> int:
    """Delete entries whose every reply is sealed under one of ``shredded`` (in the
    caller's transaction): after the shred nothing in them could be sent or read."""
    gone = set(shredded)
    if not gone:
        return 0
    rows = await conn.execute(select(OutboxEntry.id, OutboxEntry.payload_ct))
    ids = []
    for entry_id, blob in rows:
        sealed = _sealed(blob)
        if sealed is not None and sealed.unsent and sealed.part_keys <= gone:
            ids.append(entry_id)
    if ids:
        await conn.execute(_DROP, {"ids": ids})
    return len(ids)


async def keys_in_use(conn: AsyncConnection) -> dict[str, datetime]:
    """Key ids outbox entries still need, with the latest date of an entry needing them."""
    used: dict[str, datetime] = {}
    rows = await conn.execute(select(OutboxEntry.payload_ct, OutboxEntry.delete_after))
    for blob, until in rows:
        sealed = _sealed(blob)
        for key_id in sealed.key_ids if sealed else ():
            if key_id not in used or until > used[key_id]:
                used[key_id] = until
    return used
