"""``ausweg keys generate | rotate | status``: the keyring and old key versions."""

from __future__ import annotations

import json

from bot.cli.common import stores
from config.settings import Settings, new_key


def generate() -> int:
    """Print a new keyring (one master and one pseudonym key, version 1)."""
    keyring = {"master_keys": {"1": new_key()}, "pseudonym_keys": {"1": new_key()}}
    print(json.dumps(keyring, indent=2))
    return 0


async def rotate(settings: Settings, batch: int) -> int:
    """Re-wrap data keys and re-key pseudonyms; print counts before and after."""
    from storage import rotation

    async with stores(settings) as (db, keystore):
        report = await rotation.rotate(db, keystore, batch=batch)
    print("before:")
    print("\n".join("  " + line for line in report.before.lines()))
    p = report.pseudonyms
    print(
        f"re-wrapped {report.rewrapped} data keys; re-keyed {p.rekeyed} pseudonyms"
        f" ({p.unreadable} unreadable, {p.conflicts} conflicts)"
    )
    print("after:")
    print("\n".join("  " + line for line in report.after.lines()))
    left = report.after.keys_needing_old + report.after.contacts_needing_old
    if left == 0:
        print("Nothing needs an old key any more: remove the old versions and restart.")
    return 0 if left == 0 else 1


async def key_status(settings: Settings) -> int:
    """How many rows still need an old key version."""
    from storage import rotation

    async with stores(settings) as (db, keystore):
        status = await rotation.key_status(db, keystore)
    print("\n".join(status.lines()))
    return 0
