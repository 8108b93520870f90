"""Keyed pseudonyms and encryption bound to its place.

* Pseudonyms: HMAC-SHA256 over platform and account id with a versioned key that
  never enters the database (privacy check 2).
* Data keys: each contact / case gets a random 256-bit data key, stored only
  wrapped (AES-256-GCM) by the current master key. Deleting the wrapped key
  shreds everything encrypted under it, in every backup (check 7).
* Fields: AES-256-GCM with associated data naming table, column and row id, so a
  ciphertext moved to another row, case or programme fails to decrypt (check 3).
* Key separation: the master key itself encrypts nothing. Every use gets its own key,
  ``HKDF-SHA256(master, info=label)`` with a label from :data:`LABELS` (wrapping data
  keys, the outbox, the Matrix crypto store, the Matrix session file, the cross-signing
  seeds), so one purpose's key says nothing about another's. Wrapped data keys carry
  a format byte: 1 = wrapped directly by the master key (before the separation; still
  opened, and re-wrapped by :meth:`storage.keystore.KeyStore.create_schema` at start),
  2 = wrapped by the derived wrapping key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_FORMAT = 1
#: Wrapped data keys: 1 = the master key itself wrapped them (legacy, read only).
WRAP_LEGACY = 1
#: Wrapped data keys: 2 = ``derive_key(master, "wrap")`` wrapped them (written now).
WRAP_DERIVED = 2
_HEADER = struct.Struct(">BH")  # format byte, key version
_NONCE = 12
_PSEUDONYM_CONTEXT = b"ausweg/pseudonym/v1\x00"

#: HKDF labels, one per purpose of master key material. Distinct by construction (a
#: test checks it); the older ones keep their bytes so existing stores still open.
LABELS: dict[str, bytes] = {
    "wrap": b"ausweg/wrap-data-key/v2",
    "outbox": b"ausweg/outbox",
    "matrix-store": b"ausweg/matrix-store",
    "matrix-session": b"ausweg/matrix-session",
    "matrix-cross-signing": b"ausweg/matrix-cross-signing/v2",
}
#: Purposes :meth:`Vault.seal_transient` may use (not the Matrix ones: their keys must
#: never be computable through a generic sealing call).
TRANSIENT_PURPOSES = frozenset({"outbox"})


def derive_key(master: bytes, purpose: str) -> bytes:
    """The 32-byte key of one purpose (a :data:`LABELS` name) under a master key."""
    label = LABELS[purpose]  # KeyError: an unregistered purpose is a bug
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(master)


class DecryptionError(Exception):
    """A ciphertext could not be opened: wrong key, wrong place or tampered."""


def aad(table: str, column: str, row_id: str) -> bytes:
    """Associated data that binds a ciphertext to one field of one row."""
    return f"{table}\x1f{column}\x1f{row_id}".encode()


class Vault:
    """Holds the keys in memory and performs every cryptographic operation.

    Args:
        master_keys: version -> 32-byte key wrapping data keys; highest is current.
        pseudonym_keys: version -> 32-byte HMAC key; highest is current.
    """

    def __init__(self, master_keys: dict[int, bytes], pseudonym_keys: dict[int, bytes]) -> None:
        if not master_keys or not pseudonym_keys:
            raise ValueError("vault needs at least one master key and one pseudonym key")
        # Legacy (format 1) wrapped keys only: the master key itself never encrypts anew.
        self._legacy = {v: AESGCM(k) for v, k in master_keys.items()}
        self._master = {v: AESGCM(derive_key(k, "wrap")) for v, k in master_keys.items()}
        self._master_raw = dict(master_keys)
        self._derived_cache: dict[tuple[str, int], AESGCM] = {}
        self._pseudo = dict(pseudonym_keys)
        self.master_version = max(master_keys)
        self.pseudonym_version = max(pseudonym_keys)

    # -- pseudonyms ---------------------------------------------------------
    def pseudonym(self, platform: str, account_id: str, version: int | None = None) -> str:
        """The keyed pseudonym of an account (hex), under ``version`` or the current key."""
        key = self._pseudo[self.pseudonym_version if version is None else version]
        msg = _PSEUDONYM_CONTEXT + platform.encode() + b"\x00" + account_id.encode()
        return hmac.new(key, msg, hashlib.sha256).hexdigest()

    def pseudonym_versions(self) -> list[int]:
        """Known pseudonym key versions, current first."""
        return sorted(self._pseudo, reverse=True)

    # -- data keys ----------------------------------------------------------
    def new_data_key(self, key_id: str) -> tuple[bytes, bytes]:
        """Create a data key; returns (plain key, wrapped key for storage)."""
        dek = AESGCM.generate_key(bit_length=256)
        return dek, self.wrap(key_id, dek)

    def wrap(self, key_id: str, dek: bytes) -> bytes:
        """Wrap a data key with the current master key, bound to its id."""
        nonce = os.urandom(_NONCE)
        header = _HEADER.pack(WRAP_DERIVED, self.master_version)
        ct = self._master[self.master_version].encrypt(nonce, dek, header + aad("key", "", key_id))
        return header + nonce + ct

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """Unwrap a data key; raises DecryptionError if it was moved or tampered with."""
        fmt, version = _parse_header(wrapped)
        ciphers = {WRAP_DERIVED: self._master, WRAP_LEGACY: self._legacy}.get(fmt, {})
        master = ciphers.get(version)
        if master is None:
            raise DecryptionError("unknown key format or retired master key")
        header = wrapped[: _HEADER.size]
        nonce = wrapped[_HEADER.size : _HEADER.size + _NONCE]
        try:
            return master.decrypt(
                nonce, wrapped[_HEADER.size + _NONCE :], header + aad("key", "", key_id)
            )
        except InvalidTag as exc:
            raise DecryptionError("data key does not open") from exc

    @staticmethod
    def wrapped_version(wrapped: bytes) -> int:
        """The master key version a wrapped key needs."""
        return _parse_header(wrapped)[1]

    @staticmethod
    def wrapped_format(wrapped: bytes) -> int:
        """How a key was wrapped: :data:`WRAP_DERIVED` or :data:`WRAP_LEGACY`."""
        return _parse_header(wrapped)[0]

    # -- short-lived records (outbox) ----------------------------------------
    def _derived(self, purpose: str, version: int) -> AESGCM:
        key = (purpose, version)
        cipher = self._derived_cache.get(key)
        if cipher is None:
            if purpose not in TRANSIENT_PURPOSES:
                raise ValueError(f"'{purpose}' is not a purpose for transient records")
            master = self._master_raw[version]
            cipher = self._derived_cache[key] = AESGCM(derive_key(master, purpose))
        return cipher

    def seal_transient(self, purpose: str, plaintext: bytes, associated: bytes) -> bytes:
        """Encrypt a short-lived record under a key derived from the current master key."""
        nonce = os.urandom(_NONCE)
        header = _HEADER.pack(_FORMAT, self.master_version)
        cipher = self._derived(purpose, self.master_version)
        return header + nonce + cipher.encrypt(nonce, plaintext, header + associated)

    def open_transient(self, purpose: str, blob: bytes, associated: bytes) -> bytes:
        """Decrypt a record sealed with :meth:`seal_transient`."""
        fmt, version = _parse_header(blob)
        if fmt != _FORMAT or version not in self._master_raw:
            raise DecryptionError("unknown format or retired master key")
        header = blob[: _HEADER.size]
        nonce = blob[_HEADER.size : _HEADER.size + _NONCE]
        try:
            return self._derived(purpose, version).decrypt(
                nonce, blob[_HEADER.size + _NONCE :], header + associated
            )
        except InvalidTag as exc:
            raise DecryptionError("record does not open here") from exc

    # -- fields -------------------------------------------------------------
    @staticmethod
    def seal(dek: bytes, plaintext: bytes, associated: bytes) -> bytes:
        """Encrypt a field with its data key, bound to ``associated`` (see :func:`aad`)."""
        nonce = os.urandom(_NONCE)
        return bytes([_FORMAT]) + nonce + AESGCM(dek).encrypt(nonce, plaintext, associated)

    @staticmethod
    def open(dek: bytes, blob: bytes, associated: bytes) -> bytes:
        """Decrypt a field; raises DecryptionError when key or place do not match."""
        if len(blob) < 1 + _NONCE + 16 or blob[0] != _FORMAT:
            raise DecryptionError("not a sealed field")
        try:
            return AESGCM(dek).decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], associated)
        except InvalidTag as exc:
            raise DecryptionError("field does not open here") from exc


def _parse_header(wrapped: bytes) -> tuple[int, int]:
    if len(wrapped) < _HEADER.size + _NONCE + 16:
        raise DecryptionError("wrapped key too short")
    fmt, version = _HEADER.unpack_from(wrapped)
    return int(fmt), int(version)
