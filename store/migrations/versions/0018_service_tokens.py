"""service tokens: what OPENAI services' servers reported as used, the price per million tokens
quoted at deploy, and the tokens not yet on a bill; a bill line's service and tokens (TOKENS lines)

Revision ID: 0018
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0011"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric(20, 6).with_variant(sa.BigInteger(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("prompt_tokens_total", BIG, nullable=False, server_default="0"))
        batch.add_column(sa.Column("completion_tokens_total", BIG, nullable=False, server_default="0"))
        batch.add_column(sa.Column("tokens_unbilled", BIG, nullable=False, server_default="0"))
        batch.add_column(sa.Column("tokens_billed_at", WHEN, nullable=True))
        batch.add_column(sa.Column("price_per_million_tokens", MONEY, nullable=True))
        batch.create_index(batch.f("ix_services_tokens_unbilled"), ["tokens_unbilled"], unique=False)
    with op.batch_alter_table("bill_lines") as batch:
        batch.add_column(sa.Column("service_id", BIG, nullable=True))
        batch.add_column(sa.Column("tokens", BIG, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bill_lines") as batch:
        batch.drop_column("tokens")
        batch.drop_column("service_id")
    with op.batch_alter_table("services") as batch:
        batch.drop_index(batch.f("ix_services_tokens_unbilled"))
        for column in ("price_per_million_tokens", "tokens_billed_at", "tokens_unbilled", "completion_tokens_total", "prompt_tokens_total"):
            batch.drop_column(column)
