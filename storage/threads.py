"""Where each case's staff conversation lives, per programme and platform.

Kept in the database (``staff_threads``) and mirrored in memory: staff-side
messages of a case are re-addressed to its thread, and staff messages written in
a thread are mapped back to the case, without a query on the hot path.

The key includes the programme: after a transfer the new programme's messages
must never land in the old programme's topic or case room (privacy check 17).
"""

from __future__ import annotations

from sqlalchemy import select

from config.messages import Address, Platform
from storage.db import Database
from storage.models import Case, StaffThread

_Place = tuple[str, str, str | None]


def _place(address: Address) -> _Place:
    return (address.platform.value, address.chat_id, address.thread_id)


class ThreadMap:
    """(case code, programme, platform) <-> staff thread address."""

    def __init__(self) -> None:
        self._by_case: dict[tuple[str, str, str], Address] = {}
        self._by_place: dict[_Place, tuple[str, str]] = {}

    def add(self, code: str, programme: str, address: Address) -> None:
        """Remember a thread of a case in one programme."""
        self._by_case[(code, programme, address.platform.value)] = address
        self._by_place[_place(address)] = (code, programme)

    def forget(self, code: str) -> None:
        """Drop all threads of a case (every programme)."""
        for key in [k for k in self._by_case if k[0] == code]:
            self._by_place.pop(_place(self._by_case.pop(key)), None)

    def drop(self, address: Address) -> None:
        """Drop one thread (it was closed or left)."""
        found = self._by_place.pop(_place(address), None)
        if found is not None:
            code, programme = found
            self._by_case.pop((code, programme, address.platform.value), None)

    def thread_of(self, code: str, programme: str, platform: Platform) -> Address | None:
        """The thread of a case in a programme on a platform, if any."""
        return self._by_case.get((code, programme, platform.value))

    def threads_of(self, code: str) -> list[Address]:
        """Every thread of a case (all programmes and platforms)."""
        return [a for (c, _, _), a in self._by_case.items() if c == code]

    def case_at(self, address: Address) -> str | None:
        """The case whose thread an address is, if any."""
        found = self._by_place.get(_place(address))
        return found[0] if found else None

    async def load(self, db: Database) -> None:
        """Fill the map from the database (at start-up)."""
        async with db.transaction() as s:
            rows = await s.execute(
                select(
                    Case.code,
                    StaffThread.programme_id,
                    StaffThread.platform,
                    StaffThread.chat_id,
                    StaffThread.thread_id,
                ).join(Case, Case.id == StaffThread.case_id)
            )
            for code, programme, platform, chat, thread in rows:
                self.add(code, programme, Address(Platform(platform), chat, thread))
