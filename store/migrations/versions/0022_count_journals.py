"""count_journals: how far each gateway's journal of request counts is folded into the services' totals

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "count_journals",
        sa.Column("name", sa.String(length=200), primary_key=True),
        sa.Column("folded_bytes", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("count_journals")
