"""Key separation (issue 10, obs 7): the master key itself encrypts nothing; every purpose
gets its own HKDF key with its own label; data written before the change still opens."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import App
from bot.transports.matrix.crosssign import CrossSigningSeeds
from bot.transports.matrix.session import (
    SESSION_FILE,
    StoredSession,
    load_session,
    save_session,
    store_key,
)
from bot.transports.matrix.session import (
    derive_key as session_derive_key,
)
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory
from config.settings import CryptoSettings, Settings, new_key
from storage.models import Case
from storage.vault import LABELS, WRAP_DERIVED, WRAP_LEGACY, Vault, aad, derive_key
from tests.conftest import OFFICE_TIME, OPERATOR, Harness, memory_directory

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "pre_hkdf"
MESSAGE = "Ich will raus. Wie geht das?"


def key() -> bytes:
    return base64.b64decode(new_key())


def test_every_purpose_has_its_own_label_and_key() -> None:
    master = key()
    labels = list(LABELS.values())
    assert len(set(labels)) == len(labels)
    assert not [a for a in labels for b in labels if a != b and a.startswith(b)], "prefix labels"
    derived = {purpose: derive_key(master, purpose) for purpose in LABELS}
    assert len(set(derived.values())) == len(derived)
    assert master not in derived.values()
    for purpose in ("wrap", "outbox", "matrix-store", "matrix-session", "matrix-cross-signing"):
        assert purpose in LABELS
    # The Matrix transport uses the same registry.
    assert store_key(master) == derived["matrix-store"]
    assert session_derive_key(master, LABELS["matrix-session"]) == derived["matrix-session"]
    # Another master key, other keys for every purpose.
    other = key()
    assert not set(derived.values()) & {derive_key(other, p) for p in LABELS}


def test_the_master_key_itself_wraps_no_data_key() -> None:
    master = key()
    vault = Vault({1: master}, {1: key()})
    dek, wrapped = vault.new_data_key("k1")
    assert Vault.wrapped_format(wrapped) == WRAP_DERIVED
    header, nonce, ct = wrapped[:3], wrapped[3:15], wrapped[15:]
    with pytest.raises(InvalidTag):
        AESGCM(master).decrypt(nonce, ct, header + aad("key", "", "k1"))
    assert (
        AESGCM(derive_key(master, "wrap")).decrypt(nonce, ct, header + aad("key", "", "k1")) == dek
    )


def test_legacy_wrapped_keys_still_open() -> None:
    master = key()
    vault = Vault({1: master}, {1: key()})
    dek = AESGCM.generate_key(bit_length=256)
    header = bytes([WRAP_LEGACY, 0, 1])
    nonce = b"\1" * 12
    legacy = header + nonce + AESGCM(master).encrypt(nonce, dek, header + aad("key", "", "k1"))
    assert vault.unwrap("k1", legacy) == dek


def test_transient_sealing_cannot_reach_another_purposes_key() -> None:
    vault = Vault({1: key()}, {1: key()})
    blob = vault.seal_transient("outbox", b"x", b"a")
    assert vault.open_transient("outbox", blob, b"a") == b"x"
    for purpose in ("matrix-store", "matrix-session", "wrap", "unknown"):
        with pytest.raises(ValueError, match="purpose"):
            vault.seal_transient(purpose, b"x", b"a")


def fixture_copy(tmp_path: Path) -> tuple[Path, dict[int, bytes]]:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    keys = json.loads((data / "keys.json").read_text())
    return data, {1: base64.b64decode(keys["master_keys"]["1"])}


def formats(keys_db: Path) -> set[int]:
    with sqlite3.connect(keys_db) as conn:
        return {bytes(w)[0] for (w,) in conn.execute("SELECT wrapped FROM data_keys")}


async def test_a_database_written_before_the_separation_still_opens(
    tmp_path: Path, directory: Directory
) -> None:
    data, _ = fixture_copy(tmp_path)
    raw = json.loads((data / "keys.json").read_text())
    assert formats(data / "keys.db") == {WRAP_LEGACY}  # written by the old code
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data,
        operator=OPERATOR,
        crypto=CryptoSettings(
            master_keys={1: SecretStr(raw["master_keys"]["1"])},
            pseudonym_keys={1: SecretStr(raw["pseudonym_keys"]["1"])},
        ),
    )
    transport = MemoryTransport()
    app = App(
        settings, [transport], clock=FakeClock(OFFICE_TIME), directory=memory_directory(directory)
    )
    await app.start()
    try:
        # Re-wrapped at start: the master key itself wraps nothing any more.
        assert formats(data / "keys.db") == {WRAP_DERIVED}
        assert app.db is not None
        async with app.db.transaction() as s:
            code = (await s.execute(select(Case.code))).scalar_one()
        h = Harness(app, transport, app.clock)  # type: ignore[arg-type]
        room = await h.staff("counsellor", button=f"claim:{code}")
        assert any(MESSAGE in m.text for m in room), "the held message did not open"
        await h.staff("counsellor", f"/r {code} Hallo, ich bin da.")
        reply = transport.pop("p1")  # the encrypted address opened
        assert any("Hallo, ich bin da." in m.text for m in reply)
        await h.say("p1", "Danke")  # the old pseudonym still finds the contact
        assert any(f"[{code}]\n> Danke" in m.text for m in h.room())  # quoted person text
    finally:
        await app.stop()


def test_a_matrix_session_written_before_the_separation_still_opens(tmp_path: Path) -> None:
    data, keys = fixture_copy(tmp_path)
    path = data / SESSION_FILE
    assert json.loads(path.read_text())["format"] == 1
    seeds = CrossSigningSeeds.from_bytes(bytes.fromhex((data / "seeds.hex").read_text()))
    loaded = load_session(path, keys)
    assert loaded is not None
    assert loaded[0].seeds == seeds
    # Rewritten at once: the seeds now sit under their own key inside the session file.
    envelope = json.loads(path.read_text())
    assert envelope["format"] == 2
    session_key = AESGCM(derive_key(keys[1], "matrix-session"))
    inner = json.loads(
        session_key.decrypt(
            base64.b64decode(envelope["nonce"]),
            base64.b64decode(envelope["ct"]),
            LABELS["matrix-session"] + b"/1",
        )
    )
    assert seeds.to_bytes() not in base64.b64decode(inner["seeds"])
    reloaded = load_session(path, keys)
    assert reloaded is not None
    assert reloaded[0].seeds == seeds


def test_seeds_need_their_own_key(tmp_path: Path) -> None:
    keys = {1: key()}
    seeds = CrossSigningSeeds.generate()
    path = tmp_path / SESSION_FILE
    save_session(path, StoredSession("http://h", "@b:h", "D", "t", seeds, 1), keys)
    envelope = json.loads(path.read_text())
    plain = AESGCM(derive_key(keys[1], "matrix-session")).decrypt(
        base64.b64decode(envelope["nonce"]),
        base64.b64decode(envelope["ct"]),
        LABELS["matrix-session"] + b"/1",
    )
    assert seeds.to_bytes().hex() not in plain.hex()
    sealed = base64.b64decode(json.loads(plain)["seeds"])
    opened = AESGCM(derive_key(keys[1], "matrix-cross-signing")).decrypt(
        sealed[:12], sealed[12:], LABELS["matrix-cross-signing"] + b"/1"
    )
    assert opened == seeds.to_bytes()


def legacy_wrap(master: bytes, key_id: str, dek: bytes, version: int = 1) -> bytes:
    """A data key wrapped the way the code before the separation did it."""
    header = bytes([WRAP_LEGACY]) + version.to_bytes(2, "big")
    nonce = b"\2" * 12
    return header + nonce + AESGCM(master).encrypt(nonce, dek, header + aad("key", "", key_id))


async def test_legacy_keys_are_rewrapped_at_start_on_each_backend(settings: Settings) -> None:
    from datetime import UTC, datetime, timedelta

    from storage.db import Database
    from storage.keystore import KeyStore, StoredKey

    master = key()
    vault = Vault({1: master}, {1: key()})
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    try:
        store = KeyStore(db, vault)
        await store.create_schema()
        deks = {f"k{i}": AESGCM.generate_key(bit_length=256) for i in range(3)}
        later = datetime.now(UTC) + timedelta(days=1)
        async with db.transaction() as s:
            s.add_all(
                StoredKey(id=k, wrapped=legacy_wrap(master, k, d), delete_after=later)
                for k, d in deks.items()
            )
        assert await store.needing_old_master() == 3
        fresh = KeyStore(db, vault)  # a restart
        await fresh.create_schema()
        assert await fresh.needing_old_master() == 0
        async with db.transaction() as s:
            wrapped = (await s.execute(select(StoredKey.wrapped))).scalars().all()
        assert {Vault.wrapped_format(bytes(w)) for w in wrapped} == {WRAP_DERIVED}
        assert await fresh.fetch(deks) == deks
    finally:
        await db.dispose()
