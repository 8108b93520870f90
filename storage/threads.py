"""Where each case's staff conversation lives per platform (topics, case rooms).

Kept in the database (``staff_threads``) and mirrored in memory: staff-side
messages of a case are re-addressed to its thread, and staff messages written in
a thread are mapped back to the case, without a query on the hot path.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.messages import Address, Platform
from storage.db import Database
from storage.models import Case, StaffThread


class ThreadMap:
    """case code <-> staff thread address, per platform."""

    def __init__(self) -> None:
        self._by_case: dict[tuple[str, str], Address] = {}
        self._by_place: dict[tuple[str, str, str | None], str] = {}

    def add(self, code: str, address: Address) -> None:
        """Remember a thread of a case."""
        self._by_case[(code, address.platform.value)] = address
        self._by_place[(address.platform.value, address.chat_id, address.thread_id)] = code

    def forget(self, code: str) -> None:
        """Drop all threads of a case."""
        for key in [k for k in self._by_case if k[0] == code]:
            addr = self._by_case.pop(key)
            self._by_place.pop((addr.platform.value, addr.chat_id, addr.thread_id), None)

    def thread_of(self, code: str, platform: Platform) -> Address | None:
        """The thread of a case on a platform, if any."""
        return self._by_case.get((code, platform.value))

    def threads_of(self, code: str) -> list[Address]:
        """Every thread of a case (all platforms)."""
        return [a for (c, _), a in self._by_case.items() if c == code]

    def case_at(self, address: Address) -> str | None:
        """The case whose thread an address is, if any."""
        key = (address.platform.value, address.chat_id, address.thread_id)
        return self._by_place.get(key)

    async def load(self, db: Database) -> None:
        """Fill the map from the database (at start-up)."""
        async with db.transaction() as s:
            rows = await s.execute(
                select(
                    Case.code, StaffThread.platform, StaffThread.chat_id, StaffThread.thread_id
                ).join(Case, Case.id == StaffThread.case_id)
            )
            for code, platform, chat, thread in rows:
                self.add(code, Address(Platform(platform), chat, thread))
