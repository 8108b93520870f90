"""purge keyset: one (delete_after, primary key) index per table instead of delete_after alone

The purge walks expired rows as a keyset over this index (storage/retention.py), so no
batch rescans the index entries earlier batches deleted. The old single-column index is
a prefix of the new one and goes.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: Table -> its primary key columns (the keyset's tie-breaker).
KEYS: dict[str, tuple[str, ...]] = {
    "contacts": ("id",),
    "cases": ("id",),
    "held_messages": ("id",),
    "case_events": ("id",),
    "processed_updates": ("key",),
    "message_refs": ("id",),
    "staff_threads": ("id",),
    "referrals": ("code",),
    "case_members": ("case_id", "staff_key"),
    "case_notes": ("id",),
    "followups": ("id",),
    "staff_away": ("staff_key",),
    "outbox": ("id",),
}


def upgrade() -> None:
    for table, key in KEYS.items():
        op.create_index(f"ix_{table}_expiry", table, ["delete_after", *key], unique=False)
        op.drop_index(f"ix_{table}_delete_after", table_name=table)


def downgrade() -> None:
    for table in KEYS:
        op.create_index(f"ix_{table}_delete_after", table, ["delete_after"], unique=False)
        op.drop_index(f"ix_{table}_expiry", table_name=table)
