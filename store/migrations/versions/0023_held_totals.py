"""billing_accounts.held: what the account's unfinished jobs hold, kept by triggers on jobs

Revision ID: 0023
Revises: 0022

A submission checked its hold against SUM(hold_amount) over the account's unfinished jobs: a
scan that grows with them. The total is now a column the database keeps itself, in the
transaction that writes the job (INSERT, a change of state, hold or owner, DELETE): no code
path (the ledger, a raw INSERT, a replica running older code) can move a hold without it,
and no end is counted twice (a row's contribution is taken away only when it had one).
Backfilled from the jobs here, after the triggers exist and in the same transaction.

A later migration that rebuilds ``jobs`` on SQLite (a batch "move and copy") drops these
triggers with the old table: it must create them again (``tests/test_held_totals.py`` fails
when they are missing).
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(20, 6).with_variant(sa.BigInteger(), "sqlite")
#: store.states.TERMINAL_STATES, as this revision knows them (a job in one holds nothing)
ENDED = "('SUCCEEDED', 'FAILED', 'CANCELLED')"


def _holds(row: str) -> str:
    """What one job version holds: its hold while it has not ended, else nothing."""
    return f"(CASE WHEN {row}.hold_amount IS NOT NULL AND {row}.state NOT IN {ENDED} THEN {row}.hold_amount ELSE 0 END)"


SQLITE = [
    f"""CREATE TRIGGER jobs_held_insert AFTER INSERT ON jobs
    WHEN {_holds("NEW")} <> 0
    BEGIN
        UPDATE billing_accounts SET held = held + {_holds("NEW")} WHERE account_id = NEW.owner_id;
    END""",
    f"""CREATE TRIGGER jobs_held_update AFTER UPDATE OF state, hold_amount, owner_id ON jobs
    WHEN {_holds("OLD")} <> {_holds("NEW")} OR (OLD.owner_id <> NEW.owner_id AND {_holds("OLD")} <> 0)
    BEGIN
        UPDATE billing_accounts SET held = held - {_holds("OLD")} WHERE account_id = OLD.owner_id;
        UPDATE billing_accounts SET held = held + {_holds("NEW")} WHERE account_id = NEW.owner_id;
    END""",
    f"""CREATE TRIGGER jobs_held_delete AFTER DELETE ON jobs
    WHEN {_holds("OLD")} <> 0
    BEGIN
        UPDATE billing_accounts SET held = held - {_holds("OLD")} WHERE account_id = OLD.owner_id;
    END""",
]

POSTGRESQL = [
    f"""CREATE FUNCTION jobs_held() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    DECLARE
        old_hold numeric := 0;
        new_hold numeric := 0;
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            old_hold := {_holds("OLD")};
        END IF;
        IF TG_OP <> 'DELETE' THEN
            new_hold := {_holds("NEW")};
        END IF;
        IF TG_OP = 'UPDATE' AND OLD.owner_id = NEW.owner_id THEN
            IF new_hold <> old_hold THEN
                UPDATE billing_accounts SET held = held + (new_hold - old_hold) WHERE account_id = NEW.owner_id;
            END IF;
            RETURN NULL;
        END IF;
        IF old_hold <> 0 THEN
            UPDATE billing_accounts SET held = held - old_hold WHERE account_id = OLD.owner_id;
        END IF;
        IF new_hold <> 0 THEN
            UPDATE billing_accounts SET held = held + new_hold WHERE account_id = NEW.owner_id;
        END IF;
        RETURN NULL;
    END
    $$""",
    f"CREATE TRIGGER jobs_held_insert AFTER INSERT ON jobs FOR EACH ROW WHEN ({_holds('NEW')} <> 0) EXECUTE FUNCTION jobs_held()",
    "CREATE TRIGGER jobs_held_update AFTER UPDATE OF state, hold_amount, owner_id ON jobs FOR EACH ROW "
    "WHEN (OLD.hold_amount IS NOT NULL OR NEW.hold_amount IS NOT NULL) EXECUTE FUNCTION jobs_held()",
    f"CREATE TRIGGER jobs_held_delete AFTER DELETE ON jobs FOR EACH ROW WHEN ({_holds('OLD')} <> 0) EXECUTE FUNCTION jobs_held()",
]

BACKFILL = (
    "UPDATE billing_accounts SET held = COALESCE((SELECT SUM(jobs.hold_amount) FROM jobs "
    f"WHERE jobs.owner_id = billing_accounts.account_id AND jobs.hold_amount IS NOT NULL AND jobs.state NOT IN {ENDED}), 0)"
)


def upgrade() -> None:
    op.add_column("billing_accounts", sa.Column("held", MONEY, nullable=False, server_default="0"))
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)
    op.execute(BACKFILL)


def downgrade() -> None:
    for trigger in ("jobs_held_insert", "jobs_held_update", "jobs_held_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (" ON jobs" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS jobs_held()")
    with op.batch_alter_table("billing_accounts") as batch:
        batch.drop_column("held")
