"""staff threads per programme

A case's topic / case room belongs to one programme: after a transfer the new
programme gets its own. Existing rows belong to their case's current programme.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("staff_threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("programme_id", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE staff_threads SET programme_id = "
        "(SELECT cases.programme_id FROM cases WHERE cases.id = staff_threads.case_id)"
    )
    with op.batch_alter_table("staff_threads", schema=None) as batch_op:
        batch_op.alter_column("programme_id", existing_type=sa.String(length=32), nullable=False)


def downgrade() -> None:

    with op.batch_alter_table("staff_threads", schema=None) as batch_op:
        batch_op.drop_column("programme_id")
