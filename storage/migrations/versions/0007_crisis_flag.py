"""crisis flag: kind of danger and the (encrypted) urgent escalation deadline on cases

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("danger", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("urgent_due_ct", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("urgent_due_ct")
        batch_op.drop_column("danger")
