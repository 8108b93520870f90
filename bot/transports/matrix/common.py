"""What every part of the Matrix transport shares: the client slot, the locks, counters,
the error type and the small rules for transient failures and transaction ids.

Locks (nio's key state is not safe for concurrent updates across an ``await``; a
finished ciphertext is):

* ``room_lock(room)``: one room's key sharing, encryption and membership changes, so
  rooms are served in parallel and a room whose first keys are still being shared
  (claims, to-device messages) holds up no other room;
* ``keys_lock``: the account-wide key requests (upload, device-list query, claims of
  the housekeeping), which touch every room's state.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import aiohttp
from nio import AsyncClient

from bot.transports.base import SendLater
from config.messages import OutboundMessage
from config.settings import Settings

__all__ = ["MatrixError", "MatrixState", "transient", "txn", "unavailable"]

#: How many ids the bounded in-memory maps keep.
MAX_REMEMBERED: Final = 2000
#: Per-room locks kept (idle ones are dropped first; a held one is never dropped).
_ROOM_LOCKS: Final = 4096


class MatrixError(RuntimeError):
    """The homeserver refused a login, a room or a message (after nio's retries)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status of the refusal, when there was an answer.
        self.status = status


def transient(exc: BaseException) -> bool:
    """Whether a failure means "the homeserver is unreachable now" (not a refusal)."""
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError | SendLater):
        return True
    return unavailable(getattr(exc, "status", None))


def unavailable(status: object) -> bool:
    """An HTTP status that means "try again later" (5xx, 429)."""
    return isinstance(status, int) and (status >= 500 or status == 429)


def txn(message: OutboundMessage, part: str = "") -> str | None:
    """A transaction id stable across retries of one reply (None: let nio pick one).

    The homeserver answers a repeated transaction id with the event it already has,
    so replies re-sent from the outbox after a crash are not delivered twice.
    """
    if message.send_key is None:
        return None
    return f"ausweg.{message.send_key}{'.' + part if part else ''}"


def _idle(lock: asyncio.Lock) -> bool:
    """Neither held nor awaited (a woken waiter has not taken it yet)."""
    return not lock.locked() and not getattr(lock, "_waiters", None)


class MatrixState:
    """The state the transport's parts share (one per transport)."""

    def __init__(self, settings: Settings, homeserver: str, user_id: str, store_path: Path):
        self.settings = settings
        self.homeserver = homeserver
        self.user_id = user_id
        self.store_path = store_path
        self.client: AsyncClient | None = None
        #: Reached the homeserver since the start (sends raise SendLater until then).
        self.online = False
        #: The last saved sync token (every event before it was handled).
        self.since: str | None = None
        self.keys_lock = asyncio.Lock()
        #: Rooms the bot left and forgot: a sync already in flight must not bring them
        #: back into the client's memory (see ``receiving.Receiver._sync``).
        self.forgotten: set[str] = set()
        self._room_locks: dict[str, asyncio.Lock] = {}
        #: Counters for tests and health checks (no identifiers).
        self.stats: dict[str, int] = {
            "events": 0,
            "handled": 0,
            "failed": 0,
            "undecryptable": 0,
            "syncs": 0,
            "sync_errors": 0,
            "outsiders_removed": 0,
            "held": 0,
            "withheld": 0,
        }

    def require_client(self) -> AsyncClient:
        if self.client is None:
            raise RuntimeError("matrix transport not started")
        return self.client

    def room_lock(self, room_id: str) -> asyncio.Lock:
        """The lock of one room's keys and membership (created on first use)."""
        lock = self._room_locks.get(room_id)
        if lock is None:
            if len(self._room_locks) >= _ROOM_LOCKS:  # forget idle ones (never a held one)
                for idle in [r for r, held in self._room_locks.items() if _idle(held)]:
                    del self._room_locks[idle]
            lock = self._room_locks[room_id] = asyncio.Lock()
        return lock
