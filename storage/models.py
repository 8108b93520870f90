"""Database tables. Every row has ``delete_after``; nothing identifying is stored in clear.

* ``contacts``: a person as keyed pseudonym, the encrypted reply address, the
  conversation state and the encrypted intake answers.
* ``cases``: routed requests in a programme's queue (no account data).
* ``held_messages``: a person's messages waiting for a counsellor (encrypted).
* ``case_events``: lifecycle events for statistics (day precision, no personal data).
* Data keys (per contact / per case) live in the separate key store
  (``storage/keystore.py``), so backups of this database cannot be decrypted
  after a key was shredded.
* ``processed_updates``: hashed platform update ids for de-duplication.
* ``message_refs``: encrypted platform message ids for /vanish (48 h).
* ``staff_threads``: forum topic / case room of a case on a platform, per programme.
* ``referrals``: opaque deep-link codes (programme + outreach source).
* ``case_members``, ``case_notes``, ``followups``: counsellors' teamwork.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def touch(row: object, **values: Any) -> None:
    """Set attributes that actually change, so an unchanged row is not flushed.

    Stored times are coarse (hours), so most messages change nothing; skipping
    equal assignments keeps the session clean and the commit cheap.
    """
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for migrations."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite returns naive values otherwise).

    Coarse by construction: values are truncated to the hour on the way in
    (issue 6, part 6), so no stored timestamp is finer than retention needs. For
    hour-aligned columns a comparison with a truncated ``now`` gives the same
    answer for ``<=``, ``>`` and ``=``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError("database returned a non-datetime")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts() -> UTCDateTime:
    return UTCDateTime()


def _expiry(table: str, *key: str) -> Index:
    """The purge's index: rows in ``(delete_after, primary key)`` order.

    The purge walks expired rows as a keyset over it (``storage.retention``), so each
    batch starts where the previous one ended instead of rescanning the index entries
    earlier batches deleted (PostgreSQL keeps them until VACUUM). Its first column also
    serves every range query on ``delete_after`` alone.
    """
    return Index(f"ix_{table}_expiry", "delete_after", *key)


class Contact(Base):
    """A person (pseudonymous) and their conversation."""

    __tablename__ = "contacts"
    __table_args__ = (_expiry("contacts", "id"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    pseudonym_version: Mapped[int] = mapped_column(Integer)
    platform: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(24))
    address_ct: Mapped[bytes] = mapped_column(LargeBinary)
    locale: Mapped[str] = mapped_column(String(5))
    state: Mapped[str] = mapped_column(String(16))
    profile_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(_ts())
    delete_after: Mapped[datetime] = mapped_column(_ts())


class Case(Base):
    """A routed request in a programme's queue."""

    __tablename__ = "cases"
    __table_args__ = (
        _expiry("cases", "id"),
        Index("ix_cases_programme_status", "programme_id", "status"),
        Index("ix_cases_contact_status", "contact_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    contact_id: Mapped[str | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True
    )
    key_id: Mapped[str | None] = mapped_column(String(24), nullable=True)
    programme_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12))
    audience: Mapped[str] = mapped_column(String(16))
    scene: Mapped[str | None] = mapped_column(String(16), nullable=True)
    region: Mapped[str | None] = mapped_column(String(3), nullable=True)
    district: Mapped[str | None] = mapped_column(String(4), nullable=True)
    language: Mapped[str] = mapped_column(String(8))
    in_prison: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Kind of danger last signalled (handlers.safety.Danger value; no text, no time).
    danger: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: When an unclaimed urgent case goes to the coordinator (office time counted), to
    #: the minute, so encrypted under the case key: no clear time finer than an hour.
    #: NULL once claimed or escalated.
    urgent_due_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    route_step: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pending_transfer: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    escalated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    opened_at: Mapped[datetime] = mapped_column(_ts())
    last_activity_at: Mapped[datetime] = mapped_column(_ts())
    delete_after: Mapped[datetime] = mapped_column(_ts())

    # Relationships exist so the unit of work inserts parents before children.
    contact: Mapped[Contact | None] = relationship(lazy="raise")


class HeldMessage(Base):
    """A message from the person kept (encrypted) until a counsellor claims the case."""

    __tablename__ = "held_messages"
    __table_args__ = (_expiry("held_messages", "id"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    text_ct: Mapped[bytes] = mapped_column(LargeBinary)
    delete_after: Mapped[datetime] = mapped_column(_ts())

    case: Mapped[Case] = relationship(lazy="raise")


class CaseEvent(Base):
    """A lifecycle event for statistics: which programme, what, which day.

    ``opened`` events also carry the case's categories and ``first_reply`` events the
    wait in days, so the funder report counts them after the case was deleted.
    """

    __tablename__ = "case_events"
    __table_args__ = (
        _expiry("case_events", "id"),
        Index("ix_case_events_day_kind", "day", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL"), nullable=True, index=True
    )
    programme_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(24))
    day: Mapped[date] = mapped_column(Date)
    audience: Mapped[str | None] = mapped_column(String(16), nullable=True)
    scene: Mapped[str | None] = mapped_column(String(16), nullable=True)
    region: Mapped[str | None] = mapped_column(String(3), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    wait_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delete_after: Mapped[datetime] = mapped_column(_ts())

    case: Mapped[Case | None] = relationship(lazy="raise")


class ProcessedUpdate(Base):
    """A hashed platform update id, so a redelivered update is not handled twice."""

    __tablename__ = "processed_updates"
    __table_args__ = (_expiry("processed_updates", "key"),)

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    delete_after: Mapped[datetime] = mapped_column(_ts())


class MessageRef(Base):
    """A platform message id in a person's chat (encrypted), kept only for /vanish."""

    __tablename__ = "message_refs"
    __table_args__ = (_expiry("message_refs", "id"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    contact_id: Mapped[str] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    ref_ct: Mapped[bytes] = mapped_column(LargeBinary)
    delete_after: Mapped[datetime] = mapped_column(_ts())

    contact: Mapped[Contact] = relationship(lazy="raise")


class StaffThread(Base):
    """Where a case's staff conversation lives: a forum topic or a case room.

    One per programme: after a transfer the new programme gets its own thread and the
    old programme's row is deleted (its topic closed, its case room left).
    """

    __tablename__ = "staff_threads"
    __table_args__ = (
        _expiry("staff_threads", "id"),
        Index("ix_staff_threads_place", "platform", "chat_id", "thread_id"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    programme_id: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(255))
    thread_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    delete_after: Mapped[datetime] = mapped_column(_ts())

    case: Mapped[Case] = relationship(lazy="raise")


class Referral(Base):
    """An opaque deep-link code: preselects a programme, records the outreach source."""

    __tablename__ = "referrals"
    __table_args__ = (_expiry("referrals", "code"),)

    code: Mapped[str] = mapped_column(String(24), primary_key=True)
    programme_id: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64))
    delete_after: Mapped[datetime] = mapped_column(_ts())


class CaseMember(Base):
    """A further counsellor on a case (LEFT works with two companions)."""

    __tablename__ = "case_members"
    __table_args__ = (_expiry("case_members", "case_id", "staff_key"),)

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    staff_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    delete_after: Mapped[datetime] = mapped_column(_ts())

    case: Mapped[Case] = relationship(lazy="raise")


class CaseNote(Base):
    """A counsellor's internal note (encrypted under the case key, never relayed)."""

    __tablename__ = "case_notes"
    __table_args__ = (_expiry("case_notes", "id"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    text_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(_ts())
    delete_after: Mapped[datetime] = mapped_column(_ts())

    case: Mapped[Case] = relationship(lazy="raise")


class FollowUp(Base):
    """A scheduled check-in; the database is the truth, scheduler jobs are rebuilt from it."""

    __tablename__ = "followups"
    __table_args__ = (_expiry("followups", "id"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), unique=True)
    every_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    due_at: Mapped[datetime] = mapped_column(_ts(), index=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    delete_after: Mapped[datetime] = mapped_column(_ts())

    case: Mapped[Case] = relationship(lazy="raise")


class StaffAway(Base):
    """A counsellor's absence note, shown to their people while it is set."""

    __tablename__ = "staff_away"
    __table_args__ = (_expiry("staff_away", "staff_key"),)

    staff_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(String(500))
    delete_after: Mapped[datetime] = mapped_column(_ts())


class OutboxEntry(Base):
    """Replies of one committed unit of work until they were sent (encrypted).

    Written in the same transaction as the change that caused them and deleted
    right after sending, so a crash in between loses nothing: they are sent at
    the next start (or when the platform delivers the update again).
    """

    __tablename__ = "outbox"
    __table_args__ = (_expiry("outbox", "id"), Index("ix_outbox_seq", "seq"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    payload_ct: Mapped[bytes] = mapped_column(LargeBinary)
    delete_after: Mapped[datetime] = mapped_column(_ts())
    #: Order of writing (the last entry's + 1, in the writing transaction): after a
    #: crash the sets go out in this order, so one chat's replies keep theirs. A
    #: counter, not a time (stored times are coarse). None: written before 0009.
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
