"""billing: quoted prices and holds on jobs; balances, usage records, bills, lines, budget alerts

Money is NUMERIC(20, 6) on PostgreSQL and an INTEGER of millionths on SQLite (see
store.types.Fixed); quantities are NUMERIC(20, 9) / INTEGER of billionths.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric(20, 6).with_variant(sa.BigInteger(), "sqlite")
QUANTITY = sa.Numeric(20, 9).with_variant(sa.BigInteger(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unit_price", MONEY, nullable=True))
        batch_op.add_column(sa.Column("currency", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("units_per_device", QUANTITY, nullable=True))
        batch_op.add_column(sa.Column("hold_amount", MONEY, nullable=True))
        batch_op.create_index("ix_jobs_owner_id_state", ["owner_id", "state"], unique=False)

    op.create_table(
        "billing_accounts",
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("opening_balance", MONEY, nullable=False),
        sa.Column("balance", MONEY, nullable=False),
        sa.Column("monthly_budget", MONEY, nullable=True),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "bills",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("period_start", WHEN, nullable=False),
        sa.Column("period_end", WHEN, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("finalized_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "period", name="uq_bills_account_period"),
    )
    op.create_index("ix_bills_account_id_id", "bills", ["account_id", "id"], unique=False)

    op.create_table(
        "usage_records",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", BIG_ID, nullable=False),
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("center_id", BIG_ID, nullable=False),
        sa.Column("bill_id", BIG_ID, nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN, nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("accelerator", sa.String(length=100), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("units_per_device", QUANTITY, nullable=False),
        sa.Column("standard_unit_hours", QUANTITY, nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["bill_id"],
            ["bills.id"],
        ),
        sa.ForeignKeyConstraint(
            ["center_id"],
            ["centers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", name="uq_usage_records_job_id"),
    )
    op.create_index("ix_usage_records_account_id_id", "usage_records", ["account_id", "id"], unique=False)
    op.create_index("ix_usage_records_bill_id", "usage_records", ["bill_id"], unique=False)

    op.create_table(
        "bill_lines",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("bill_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("usage_id", BIG_ID, nullable=True),
        sa.Column("corrects_bill_id", BIG_ID, nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["bill_id"],
            ["bills.id"],
        ),
        sa.ForeignKeyConstraint(
            ["corrects_bill_id"],
            ["bills.id"],
        ),
        sa.ForeignKeyConstraint(
            ["usage_id"],
            ["usage_records.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("usage_id", name="uq_bill_lines_usage_id"),
    )
    op.create_index("ix_bill_lines_bill_id_id", "bill_lines", ["bill_id", "id"], unique=False)

    op.create_table(
        "budget_alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("budget", MONEY, nullable=False),
        sa.Column("spent", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "period", "threshold", name="uq_budget_alerts_account_period_threshold"),
    )
    op.create_index("ix_budget_alerts_account_id_id", "budget_alerts", ["account_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_budget_alerts_account_id_id", table_name="budget_alerts")
    op.drop_table("budget_alerts")
    op.drop_index("ix_bill_lines_bill_id_id", table_name="bill_lines")
    op.drop_table("bill_lines")
    op.drop_index("ix_usage_records_bill_id", table_name="usage_records")
    op.drop_index("ix_usage_records_account_id_id", table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index("ix_bills_account_id_id", table_name="bills")
    op.drop_table("bills")
    op.drop_table("billing_accounts")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_owner_id_state")
        batch_op.drop_column("hold_amount")
        batch_op.drop_column("units_per_device")
        batch_op.drop_column("currency")
        batch_op.drop_column("unit_price")
