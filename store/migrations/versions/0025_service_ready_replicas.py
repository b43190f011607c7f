"""services.ready_replicas: the replicas answering requests, as the service controller last wrote
them, so that every gateway replica tells the same count (the controller's pools live on one)

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("ready_replicas", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("ready_replicas")
