"""statistics events carry the categories funders ask about

The categories of a case (audience, scene, region, outreach source) are copied onto
its "opened" event, and the wait to the first counsellor reply (in days) onto its
"first_reply" event, so the funder report still counts them after the case itself
was deleted. Nothing here identifies a person: no contact, no text, day precision.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audience", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("scene", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("region", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("wait_days", sa.Integer(), nullable=True))
        batch_op.create_index("ix_case_events_day_kind", ["day", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_case_events_day_kind")
        batch_op.drop_column("wait_days")
        batch_op.drop_column("source")
        batch_op.drop_column("region")
        batch_op.drop_column("scene")
        batch_op.drop_column("audience")
