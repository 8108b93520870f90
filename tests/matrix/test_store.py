"""The bot's matrix-nio crypto store is encrypted at rest and keeps no readable identifier."""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
import stat
from pathlib import Path

import pytest
import sqlcipher3
from nio import AsyncClient

from bot.transports.matrix.crypto_store import (
    DEFAULT_STORE_NAME,
    CryptoStoreError,
    encrypted_client_config,
    make_encrypted_store,
)
from tests.fakes.synapse import SynapseServer
from tests.matrix.nio_helpers import (
    Inbox,
    logged_in_client,
    open_encrypted_dm,
    send_text,
    sync_until,
)

PICKLE_KEY = "test-pickle-key-" + "x" * 16


def needles(value: str) -> set[bytes]:
    """``value`` as it could appear in a file: raw, UTF-16, hex, base64 at any alignment."""
    raw = value.encode()
    found = {raw, value.encode("utf-16-le"), raw.hex().encode(), raw.hex().upper().encode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            encoded = encode(b"\0" * shift + raw)
            # Drop the groups that the alignment bytes or the unknown neighbours touch.
            found.add(encoded[4 if shift else 0 : -4])
    return found


def hits(directory: Path, values: dict[str, str]) -> dict[str, list[str]]:
    """Which ``values`` (by label) occur in which files under ``directory``."""
    result: dict[str, list[str]] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for label, value in values.items():
            if any(needle in data for needle in needles(value)):
                result.setdefault(label, []).append(path.name)
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- unit checks


@pytest.mark.parametrize("key", [b"", b"\x01" * 31, b"\x01" * 33, bytes(32)])
def test_bad_keys_are_refused(key: bytes) -> None:
    with pytest.raises(ValueError, match="crypto store key"):
        make_encrypted_store(key)


def test_text_key_is_refused() -> None:
    with pytest.raises(TypeError):
        make_encrypted_store("0" * 32)  # type: ignore[arg-type]


@pytest.mark.parametrize("pickle_key", ["", "DEFAULT_KEY", "short"])
def test_weak_pickle_keys_are_refused(tmp_path: Path, pickle_key: str) -> None:
    store_class = make_encrypted_store(secrets.token_bytes(32))
    with pytest.raises(CryptoStoreError, match="pickle key"):
        store_class("@bot:localhost", "DEVICE", str(tmp_path), pickle_key, "")
    assert list(tmp_path.iterdir()) == []


def test_config_refuses_nio_default_pickle_key() -> None:
    with pytest.raises(CryptoStoreError, match="pickle key"):
        encrypted_client_config(secrets.token_bytes(32), "DEFAULT_KEY")


def test_store_name_never_contains_the_user_id(tmp_path: Path) -> None:
    store_class = make_encrypted_store(secrets.token_bytes(32))
    with pytest.raises(CryptoStoreError, match="Matrix id"):
        store_class("@bot:localhost", "DEVICE", str(tmp_path), PICKLE_KEY, "@bot:localhost.db")
    store = store_class("@bot:localhost", "DEVICE", str(tmp_path / "s"), PICKLE_KEY, "")
    try:
        assert store.database_name == DEFAULT_STORE_NAME
    finally:
        store.close()


def test_fresh_store_is_private_and_unreadable_without_key(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    store_dir = tmp_path / "store"
    store = make_encrypted_store(key)("@bot:localhost", "DEVICE", str(store_dir), PICKLE_KEY, "")
    store.close()
    db = store_dir / DEFAULT_STORE_NAME
    assert stat.S_IMODE(store_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert not db.read_bytes().startswith(b"SQLite format 3")
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
        sqlite3.connect(db).execute("SELECT * FROM sqlite_master").fetchall()


# --------------------------------------------------------------------------- end to end


async def test_encrypted_dm_leaves_no_readable_identifier(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    tag = secrets.token_hex(4)
    person_name = f"Sentinel Display {tag}"
    device_name = f"Sentinel Phone {tag}"
    person_user = await synapse.register_async(
        f"sentinel-person-{tag}", "person-password", displayname=person_name
    )
    bot_user = await synapse.register_async(f"ausweg-bot-{tag}", "bot-password")
    key = secrets.token_bytes(32)
    store_dir = tmp_path / "bot-store"
    texts = [f"sentinel text {n} {tag}" for n in range(3)]

    def bot_client(store_key: bytes = key) -> AsyncClient:
        return logged_in_client(
            synapse.base_url,
            bot_user,
            config=encrypted_client_config(store_key, PICKLE_KEY),
            store_path=store_dir,
        )

    bot = bot_client()
    person = logged_in_client(synapse.base_url, person_user)
    try:
        await person.update_device(person_user.device_id, {"display_name": device_name})
        bot_inbox, person_inbox = Inbox.attach(bot), Inbox.attach(person)
        room_id = await open_encrypted_dm(person, bot)

        # Person -> bot: the bot decrypts it (RoomMessageText, not MegolmEvent).
        await send_text(person, room_id, texts[0])
        await sync_until([bot, person], lambda: bot_inbox.settled(texts[0]), what="bot decrypt")
        assert bot_inbox.undecrypted == []
        assert texts[0] in bot_inbox.texts

        # Bot -> person.
        await send_text(bot, room_id, texts[1])
        await sync_until(
            [bot, person], lambda: person_inbox.settled(texts[1]), what="person decrypt"
        )
        assert person_inbox.undecrypted == []
        identity_keys = dict(bot.olm.account.identity_keys)
    finally:
        await bot.close()
        bot.store.close()

    try:
        # At rest: one private file, nothing readable in it.
        files = sorted(p.name for p in store_dir.iterdir())
        assert files == [DEFAULT_STORE_NAME]
        assert not any(bot_user.user_id in name for name in files)
        db = store_dir / DEFAULT_STORE_NAME
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        sentinels = {
            "person id": person_user.user_id,
            "person localpart": person_user.user_id[1:].split(":")[0],
            "display name": person_name,
            "device name": device_name,
            "person device id": person_user.device_id,
            "room id": room_id,
            **{f"text {n}": text for n, text in enumerate(texts)},
        }
        assert hits(store_dir, sentinels) == {}
        with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
            sqlite3.connect(db).execute("SELECT * FROM sqlite_master").fetchall()

        # Positive control: with the key, the person's id is there (so the grep is real).
        conn = sqlcipher3.connect(str(db))
        try:
            conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            rows = conn.execute("SELECT user_id, display_name FROM devicekeys").fetchall()
        finally:
            conn.close()
        assert (person_user.user_id, device_name) in rows

        # A wrong key fails clearly and leaves the file untouched.
        before = sha256(db)
        with pytest.raises(CryptoStoreError, match="wrong key"):
            bot_client(secrets.token_bytes(32))
        assert sha256(db) == before

        # Restart with the same store and key: same account, still decrypts.
        bot = bot_client()
        assert dict(bot.olm.account.identity_keys) == identity_keys
        assert bot.loaded_sync_token
        bot_inbox = Inbox.attach(bot)
        await sync_until([bot], lambda: True, what="first sync after restart")
        await send_text(person, room_id, texts[2])
        await sync_until(
            [bot, person], lambda: bot_inbox.settled(texts[2]), what="decrypt after restart"
        )
        assert bot_inbox.undecrypted == []
        assert texts[0] not in bot_inbox.texts  # resumed from the stored sync token
        await bot.close()
        bot.store.close()
        assert hits(store_dir, sentinels) == {}
        assert sorted(p.name for p in store_dir.iterdir()) == [DEFAULT_STORE_NAME]
    finally:
        await person.close()
        await bot.close()
