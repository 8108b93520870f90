"""An encrypted-at-rest crypto store for matrix-nio.

matrix-nio keeps its Olm account, sessions, device lists (the Matrix ids and device
names of everyone the bot shares an encrypted room with), encrypted room ids and the
sync token in SQLite. Its ``pickle_key`` protects only the Olm/Megolm pickles; the rest
sits in plain tables. This module swaps the database for SQLCipher (``sqlcipher3``
through peewee's ``SqlCipherDatabase``), keyed with a raw 32-byte key so that opening
costs no PBKDF2 round.

Usage::

    config = encrypted_client_config(store_key, pickle_key)
    client = AsyncClient(homeserver, user_id, device_id=device_id,
                         store_path=store_dir, config=config)
    client.restore_login(user_id, device_id, access_token)  # opens the store

Only one file is written: ``<store_path>/ausweg-crypto.db`` (plus SQLite's transient
``-journal``, encrypted as well), mode 0600, in a 0700 directory. Device trust lives in
the database (``SqliteStore``), so none of ``DefaultStore``'s plaintext
``*.trusted_devices`` / ``*.blacklisted_devices`` / ``*.ignored_devices`` files exist.

Keep the ``peewee`` logger above DEBUG: at DEBUG it logs every query with its
parameters, which include other users' Matrix ids.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from nio import AsyncClientConfig
from nio.store import SqliteStore
from nio.store.models import (
    DeviceKeys,
    DeviceTrustState,
    EncryptedRooms,
    ForwardedChains,
    Keys,
    MegolmInboundSessions,
    OlmSessions,
    OutgoingKeyRequests,
)
from playhouse.sqlcipher_ext import SqlCipherDatabase  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "DEFAULT_STORE_NAME",
    "KEY_BYTES",
    "CryptoStoreError",
    "EncryptedSqliteStore",
    "encrypted_client_config",
    "make_encrypted_store",
]

logger = logging.getLogger(__name__)

#: File name of the store; deliberately free of the bot's own Matrix id (nio's default
#: is ``<user_id>_<device_id>.db``).
DEFAULT_STORE_NAME = "ausweg-crypto.db"
#: Length of the raw SQLCipher key.
KEY_BYTES = 32
#: matrix-nio's built-in pickle key; refused.
NIO_DEFAULT_PICKLE_KEY = "DEFAULT_KEY"
_MIN_PICKLE_KEY_CHARS = 16


#: The tables that can hold other users' ids, devices, keys or rooms.
_FORGETTABLE = [
    DeviceKeys,
    DeviceTrustState,
    EncryptedRooms,
    ForwardedChains,
    Keys,
    MegolmInboundSessions,
    OlmSessions,
    OutgoingKeyRequests,
]


class CryptoStoreError(RuntimeError):
    """The crypto store cannot be opened: wrong key, not SQLCipher, or unsafe settings."""


def _raw_key_literal(key: bytes) -> str:
    """SQLCipher's raw-key syntax ``x'<64 hex>'``: used as is, no PBKDF2."""
    if not isinstance(key, bytes | bytearray):
        raise TypeError("the crypto store key must be bytes")
    if len(key) != KEY_BYTES:
        raise ValueError(f"the crypto store key must be exactly {KEY_BYTES} bytes")
    if not any(key):
        # An all-zero key is a placeholder, not a secret.
        raise ValueError("the crypto store key must not be all zero bytes")
    return f"x'{bytes(key).hex()}'"


class _CheckedSqlCipherDatabase(SqlCipherDatabase):  # type: ignore[misc]
    """SqlCipherDatabase that proves, on every new connection, that it is encrypted."""

    def _add_conn_hooks(self, conn: Any) -> None:
        # Runs right after ``PRAGMA key`` and before any pragma or query of peewee's.
        row = conn.execute("PRAGMA cipher_version").fetchone()
        if not row or not row[0]:
            raise CryptoStoreError("the SQLite library in use is not SQLCipher")
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except Exception as exc:  # the driver's own DatabaseError class
            raise CryptoStoreError(
                f"cannot open the Matrix crypto store: wrong key, or not an encrypted store ({exc})"
            ) from exc
        super()._add_conn_hooks(conn)


class EncryptedSqliteStore(SqliteStore):  # type: ignore[misc]
    """``SqliteStore`` on SQLCipher. Use :func:`make_encrypted_store` to get a keyed class.

    matrix-nio instantiates the store class itself with
    ``(user_id, device_id, store_path, pickle_key, database_name)``, so the database key
    cannot be a constructor argument; the factory closes over it instead.
    """

    # Fields of nio's dataclass, declared for the type checker (nio is untyped).
    user_id: str
    device_id: str
    store_path: str
    pickle_key: str
    database_name: str
    database_path: str
    database: Any

    def _passphrase(self) -> str:
        raise CryptoStoreError("use make_encrypted_store(key) to get a keyed store class")

    def __post_init__(self) -> None:
        pickle_key = self.pickle_key
        if not pickle_key or pickle_key == NIO_DEFAULT_PICKLE_KEY:
            raise CryptoStoreError("an explicit pickle key is required (not nio's default)")
        if len(pickle_key) < _MIN_PICKLE_KEY_CHARS:
            raise CryptoStoreError(
                f"the pickle key must have at least {_MIN_PICKLE_KEY_CHARS} characters"
            )
        if not self.store_path:
            raise CryptoStoreError("a store_path is required")
        name = self.database_name or DEFAULT_STORE_NAME
        self.database_name = name
        if self.user_id and self.user_id in name:
            raise CryptoStoreError("the store file name must not contain the Matrix id")

        store_path = self.store_path
        os.makedirs(store_path, mode=0o700, exist_ok=True)
        path = os.path.join(store_path, name)
        # Create the file 0600 before SQLite does: SQLite gives its journal and WAL
        # files the database file's mode, so they stay private too.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.close(fd)
        os.chmod(path, 0o600)

        try:
            super().__post_init__()
        except BaseException:
            database = getattr(self, "database", None)
            if database is not None:
                database.close()
            raise
        logger.debug("encrypted crypto store opened")

    def _create_database(self) -> Any:
        return _CheckedSqlCipherDatabase(
            self.database_path,
            passphrase=self._passphrase(),
            pragmas={"foreign_keys": 1, "secure_delete": 1},
        )

    def close(self) -> None:
        """Close the database connection (nio never does)."""
        self.database.close()

    def forget_user(self, user_id: str, room_ids: Iterable[str] = ()) -> int:
        """Delete every row about another user, and about rooms the bot left.

        nio keeps them for good: the user's devices with their keys and trust state,
        the Olm sessions with those devices, the group sessions they sent (and their
        forwarding chains); for ``room_ids`` also the encrypted-room rows, group
        sessions and key requests. Used after a person's erasure (their chat was left
        and forgotten). Deleted pages are zeroed (``secure_delete``). Returns the rows
        deleted.
        """
        if user_id == self.user_id:
            raise ValueError("the bot's own account is not forgotten")
        rooms = list(room_ids)
        db = self.database
        deleted = 0
        with db.bind_ctx(_FORGETTABLE), db.atomic():
            devices = [
                d.id for d in DeviceKeys.select(DeviceKeys.id).where(DeviceKeys.user_id == user_id)
            ]
            curve = [k.key for k in Keys.select(Keys.key).where(Keys.device.in_(devices))]
            group = MegolmInboundSessions
            sessions = [
                g.session_id
                for g in group.select(group.session_id).where(
                    group.sender_key.in_(curve) | group.room_id.in_(rooms)
                )
            ]
            for query in (
                Keys.delete().where(Keys.device.in_(devices)),
                DeviceTrustState.delete().where(DeviceTrustState.device.in_(devices)),
                DeviceKeys.delete().where(DeviceKeys.id.in_(devices)),
                OlmSessions.delete().where(OlmSessions.sender_key.in_(curve)),
                ForwardedChains.delete().where(ForwardedChains.session.in_(sessions)),
                group.delete().where(group.session_id.in_(sessions)),
                EncryptedRooms.delete().where(EncryptedRooms.room_id.in_(rooms)),
                OutgoingKeyRequests.delete().where(OutgoingKeyRequests.room_id.in_(rooms)),
            ):
                deleted += int(query.execute() or 0)
        return deleted


def make_encrypted_store(key: bytes) -> type[EncryptedSqliteStore]:
    """Return a store class keyed with ``key``, for ``AsyncClientConfig(store=...)``.

    Args:
        key: 32 random bytes (a secret kept outside the store, e.g. derived from the
            project's master key). An empty, short or all-zero key is refused.

    Raises:
        ValueError: the key is not 32 bytes or is all zero.
        TypeError: the key is not bytes.
    """
    passphrase = _raw_key_literal(key)

    class KeyedEncryptedSqliteStore(EncryptedSqliteStore):
        def _passphrase(self) -> str:
            return passphrase

    return KeyedEncryptedSqliteStore


def encrypted_client_config(
    key: bytes,
    pickle_key: str,
    *,
    store_name: str = DEFAULT_STORE_NAME,
    **options: Any,
) -> AsyncClientConfig:
    """An ``AsyncClientConfig`` with the encrypted store, sync tokens kept, E2EE on.

    Args:
        key: the 32-byte SQLCipher key (see :func:`make_encrypted_store`).
        pickle_key: secret for nio's Olm/Megolm pickles; never nio's default.
        store_name: the database file name; must not contain the Matrix id.
        **options: further ``AsyncClientConfig`` fields (timeouts, retries...).
    """
    if not pickle_key or pickle_key == NIO_DEFAULT_PICKLE_KEY:
        raise CryptoStoreError("an explicit pickle key is required (not nio's default)")
    return AsyncClientConfig(
        store=make_encrypted_store(key),
        store_name=store_name,
        pickle_key=pickle_key,
        store_sync_tokens=True,
        encryption_enabled=True,
        **options,
    )
