"""Per-service eval suites: clustered cases that outlive incidents, gate runs, gated bundles.

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_case",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("failure_type", sa.String(length=40), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("labelled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("trace_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("request_ids", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("service", "case_id", name="uq_eval_case_id"),
    )
    op.create_table(
        "eval_case_incident",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("eval_case_id", sa.Integer(), sa.ForeignKey("eval_case.id"), nullable=False),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False, index=True),
        sa.Column("added", sa.String(length=10), nullable=False),
        sa.Column("trace_count", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("eval_case_id", "incident_id", name="uq_eval_case_incident"),
    )
    op.create_table(
        "eval_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("bundle_version", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False, server_default=""),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_eval_run_service_time", "eval_run", ["service", "started_at"])
    with op.batch_alter_table("bundle") as batch:
        batch.add_column(sa.Column("known_good_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("known_good_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bundle") as batch:
        batch.drop_column("known_good_at")
        batch.drop_column("known_good_run_id")
    op.drop_index("ix_eval_run_service_time", table_name="eval_run")
    op.drop_table("eval_run")
    op.drop_table("eval_case_incident")
    op.drop_table("eval_case")
