"""Cross-signing bootstrap against a real Synapse, checked from another user's view."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nio import AsyncClient

from bot.transports.matrix.crosssign import (
    CrossSigningError,
    CrossSigningSeeds,
    ensure_cross_signing,
)
from bot.transports.matrix.crypto_store import encrypted_client_config
from tests.fakes.synapse import RegisteredUser, SynapseServer
from tests.matrix.nio_helpers import logged_in_client


# Deliberately independent of the module under test: its own canonical JSON and base64.
def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def signed_by(
    obj: dict[str, Any], user_id: str, public_b64: str, key_name: str | None = None
) -> bool:
    """Verify ``obj``'s signature by ``public_b64`` with plain cryptography.

    The signature's key id is ``ed25519:<key_name>``: the public key itself for
    cross-signing keys, the device id for a device's self-signature.
    """
    signature = obj["signatures"][user_id][f"ed25519:{key_name or public_b64}"]
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    message = json.dumps(
        stripped, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    Ed25519PublicKey.from_public_bytes(_b64(public_b64)).verify(_b64(signature), message)
    return True


def only_key(key_object: dict[str, Any]) -> str:
    """The single public key of a cross-signing key object (checks its id format)."""
    ((kid, public),) = key_object["keys"].items()
    assert kid == f"ed25519:{public}"
    assert "=" not in kid
    return str(public)


async def query_as(synapse: SynapseServer, observer: RegisteredUser, user_id: str) -> Any:
    status, reply = await asyncio.to_thread(
        synapse.request,
        "POST",
        "/_matrix/client/v3/keys/query",
        {"device_keys": {user_id: []}},
        token=observer.access_token,
    )
    assert status == 200, reply
    return reply


def assert_cross_signed(
    reply: dict[str, Any], user_id: str, device_ids: list[str], seeds: CrossSigningSeeds
) -> None:
    master = reply["master_keys"][user_id]
    assert master["usage"] == ["master"]
    assert only_key(master) == seeds.master_public
    self_signing = reply["self_signing_keys"][user_id]
    assert self_signing["usage"] == ["self_signing"]
    ssk = only_key(self_signing)
    assert ssk == seeds.self_signing_public
    assert signed_by(self_signing, user_id, seeds.master_public)
    for device_id in device_ids:
        device = reply["device_keys"][user_id][device_id]
        device_key = device["keys"][f"ed25519:{device_id}"]
        assert signed_by(device, user_id, device_key, device_id)
        assert signed_by(device, user_id, ssk)


class SendLog:
    """Records the requests a client makes, around its real ``send``."""

    def __init__(self, client: AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        real_send = client.send

        async def send(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            self.paths.append(path.split("?")[0].removeprefix("/_matrix/client/v3"))
            return await real_send(method, path, *args, **kwargs)

        monkeypatch.setattr(client, "send", send)


def test_seeds_round_trip_and_stay_out_of_repr() -> None:
    seeds = CrossSigningSeeds.generate()
    data = seeds.to_bytes()
    assert len(data) == 97
    assert CrossSigningSeeds.from_bytes(data) == seeds
    assert seeds.master.hex() not in repr(seeds)
    assert seeds.master_public != seeds.self_signing_public
    with pytest.raises(ValueError, match="serialised"):
        CrossSigningSeeds.from_bytes(data[:-1])
    with pytest.raises(ValueError, match="distinct"):
        CrossSigningSeeds(seeds.master, seeds.master, seeds.user_signing)
    with pytest.raises(ValueError, match="32 bytes"):
        CrossSigningSeeds(b"short", seeds.self_signing, seeds.user_signing)


async def test_bootstrap_signs_devices_idempotently(
    synapse: SynapseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = secrets.token_hex(4)
    password = secrets.token_urlsafe(16)
    bot_user = await synapse.register_async(f"xsign-bot-{tag}", password)
    observer = await synapse.register_async(f"xsign-observer-{tag}", "observer-password")
    bot_id = bot_user.user_id
    config = encrypted_client_config(secrets.token_bytes(32), secrets.token_urlsafe(32))
    bot = logged_in_client(synapse.base_url, bot_user, config=config, store_path=tmp_path)
    second: AsyncClient | None = None
    try:
        # First start: no seeds yet, no keys published; no password needed.
        seeds = await ensure_cross_signing(bot, None, None)
        assert_cross_signed(
            await query_as(synapse, observer, bot_id), bot_id, [bot.device_id], seeds
        )

        # Second start with the stored seeds: only a query, nothing uploaded.
        restored = CrossSigningSeeds.from_bytes(seeds.to_bytes())
        log = SendLog(bot, monkeypatch)
        assert await ensure_cross_signing(bot, restored, None) == seeds
        assert log.paths == ["/keys/query"]
        reply = await query_as(synapse, observer, bot_id)
        assert only_key(reply["master_keys"][bot_id]) == seeds.master_public

        # A new login is a new device: signed with the stored seeds, keys untouched.
        login = await synapse.login_async(bot_id, password)
        assert login.device_id != bot.device_id
        second = logged_in_client(synapse.base_url, login)
        log = SendLog(second, monkeypatch)
        assert await ensure_cross_signing(second, restored, None) == seeds
        assert "/keys/device_signing/upload" not in log.paths
        assert "/keys/signatures/upload" in log.paths
        reply = await query_as(synapse, observer, bot_id)
        assert_cross_signed(reply, bot_id, [bot.device_id, login.device_id], seeds)

        # Lost seeds: replacing the published identity needs the password (UIA).
        with pytest.raises(CrossSigningError, match="password"):
            await ensure_cross_signing(bot, None, None)
        fresh = await ensure_cross_signing(bot, None, password)
        assert fresh.master_public != seeds.master_public
        reply = await query_as(synapse, observer, bot_id)
        assert_cross_signed(reply, bot_id, [bot.device_id], fresh)
    finally:
        await bot.close()
        bot.store.close()
        if second is not None:
            await second.close()
