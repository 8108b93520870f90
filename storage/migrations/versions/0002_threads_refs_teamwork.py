"""threads refs referrals teamwork

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "referrals",
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("programme_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_referrals")),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referrals_delete_after"), ["delete_after"], unique=False
        )

    op.create_table(
        "staff_away",
        sa.Column("staff_key", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("staff_key", name=op.f("pk_staff_away")),
    )
    with op.batch_alter_table("staff_away", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_away_delete_after"), ["delete_after"], unique=False
        )

    op.create_table(
        "message_refs",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("contact_id", sa.String(length=24), nullable=False),
        sa.Column("ref_ct", sa.LargeBinary(), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_message_refs_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_refs")),
    )
    with op.batch_alter_table("message_refs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_refs_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_message_refs_delete_after"), ["delete_after"], unique=False
        )

    op.create_table(
        "case_members",
        sa.Column("case_id", sa.String(length=24), nullable=False),
        sa.Column("staff_key", sa.String(length=64), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_members_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "staff_key", name=op.f("pk_case_members")),
    )
    with op.batch_alter_table("case_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_case_members_delete_after"), ["delete_after"], unique=False
        )

    op.create_table(
        "case_notes",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("case_id", sa.String(length=24), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("text_ct", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_notes_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_notes")),
    )
    with op.batch_alter_table("case_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_notes_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_case_notes_delete_after"), ["delete_after"], unique=False
        )

    op.create_table(
        "followups",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("case_id", sa.String(length=24), nullable=False),
        sa.Column("every_days", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_followups_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followups")),
        sa.UniqueConstraint("case_id", name=op.f("uq_followups_case_id")),
    )
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_followups_delete_after"), ["delete_after"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_followups_due_at"), ["due_at"], unique=False)

    op.create_table(
        "staff_threads",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("case_id", sa.String(length=24), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=255), nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=True),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_staff_threads_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_threads")),
    )
    with op.batch_alter_table("staff_threads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_threads_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_staff_threads_delete_after"), ["delete_after"], unique=False
        )
        batch_op.create_index(
            "ix_staff_threads_place", ["platform", "chat_id", "thread_id"], unique=False
        )

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_transfer", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("escalated", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("escalated")
        batch_op.drop_column("source")
        batch_op.drop_column("pending_transfer")

    with op.batch_alter_table("staff_threads", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_threads_place")
        batch_op.drop_index(batch_op.f("ix_staff_threads_delete_after"))
        batch_op.drop_index(batch_op.f("ix_staff_threads_case_id"))

    op.drop_table("staff_threads")
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_followups_due_at"))
        batch_op.drop_index(batch_op.f("ix_followups_delete_after"))

    op.drop_table("followups")
    with op.batch_alter_table("case_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_notes_delete_after"))
        batch_op.drop_index(batch_op.f("ix_case_notes_case_id"))

    op.drop_table("case_notes")
    with op.batch_alter_table("case_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_members_delete_after"))

    op.drop_table("case_members")
    with op.batch_alter_table("message_refs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_refs_delete_after"))
        batch_op.drop_index(batch_op.f("ix_message_refs_contact_id"))

    op.drop_table("message_refs")
    with op.batch_alter_table("staff_away", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_away_delete_after"))

    op.drop_table("staff_away")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_delete_after"))

    op.drop_table("referrals")
