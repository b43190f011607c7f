"""jobs by (center_id, external_id): a reconciler round told of a few jobs reads those, not every
unfinished job of its center (a hand-over, on every submit's path, asks for one)

Revision ID: 0024
Revises: 0023
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_center_id_external_id", "jobs", ["center_id", "external_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_center_id_external_id", table_name="jobs")
