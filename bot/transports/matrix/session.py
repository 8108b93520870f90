"""The Matrix transport's secrets at rest: login session, cross-signing seeds, store key.

Everything is keyed from the project's master keys (``settings.crypto.master_keys``)
with HKDF, so the operator manages no extra secret:

* the SQLCipher key of nio's crypto store: ``derive_key(master[v], "matrix-store")``;
* the session file (device id, access token): AES-256-GCM under
  ``derive_key(master[v], "matrix-session")``, bound to its purpose and key version by
  the associated data, written atomically with mode 0600;
* the cross-signing seeds inside it: sealed once more under their own key,
  ``derive_key(master[v], "matrix-cross-signing")`` (format 2; a format 1 file, with
  the seeds only under the session key, is read and rewritten as format 2 at once).

The labels live in :data:`storage.vault.LABELS`, one per purpose.

Key rotation: the session file records which master-key version keys the store. At
start an older store is re-keyed (``PRAGMA rekey``) to the current version and the
session file is rewritten, so after one restart nothing needs the old key.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlcipher3
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.transports.matrix.crosssign import CrossSigningSeeds
from storage.vault import LABELS

__all__ = [
    "SESSION_FILE",
    "SessionError",
    "StoredSession",
    "derive_key",
    "load_session",
    "open_store_version",
    "rekey_store",
    "save_session",
    "store_key",
]

#: File name of the encrypted session, next to the crypto store.
SESSION_FILE = "ausweg-session.json"
_STORE_INFO = LABELS["matrix-store"]
_SESSION_INFO = LABELS["matrix-session"]
_SEEDS_INFO = LABELS["matrix-cross-signing"]
#: 2: seeds sealed under their own key; 1 (read, then rewritten): seeds in the session.
_FORMAT = 2
_LEGACY_FORMAT = 1


class SessionError(RuntimeError):
    """The session file or the store cannot be opened with any configured key."""


def derive_key(master: bytes, info: bytes) -> bytes:
    """32 bytes for one purpose (``info``) from a master key (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def store_key(master: bytes) -> bytes:
    """The SQLCipher key of the crypto store under one master key."""
    return derive_key(master, _STORE_INFO)


@dataclass(frozen=True)
class StoredSession:
    """What survives a restart. Secret: never log, never repr the token or seeds."""

    homeserver: str
    user_id: str
    device_id: str
    access_token: str = ""
    seeds: CrossSigningSeeds | None = None
    store_version: int | None = None
    #: Staff rooms the bot created: programme id -> room id.
    team_rooms: Mapping[str, str] = field(default_factory=dict)
    #: The avatar uploaded last: "<sha256 of the file> <mxc URI>" (uploaded once).
    avatar: str = ""

    def __repr__(self) -> str:
        return "StoredSession(<secret>)"

    def with_(self, **changes: Any) -> StoredSession:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def _to_json(self, seeds: str | None) -> bytes:
        return json.dumps(
            {
                "homeserver": self.homeserver,
                "user_id": self.user_id,
                "device_id": self.device_id,
                "access_token": self.access_token,
                "seeds": seeds,
                "store_version": self.store_version,
                "team_rooms": dict(self.team_rooms),
                "avatar": self.avatar,
            }
        ).encode()

    @classmethod
    def _from_json(cls, raw: bytes, open_seeds: Callable[[bytes], bytes]) -> StoredSession:
        data = json.loads(raw)
        seeds = data.get("seeds")
        return cls(
            homeserver=str(data["homeserver"]),
            user_id=str(data["user_id"]),
            device_id=str(data["device_id"]),
            access_token=str(data.get("access_token") or ""),
            seeds=CrossSigningSeeds.from_bytes(open_seeds(base64.b64decode(seeds)))
            if seeds
            else None,
            store_version=data.get("store_version"),
            team_rooms={str(k): str(v) for k, v in (data.get("team_rooms") or {}).items()},
            avatar=str(data.get("avatar") or ""),
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _aad(version: int, info: bytes = _SESSION_INFO) -> bytes:
    return info + b"/" + str(version).encode()


def _seal_seeds(master: bytes, version: int, seeds: CrossSigningSeeds) -> str:
    nonce = secrets.token_bytes(12)
    key = AESGCM(derive_key(master, _SEEDS_INFO))
    return _b64(nonce + key.encrypt(nonce, seeds.to_bytes(), _aad(version, _SEEDS_INFO)))


def _seeds_opener(master: bytes, version: int, fmt: int) -> Callable[[bytes], bytes]:
    if fmt == _LEGACY_FORMAT:
        return lambda raw: raw  # format 1: the seeds were only under the session key
    key = AESGCM(derive_key(master, _SEEDS_INFO))
    return lambda raw: key.decrypt(raw[:12], raw[12:], _aad(version, _SEEDS_INFO))


def save_session(path: Path, session: StoredSession, keys: Mapping[int, bytes]) -> None:
    """Encrypt ``session`` under the current (highest) master key; atomic, mode 0600."""
    version = max(keys)
    key = derive_key(keys[version], _SESSION_INFO)
    nonce = secrets.token_bytes(12)
    seeds = _seal_seeds(keys[version], version, session.seeds) if session.seeds else None
    ciphertext = AESGCM(key).encrypt(nonce, session._to_json(seeds), _aad(version))
    envelope = json.dumps(
        {"format": _FORMAT, "key_version": version, "nonce": _b64(nonce), "ct": _b64(ciphertext)}
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(envelope)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_session(path: Path, keys: Mapping[int, bytes]) -> tuple[StoredSession, int] | None:
    """The stored session and the master-key version it was sealed with (None: no file).

    Raises:
        SessionError: the file is damaged or its key version is no longer configured.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        envelope = json.loads(raw)
        version = int(envelope["key_version"])
        fmt = envelope.get("format")
        if fmt not in (_FORMAT, _LEGACY_FORMAT):
            raise ValueError("unknown format")
        nonce, ciphertext = base64.b64decode(envelope["nonce"]), base64.b64decode(envelope["ct"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SessionError(f"the Matrix session file is damaged ({type(exc).__name__})") from None
    if version not in keys:
        raise SessionError(
            f"the Matrix session file needs master key version {version}, which is not configured"
        )
    key = derive_key(keys[version], _SESSION_INFO)
    try:
        plain = AESGCM(key).decrypt(nonce, ciphertext, _aad(version))
        session = StoredSession._from_json(plain, _seeds_opener(keys[version], version, fmt))
    except Exception as exc:
        raise SessionError(
            f"cannot decrypt the Matrix session file ({type(exc).__name__})"
        ) from None
    if fmt == _LEGACY_FORMAT:  # migrate at once: the seeds get their own key
        save_session(path, session, {version: keys[version]})
    return session, version


def _opens(db: Path, key: bytes) -> bool:
    conn = sqlcipher3.connect(str(db))
    try:
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError:
        return False
    finally:
        conn.close()
    return True


def open_store_version(db: Path, keys: Mapping[int, bytes], hint: int | None = None) -> int | None:
    """Which master-key version opens the store at ``db`` (None: no store yet).

    Tries ``hint`` first, then every configured version from the newest down.

    Raises:
        SessionError: a store exists but no configured key opens it.
    """
    if not db.exists() or db.stat().st_size == 0:
        return None
    order = [hint] if hint in keys else []
    order += [v for v in sorted(keys, reverse=True) if v != hint]
    for version in order:
        if version is not None and _opens(db, store_key(keys[version])):
            return version
    raise SessionError("no configured master key opens the Matrix crypto store")


def rekey_store(db: Path, old: bytes, new: bytes) -> None:
    """Re-encrypt the store from master key ``old`` to ``new`` (both master keys)."""
    conn = sqlcipher3.connect(str(db))
    try:
        conn.execute(f"PRAGMA key = \"x'{store_key(old).hex()}'\"")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute(f"PRAGMA rekey = \"x'{store_key(new).hex()}'\"")
    finally:
        conn.close()
