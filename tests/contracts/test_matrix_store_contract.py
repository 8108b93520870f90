"""Matrix crypto store contract: the bot's SQLCipher store against matrix-nio's own.

``EncryptedSqliteStore`` (bot.transports.matrix.crypto_store.py) swaps nio's SQLite database
for SQLCipher; everything nio keeps there must come back after a reopen exactly as
nio's plain ``SqliteStore`` gives it back (account, devices and their trust, Olm and
Megolm sessions, encrypted rooms, key requests, the sync token). Run on both, so a
difference is a broken contract and not a matter of which one a test happened to use.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nio.crypto import (
    InboundGroupSession,
    OlmAccount,
    OlmDevice,
    OutboundGroupSession,
    OutboundSession,
    TrustState,
)
from nio.crypto.key_request import OutgoingKeyRequest
from nio.store import SqliteStore

from bot.transports.matrix.crypto_store import make_encrypted_store

USER, DEVICE = "@ausweg:example.org", "BOTDEVICE"
PEER, PEER_DEVICE = "@person:example.org", "PERSONPHONE"
ROOM = "!room:example.org"
PICKLE_KEY = "contract-pickle-key-" + "y" * 16

Opener = Callable[[], Any]


@pytest.fixture(params=["nio-sqlite", "sqlcipher"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Open (again) the same store in ``tmp_path``: nio's own or the bot's encrypted one."""
    if request.param == "nio-sqlite":
        kind: type[Any] = SqliteStore
    else:
        kind = make_encrypted_store(secrets.token_bytes(32))
    opened: list[Any] = []

    def open_store() -> Any:
        for store in opened:  # one connection at a time, as nio uses it
            store.database.close()
        opened.clear()
        store = kind(USER, DEVICE, str(tmp_path), PICKLE_KEY, "crypto-contract.db")
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.database.close()


def _with_account(reopen: Opener) -> tuple[Any, OlmAccount]:
    store = reopen()
    account = OlmAccount()
    store.save_account(account)
    return store, account


def test_the_account_comes_back(reopen: Opener) -> None:
    _, account = _with_account(reopen)
    loaded = reopen().load_account()
    assert loaded is not None
    assert loaded.identity_keys == account.identity_keys
    assert loaded.shared == account.shared


def test_devices_and_their_trust_come_back(reopen: Opener) -> None:
    store, _ = _with_account(reopen)
    peer = OlmAccount()
    device = OlmDevice(PEER, PEER_DEVICE, dict(peer.identity_keys), display_name="phone")
    other = OlmDevice(PEER, "TABLET", dict(OlmAccount().identity_keys))
    store.save_device_keys({PEER: {PEER_DEVICE: device, "TABLET": other}})
    assert store.verify_device(device)
    assert store.blacklist_device(other)
    store = reopen()
    devices = store.load_device_keys()
    loaded = devices[PEER][PEER_DEVICE]
    assert loaded.keys == device.keys
    assert loaded.display_name == "phone"
    assert loaded.trust_state is TrustState.verified
    assert devices[PEER]["TABLET"].trust_state is TrustState.blacklisted
    assert store.is_device_verified(loaded)
    assert store.is_device_blacklisted(devices[PEER]["TABLET"])
    assert store.unverify_device(loaded)
    assert not reopen().load_device_keys()[PEER][PEER_DEVICE].verified


def test_olm_sessions_come_back(reopen: Opener) -> None:
    store, account = _with_account(reopen)
    peer = OlmAccount()
    peer.generate_one_time_keys(1)
    one_time = next(iter(peer.one_time_keys["curve25519"].values()))
    session = OutboundSession(account, peer.identity_keys["curve25519"], one_time)
    store.save_session(peer.identity_keys["curve25519"], session)
    sessions = reopen().load_sessions()
    loaded = sessions.get(peer.identity_keys["curve25519"])
    assert loaded is not None
    assert loaded.id == session.id


def test_megolm_sessions_come_back(reopen: Opener) -> None:
    store, account = _with_account(reopen)
    outbound = OutboundGroupSession()
    inbound = InboundGroupSession(
        outbound.session_key,
        account.identity_keys["ed25519"],
        account.identity_keys["curve25519"],
        ROOM,
    )
    store.save_inbound_group_session(inbound)
    groups = reopen().load_inbound_group_sessions()
    loaded = groups.get(ROOM, account.identity_keys["curve25519"], inbound.id)
    assert loaded is not None
    assert loaded.id == outbound.id
    assert loaded.room_id == ROOM


def test_encrypted_rooms_come_and_go(reopen: Opener) -> None:
    store, _ = _with_account(reopen)
    store.save_encrypted_rooms([ROOM, "!other:example.org"])
    store = reopen()
    assert store.load_encrypted_rooms() == {ROOM, "!other:example.org"}
    store.delete_encrypted_room("!other:example.org")
    assert reopen().load_encrypted_rooms() == {ROOM}


def test_the_sync_token_is_the_last_one_saved(reopen: Opener) -> None:
    store, _ = _with_account(reopen)
    assert store.load_sync_token() is None
    store.save_sync_token("s1_2_3")
    store.save_sync_token("s4_5_6")
    assert reopen().load_sync_token() == "s4_5_6"


def test_key_requests_come_and_go(reopen: Opener) -> None:
    store, _ = _with_account(reopen)
    request = OutgoingKeyRequest("req1", "sess1", ROOM, "m.megolm.v1.aes-sha2")
    store.add_outgoing_key_request(request)
    store = reopen()
    assert set(store.load_outgoing_key_requests()) == {"req1"}
    store.remove_outgoing_key_request(request)
    assert reopen().load_outgoing_key_requests() == {}
