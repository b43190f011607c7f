"""data that moves: job outputs kept as datasets and models, replicas and staged inputs as tracked transfers, storage quotas

Revision ID: 0009
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("max_storage_bytes", _ID, nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("output_dataset_name", sa.String(length=200), nullable=True))
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("produced_by_job_id", _ID, nullable=True))
        batch.create_foreign_key("fk_datasets_produced_by_job_id_jobs", "jobs", ["produced_by_job_id"], ["id"])
    with op.batch_alter_table("dataset_replicas") as batch:
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("size_bytes", _ID, nullable=True))
        batch.add_column(sa.Column("checksum", sa.String(length=200), nullable=True))
    op.create_table(
        "model_replicas",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model_id", _ID, nullable=False),
        sa.Column("center_id", _ID, nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["center_id"], ["centers.id"]),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "center_id", name="uq_model_replicas_model_center"),
    )
    op.create_index("ix_model_replicas_model_id", "model_replicas", ["model_id"], unique=False)
    op.create_table(
        "transfers",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("owner_id", _ID, nullable=False),
        sa.Column("dataset_id", _ID, nullable=False),
        sa.Column("center_id", _ID, nullable=False),
        sa.Column("job_id", _ID, nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("destination_uri", sa.Text(), nullable=False),
        sa.Column("bytes_total", _ID, nullable=True),
        sa.Column("bytes_done", _ID, nullable=False),
        sa.Column("checksum", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failure_code", sa.String(length=50), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.ForeignKeyConstraint(["center_id"], ["centers.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_transfers_state", "transfers", ["state"], unique=False)
    op.create_index("ix_transfers_owner_id", "transfers", ["owner_id"], unique=False)
    op.create_index("ix_transfers_dataset_id", "transfers", ["dataset_id"], unique=False)
    op.create_index("ix_transfers_job_id", "transfers", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_table("transfers")
    op.drop_table("model_replicas")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("checksum")
        batch.drop_column("size_bytes")
    with op.batch_alter_table("dataset_replicas") as batch:
        batch.drop_column("verified_at")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_constraint("fk_datasets_produced_by_job_id_jobs", type_="foreignkey")
        batch.drop_column("produced_by_job_id")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("output_dataset_name")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("max_storage_bytes")
