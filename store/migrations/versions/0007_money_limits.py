"""money in, limits out: top-ups and a balance history, low-balance thresholds, hard budgets,
quota modes per account, job priorities and costs, alert kinds

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric(20, 6).with_variant(sa.BigInteger(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("billing_accounts") as batch:
        batch.add_column(sa.Column("low_balance_threshold", MONEY, nullable=True))
        batch.add_column(sa.Column("budget_hard", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("quota_mode", sa.String(length=10), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cost", MONEY, nullable=False, server_default="0"))
    # both columns hold the same representation (millionths on SQLite, NUMERIC on PostgreSQL)
    op.execute(
        "UPDATE jobs SET cost = (SELECT u.amount FROM usage_records u WHERE u.job_id = jobs.id) "
        "WHERE EXISTS (SELECT 1 FROM usage_records u WHERE u.job_id = jobs.id)"
    )
    op.create_index("ix_jobs_owner_id_cost_id", "jobs", ["owner_id", "cost", "id"])
    with op.batch_alter_table("budget_alerts") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), nullable=False, server_default="BUDGET"))
    op.create_table(
        "balance_entries",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("account_id", BIG_ID, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("balance_after", MONEY, nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("account_id", "reference", name="uq_balance_entries_account_reference"),
    )
    op.create_index("ix_balance_entries_account_id_id", "balance_entries", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_balance_entries_account_id_id", table_name="balance_entries")
    op.drop_table("balance_entries")
    with op.batch_alter_table("budget_alerts") as batch:
        batch.drop_column("kind")
    op.drop_index("ix_jobs_owner_id_cost_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cost")
        batch.drop_column("priority")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("quota_mode")
    with op.batch_alter_table("billing_accounts") as batch:
        batch.drop_column("budget_hard")
        batch.drop_column("low_balance_threshold")
