"""inference services: services, their event log, replicas as jobs, serving commands of models

Revision ID: 0010
Revises: 0008, 0009 (on this branch it joins the two heads; re-chain as a plain successor when merging)
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("model_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("center_id", ID, nullable=True),
        sa.Column("protocol", sa.String(length=20), nullable=False),
        sa.Column("request", DOCUMENT, nullable=False),
        sa.Column("command", DOCUMENT, nullable=False),
        sa.Column("model_dir", sa.Text(), nullable=True),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column("desired_replicas", sa.Integer(), nullable=False),
        sa.Column("target_per_replica", sa.Float(), nullable=False),
        sa.Column("idempotent", sa.Boolean(), nullable=False),
        sa.Column("deadline_seconds", sa.Float(), nullable=False),
        sa.Column("policy", sa.String(length=20), nullable=True),
        sa.Column("placement", DOCUMENT, nullable=True),
        sa.Column("requests_total", ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scaled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"]),
        sa.ForeignKeyConstraint(["center_id"], ["centers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_services_owner_idempotency_key"),
    )
    with op.batch_alter_table("services") as batch:
        batch.create_index("ix_services_owner_id_id", ["owner_id", "id"], unique=False)
        batch.create_index(batch.f("ix_services_model_id"), ["model_id"], unique=False)
        batch.create_index(batch.f("ix_services_state"), ["state"], unique=False)
    op.create_table(
        "service_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("service_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=True),
        sa.Column("replicas_ready", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("service_id", "seq", name="uq_service_events_service_seq"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("service_id", ID, nullable=True))
        batch.create_index(batch.f("ix_jobs_service_id"), ["service_id"], unique=False)
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("service_id", ID, nullable=True))
        batch.create_index(batch.f("ix_usage_records_service_id"), ["service_id"], unique=False)
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("serving_command", DOCUMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("serving_command")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_index(batch.f("ix_usage_records_service_id"))
        batch.drop_column("service_id")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index(batch.f("ix_jobs_service_id"))
        batch.drop_column("service_id")
    op.drop_table("service_events")
    op.drop_table("services")
