"""Cross-signing for the bot's own Matrix device (matrix-nio has none).

The bot owns three Ed25519 keys: *master* (its identity), *self-signing* (signs its own
devices) and *user-signing* (would sign other users; unused but required by clients).
:func:`ensure_cross_signing` publishes them and signs the current device, so that users'
clients show the bot's device as "verified by its owner" instead of warning about an
unverified device.

Wire details that matter (Matrix spec, "Signing JSON"; checked against Synapse):

* canonical JSON: sorted keys, ``separators=(",", ":")``, ``ensure_ascii=False``, UTF-8,
  computed without ``signatures`` and ``unsigned``;
* key ids are ``ed25519:`` + the public key in *unpadded* standard base64;
* ``/keys/signatures/upload`` wants the device keys exactly as ``/keys/query`` returns
  them, plus the new signature, and reports rejections inside a 200 reply (``failures``);
* replacing existing cross-signing keys needs user-interactive auth (``m.login.password``);
  the first upload and re-sending identical keys do not.

The three 32-byte seeds are secrets: the caller stores them encrypted (and atomically)
after a successful call, and passes them back on every start.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from nio import AsyncClient, KeysUploadResponse

__all__ = [
    "CrossSigningError",
    "CrossSigningSeeds",
    "canonical_json",
    "ensure_cross_signing",
    "key_id",
    "sign_json",
    "unpadded_b64",
    "verify_json",
]

logger = logging.getLogger(__name__)

_SEED_BYTES: Final = 32
_API: Final = "/_matrix/client/v3"


class CrossSigningError(RuntimeError):
    """The homeserver refused the keys or a signature, or auth is missing."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status of the refusal, when there was an answer.
        self.status = status


# --------------------------------------------------------------------------- encoding


def http_status(response: Any) -> int | None:
    """The HTTP status behind a nio response (None when nio did not keep it)."""
    status = getattr(getattr(response, "transport_response", None), "status", None)
    return int(status) if status is not None else None


def unpadded_b64(data: bytes) -> str:
    """Standard base64 without ``=`` padding, as Matrix encodes keys and signatures."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def key_id(public_b64: str) -> str:
    """``ed25519:<unpadded base64 public key>``: the id of a cross-signing key."""
    return f"ed25519:{public_b64}"


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: canonical JSON without ``signatures``/``unsigned``."""
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return json.dumps(stripped, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _public_b64(key: Ed25519PrivateKey) -> str:
    return unpadded_b64(key.public_key().public_bytes_raw())


def sign_json(obj: Mapping[str, Any], user_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``obj`` with ``key``'s signature added under ``signatures[user_id]``.

    Existing signatures are kept; ``unsigned`` is kept but not signed.
    """
    signature = unpadded_b64(key.sign(canonical_json(obj)))
    signed = dict(obj)
    signatures = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    signatures.setdefault(user_id, {})[key_id(_public_b64(key))] = signature
    signed["signatures"] = signatures
    return signed


def verify_json(obj: Mapping[str, Any], user_id: str, public_b64: str) -> bool:
    """Whether ``obj`` carries a valid signature by ``public_b64`` under ``user_id``."""
    signature = obj.get("signatures", {}).get(user_id, {}).get(key_id(public_b64))
    if not isinstance(signature, str):
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(_b64decode(public_b64))
        public.verify(_b64decode(signature), canonical_json(obj))
    except (InvalidSignature, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class CrossSigningSeeds:
    """The three 32-byte Ed25519 seeds. Secret: store encrypted, never log."""

    master: bytes = field(repr=False)
    self_signing: bytes = field(repr=False)
    user_signing: bytes = field(repr=False)

    _VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        seeds = (self.master, self.self_signing, self.user_signing)
        if any(len(seed) != _SEED_BYTES for seed in seeds):
            raise ValueError(f"cross-signing seeds must be {_SEED_BYTES} bytes each")
        if len(set(seeds)) != len(seeds) or not all(any(seed) for seed in seeds):
            raise ValueError("cross-signing seeds must be distinct and non-zero")

    @classmethod
    def generate(cls) -> CrossSigningSeeds:
        """Fresh random seeds."""
        return cls(*(secrets.token_bytes(_SEED_BYTES) for _ in range(3)))

    def to_bytes(self) -> bytes:
        """97 bytes: a version byte, then master, self-signing and user-signing seeds."""
        return bytes([self._VERSION]) + self.master + self.self_signing + self.user_signing

    @classmethod
    def from_bytes(cls, data: bytes) -> CrossSigningSeeds:
        """Inverse of :meth:`to_bytes`."""
        if len(data) != 1 + 3 * _SEED_BYTES or data[0] != cls._VERSION:
            raise ValueError("not a serialised CrossSigningSeeds (wrong length or version)")
        n = _SEED_BYTES
        return cls(data[1 : 1 + n], data[1 + n : 1 + 2 * n], data[1 + 2 * n :])

    def _key(self, seed: bytes) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(seed)

    @property
    def master_key(self) -> Ed25519PrivateKey:
        return self._key(self.master)

    @property
    def self_signing_key(self) -> Ed25519PrivateKey:
        return self._key(self.self_signing)

    @property
    def user_signing_key(self) -> Ed25519PrivateKey:
        return self._key(self.user_signing)

    @property
    def master_public(self) -> str:
        """The master public key, unpadded base64 (the bot's cross-signing identity)."""
        return _public_b64(self.master_key)

    @property
    def self_signing_public(self) -> str:
        """The self-signing public key, unpadded base64."""
        return _public_b64(self.self_signing_key)

    def signing_keys(self, user_id: str) -> dict[str, dict[str, Any]]:
        """The body of ``/keys/device_signing/upload`` (without ``auth``)."""

        def key_object(usage: str, key: Ed25519PrivateKey) -> dict[str, Any]:
            public = _public_b64(key)
            return {"user_id": user_id, "usage": [usage], "keys": {key_id(public): public}}

        master = self.master_key
        return {
            "master_key": key_object("master", master),
            "self_signing_key": sign_json(
                key_object("self_signing", self.self_signing_key), user_id, master
            ),
            "user_signing_key": sign_json(
                key_object("user_signing", self.user_signing_key), user_id, master
            ),
        }


# --------------------------------------------------------------------------- HTTP


async def _call(
    client: AsyncClient, method: str, path: str, body: Mapping[str, Any]
) -> tuple[int, dict[str, Any]]:
    """One authenticated JSON request through nio's own session (its ssl/proxy config)."""
    headers = {
        "Authorization": f"Bearer {client.access_token}",
        "Content-Type": "application/json",
    }
    response = await client.send(method, f"{_API}{path}", json.dumps(body), headers)
    try:
        status = int(response.status)
        payload = await response.json(content_type=None)
    finally:
        response.release()
    return status, payload if isinstance(payload, dict) else {}


async def _query_own_keys(client: AsyncClient) -> dict[str, Any]:
    status, reply = await _call(
        client, "POST", "/keys/query", {"device_keys": {client.user_id: []}}
    )
    if status != 200:
        raise CrossSigningError(
            f"/keys/query failed: {status} {reply.get('errcode')}", status=status
        )
    return reply


def _published(reply: Mapping[str, Any], field_name: str, user_id: str) -> dict[str, Any]:
    keys = reply.get(field_name, {}).get(user_id, {})
    return keys if isinstance(keys, dict) else {}


async def _upload_signing_keys(
    client: AsyncClient, body: dict[str, Any], password: str | None
) -> None:
    status, reply = await _call(client, "POST", "/keys/device_signing/upload", body)
    if status == 401 and "session" in reply:
        # Replacing existing keys: Synapse wants user-interactive auth.
        if password is None:
            raise CrossSigningError(
                "other cross-signing keys are published; the account password is needed "
                "to replace them"
            )
        flows = reply.get("flows", [])
        if not any(flow.get("stages") == ["m.login.password"] for flow in flows):
            raise CrossSigningError(f"no m.login.password flow offered: {flows}")
        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": client.user_id},
            "password": password,
            "session": reply["session"],
        }
        status, reply = await _call(
            client, "POST", "/keys/device_signing/upload", {**body, "auth": auth}
        )
    if status != 200:
        raise CrossSigningError(
            f"/keys/device_signing/upload failed: {status} {reply.get('errcode')} "
            f"{reply.get('error')}",
            status=status,
        )


async def _upload_device_signature(
    client: AsyncClient, device: Mapping[str, Any], seeds: CrossSigningSeeds
) -> None:
    user_id: str = client.user_id
    signature = unpadded_b64(seeds.self_signing_key.sign(canonical_json(device)))
    # The object must match the stored device keys; only the new signature is sent.
    signed = {k: v for k, v in device.items() if k not in ("signatures", "unsigned")}
    signed["signatures"] = {user_id: {key_id(seeds.self_signing_public): signature}}
    body = {user_id: {client.device_id: signed}}
    status, reply = await _call(client, "POST", "/keys/signatures/upload", body)
    failures = reply.get("failures") or {}
    if status != 200 or failures:
        raise CrossSigningError(
            f"/keys/signatures/upload failed: {status} {failures or reply}", status=status
        )


# --------------------------------------------------------------------------- entry point


async def ensure_cross_signing(
    client: AsyncClient,
    seeds: CrossSigningSeeds | None,
    password: str | None,
) -> CrossSigningSeeds:
    """Publish the bot's cross-signing keys if needed and sign its current device.

    Idempotent: when ``/keys/query`` already shows the keys derived from ``seeds`` and a
    valid self-signing signature on this device, nothing is uploaded.

    Args:
        client: a logged-in ``AsyncClient`` with its crypto store loaded (device keys are
            uploaded first if nio has not done so yet).
        seeds: the stored seeds, or ``None`` to create a new identity.
        password: the account password, only needed when *other* cross-signing keys are
            already published (replacing them requires user-interactive auth).

    Returns:
        The seeds in use; persist them (encrypted) when they were newly generated.

    Raises:
        CrossSigningError: the server refused the keys or the signature, or other keys
            are published and no password was given.
        aiohttp.ClientError, TimeoutError: the homeserver could not be reached.
    """
    user_id: str = client.user_id
    device_id: str = client.device_id
    if not client.access_token or not user_id or not device_id:
        raise CrossSigningError("the client must be logged in")
    if client.olm is not None and not client.olm.account.shared:
        uploaded = await client.keys_upload()
        if not isinstance(uploaded, KeysUploadResponse):
            raise CrossSigningError(
                f"device keys upload failed: {uploaded}", status=http_status(uploaded)
            )

    seeds = seeds or CrossSigningSeeds.generate()
    body = seeds.signing_keys(user_id)
    reply = await _query_own_keys(client)

    published_same = all(
        _published(reply, f"{name}s", user_id).get("keys") == body[name]["keys"]
        for name in ("master_key", "self_signing_key", "user_signing_key")
    )
    if published_same:
        logger.debug("cross-signing keys already published")
    else:
        await _upload_signing_keys(client, body, password)
        logger.info("cross-signing keys published")

    device = reply.get("device_keys", {}).get(user_id, {}).get(device_id)
    if not isinstance(device, dict):
        raise CrossSigningError("this device has no published device keys")
    if verify_json(device, user_id, seeds.self_signing_public):
        return seeds
    await _upload_device_signature(client, device, seeds)
    logger.info("device cross-signed")
    return seeds
