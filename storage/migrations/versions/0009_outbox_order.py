"""outbox order: a write counter, so sets left by a crash go out in the order written

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))
    op.create_index("ix_outbox_seq", "outbox", ["seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_seq", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("seq")
