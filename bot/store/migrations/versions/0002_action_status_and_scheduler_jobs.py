"""Longer action run statuses ("awaiting_confirmation"); the scheduler's job store table.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action_run") as batch:
        batch.alter_column("status", type_=sa.String(length=40), existing_type=sa.String(length=20),
                           existing_nullable=False)
    # APScheduler's SQLAlchemyJobStore layout, created here so replicas never race to create it.
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), primary_key=True),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_apscheduler_jobs_next_run_time", table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    with op.batch_alter_table("action_run") as batch:
        batch.alter_column("status", type_=sa.String(length=20), existing_type=sa.String(length=40))
