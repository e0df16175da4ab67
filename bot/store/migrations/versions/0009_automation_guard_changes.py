"""Automatic first response: a per-incident automation switch, the guard that judges a mitigating
action, and the change events (deploys, prompt edits, flag flips) shown before an incident.

Revision ID: 0009
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("automation_off_by", sa.String(length=40), nullable=True))
    op.create_table(
        "action_guard",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False, unique=True),
        sa.Column("slo", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("undo_if_not_improved", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("baseline_ratio", sa.Float(), nullable=True),
        sa.Column("baseline_total", sa.Integer(), nullable=False),
        sa.Column("last_ratio", sa.Float(), nullable=True),
        sa.Column("last_total", sa.Integer(), nullable=False),
        sa.Column("verdict_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=True),
    )
    op.create_index("ix_action_guard_incident_id", "action_guard", ["incident_id"])
    op.create_table(
        "change_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False, unique=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_change_service_time", "change_event", ["service", "at"])


def downgrade() -> None:
    op.drop_index("ix_change_service_time", table_name="change_event")
    op.drop_table("change_event")
    op.drop_index("ix_action_guard_incident_id", table_name="action_guard")
    op.drop_table("action_guard")
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("automation_off_by")
