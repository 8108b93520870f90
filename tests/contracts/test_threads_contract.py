"""Staff-thread store contract (storage/threads.py) on SQLite and PostgreSQL.

The map in memory mirrors the ``staff_threads`` rows: whatever the app did to both, a
map loaded from the database at the next start must answer exactly like the one that
lived through it (thread of a case per programme and platform, every thread of a case,
the case at an address), on every backend. A forum topic (thread id) and a case room
(no thread id) must both survive the trip, and so must chat ids of any text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, update

from config.messages import Address, Platform
from storage.db import Database
from storage.models import Case, StaffThread
from storage.threads import ThreadMap

NOW = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
CODES = ("K-1", "K-2", "K-3")
PROGRAMMES = ("exit-a", "exit-b")
PLATFORMS = (Platform.TELEGRAM, Platform.MATRIX)


def _case(i: int, programme: str) -> dict[str, object]:
    return {
        "id": f"case{i}",
        "code": CODES[i],
        "contact_id": None,
        "key_id": None,
        "programme_id": programme,
        "status": "claimed",
        "audience": "self",
        "language": "de",
        "route_step": "match",
        "opened_at": NOW,
        "last_activity_at": NOW,
        "delete_after": NOW + timedelta(days=30),
    }


class Both:
    """The app's two halves of the store: rows and the map in memory."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.live = ThreadMap()
        self.n = 0

    async def add(self, case: int, programme: str, address: Address) -> None:
        self.n += 1
        async with self.db.transaction() as s:
            await s.execute(
                insert(StaffThread).values(
                    id=f"t{self.n}",
                    case_id=f"case{case}",
                    programme_id=programme,
                    platform=address.platform.value,
                    chat_id=address.chat_id,
                    thread_id=address.thread_id,
                    delete_after=NOW + timedelta(days=30),
                )
            )
        self.live.add(CODES[case], programme, address)

    async def drop(self, case: int, programme: str, address: Address) -> None:
        """A transfer: the old programme's thread row goes, the topic is closed."""
        async with self.db.transaction() as s:
            await s.execute(
                delete(StaffThread).where(
                    StaffThread.case_id == f"case{case}", StaffThread.programme_id == programme
                )
            )
        self.live.drop(address)

    async def forget(self, case: int) -> None:
        """The purge deleted the case and its threads."""
        async with self.db.transaction() as s:
            await s.execute(delete(StaffThread).where(StaffThread.case_id == f"case{case}"))
            await s.execute(delete(Case).where(Case.id == f"case{case}"))
        self.live.forget(CODES[case])

    async def loaded(self) -> ThreadMap:
        fresh = ThreadMap()
        await fresh.load(self.db)
        return fresh


def _answers(m: ThreadMap, places: list[Address]) -> dict[str, object]:
    return {
        "thread_of": {
            (c, p, pl): m.thread_of(c, p, pl) for c in CODES for p in PROGRAMMES for pl in PLATFORMS
        },
        "threads_of": {c: sorted(m.threads_of(c), key=repr) for c in CODES},
        "case_at": {repr(a): m.case_at(a) for a in places},
    }


async def test_a_loaded_map_answers_like_the_live_one(db: Database) -> None:
    async with db.transaction() as s:
        await s.execute(insert(Case), [_case(0, "exit-a"), _case(1, "exit-a"), _case(2, "exit-b")])
    topic = Address(Platform.TELEGRAM, "-1001234567890", "77")
    other_topic = Address(Platform.TELEGRAM, "-1001234567890", "78")
    room = Address(Platform.MATRIX, "!caseRoom:ausweg.example", None)
    odd = Address(Platform.MATRIX, "!ümlaut'\"; --:example", None)
    moved_to = Address(Platform.TELEGRAM, "-1009999", "5")
    places = [topic, other_topic, room, odd, moved_to, Address(Platform.TELEGRAM, "-1", None)]
    both = Both(db)

    await both.add(0, "exit-a", topic)
    await both.add(0, "exit-a", room)
    await both.add(1, "exit-a", other_topic)
    await both.add(2, "exit-b", odd)
    assert _answers(await both.loaded(), places) == _answers(both.live, places)
    assert (await both.loaded()).case_at(room) == "K-1"
    assert (await both.loaded()).thread_of("K-1", "exit-a", Platform.MATRIX) == room

    # case K-2 is transferred to exit-b: the old programme's thread goes
    await both.drop(1, "exit-a", other_topic)
    async with db.transaction() as s:
        await s.execute(update(Case).where(Case.id == "case1").values(programme_id="exit-b"))
    await both.add(1, "exit-b", moved_to)
    loaded = await both.loaded()
    assert _answers(loaded, places) == _answers(both.live, places)
    assert loaded.case_at(other_topic) is None
    assert loaded.thread_of("K-2", "exit-b", Platform.TELEGRAM) == moved_to

    # the purge deletes case K-1 with its threads
    await both.forget(0)
    loaded = await both.loaded()
    assert _answers(loaded, places) == _answers(both.live, places)
    assert loaded.threads_of("K-1") == []
    assert loaded.case_at(topic) is None
    assert loaded.case_at(odd) == "K-3"


async def test_an_empty_store_loads_an_empty_map(db: Database) -> None:
    m = ThreadMap()
    await m.load(db)
    assert m.threads_of("K-1") == []
    assert m.case_at(Address(Platform.TELEGRAM, "-1", "1")) is None
