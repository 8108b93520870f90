"""Key rotation without downtime (privacy check 4).

Two kinds of keys rotate, each by adding a higher version to the settings:

* master keys wrap the data keys in the key store: :meth:`KeyStore.rewrap`
  re-wraps every key under the current version;
* pseudonym keys key the HMAC of platform ids: :func:`rekey_pseudonyms` decrypts
  each contact's reply address (it holds platform and account id) and stores the
  pseudonym under the current version.

Both run in short batches and are idempotent, so they are safe while the bot
runs, provided the running bot already knows the new versions (restart it with
old and new keys first): the router looks a person up under every known
pseudonym version and unwraps keys of every known master version. After
rotation nothing needs the old versions; remove them and restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, func, select, update

from storage.db import Database
from storage.keystore import KeyStore
from storage.models import Contact
from storage.repositories import Keys
from storage.vault import DecryptionError

_CONTACTS = cast(Table, Contact.__table__)
#: A row re-keyed meanwhile (another rotation run) is left alone.
_REKEY = (
    update(_CONTACTS)
    .where(_CONTACTS.c.id == bindparam("cid"), _CONTACTS.c.pseudonym_version != bindparam("v"))
    .values(pseudonym=bindparam("p"), pseudonym_version=bindparam("v"))
)


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """Which key versions stored data needs (counts only)."""

    master_version: int
    keys_by_master: dict[int, int]
    pseudonym_version: int
    contacts_by_pseudonym: dict[int, int]

    @property
    def keys_needing_old(self) -> int:
        """Key-store rows wrapped by a retired master key version."""
        return sum(n for v, n in self.keys_by_master.items() if v != self.master_version)

    @property
    def contacts_needing_old(self) -> int:
        """Contacts whose pseudonym uses a retired pseudonym key version."""
        return sum(n for v, n in self.contacts_by_pseudonym.items() if v != self.pseudonym_version)

    def lines(self) -> list[str]:
        """A printable summary."""
        return [
            f"master key: current v{self.master_version}; key-store rows per version "
            f"{_fmt(self.keys_by_master)}; needing an old master key: {self.keys_needing_old}",
            f"pseudonym key: current v{self.pseudonym_version}; contacts per version "
            f"{_fmt(self.contacts_by_pseudonym)}; needing an old pseudonym key: "
            f"{self.contacts_needing_old}",
        ]


def _fmt(counts: dict[int, int]) -> str:
    return "{" + ", ".join(f"v{v}: {n}" for v, n in sorted(counts.items())) + "}"


@dataclass(frozen=True, slots=True)
class RekeyResult:
    """Outcome of re-keying pseudonyms."""

    rekeyed: int
    unreadable: int
    conflicts: int


@dataclass(frozen=True, slots=True)
class RotationReport:
    """Before and after a rotation."""

    before: KeyStatus
    after: KeyStatus
    rewrapped: int
    pseudonyms: RekeyResult


async def key_status(db: Database, keystore: KeyStore) -> KeyStatus:
    """Count stored keys per master version and contacts per pseudonym version."""
    async with db.transaction() as s:
        rows = await s.execute(
            select(Contact.pseudonym_version, func.count()).group_by(Contact.pseudonym_version)
        )
        pseudonyms = {int(v): int(n) for v, n in rows}
    vault = keystore.vault
    return KeyStatus(
        vault.master_version, await keystore.versions(), vault.pseudonym_version, pseudonyms
    )


async def rekey_pseudonyms(db: Database, keystore: KeyStore, *, batch: int = 500) -> RekeyResult:
    """Store every contact's pseudonym under the current pseudonym key version.

    A contact whose key was shredded or whose address does not open is counted
    as unreadable and left to the purge; a pseudonym already taken by another
    row (a duplicate made by a bot that did not know the new key) is a conflict.
    """
    vault = keystore.vault
    keys = Keys(keystore)
    current = vault.pseudonym_version
    rekeyed = unreadable = conflicts = 0
    after = ""
    while True:
        async with db.transaction() as s:
            rows = (
                await s.execute(
                    select(Contact.id, Contact.key_id, Contact.address_ct)
                    .where(Contact.pseudonym_version != current, Contact.id > after)
                    .order_by(Contact.id)
                    .limit(batch)
                )
            ).all()
            deks = await keystore.fetch([k for _, k, _ in rows])
            fresh: dict[str, str] = {}
            for contact_id, key_id, address_ct in rows:
                dek = deks.get(key_id)
                try:
                    if dek is None:
                        raise LookupError("data key was shredded")
                    data = keys.open_json(dek, "contacts", "address", contact_id, address_ct)
                    fresh[contact_id] = vault.pseudonym(str(data["p"]), str(data["a"]))
                except (LookupError, DecryptionError, TypeError, ValueError):
                    unreadable += 1
            taken = set(
                (
                    await s.execute(
                        select(Contact.pseudonym).where(Contact.pseudonym.in_(fresh.values()))
                    )
                ).scalars()
            )
            params = [
                {"cid": contact_id, "p": pseudonym, "v": current}
                for contact_id, pseudonym in fresh.items()
                if pseudonym not in taken
            ]
            conflicts += len(fresh) - len(params)
            if params:
                result = await s.execute(_REKEY, params)
                n = int(getattr(result, "rowcount", -1))
                rekeyed += n if n >= 0 else len(params)
        if len(rows) < batch:
            return RekeyResult(rekeyed, unreadable, conflicts)
        after = rows[-1][0]


async def rotate(db: Database, keystore: KeyStore, *, batch: int = 500) -> RotationReport:
    """Re-wrap all data keys and re-key all pseudonyms under the current versions."""
    before = await key_status(db, keystore)
    rewrapped = await keystore.rewrap(batch)
    pseudonyms = await rekey_pseudonyms(db, keystore, batch=batch)
    return RotationReport(before, await key_status(db, keystore), rewrapped, pseudonyms)
