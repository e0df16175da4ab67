"""Correlation: alert groups that share a key join one open incident; storm incidents.

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "correlation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("alert_group") as batch:
        batch.add_column(sa.Column("alerts_unlisted", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("storm", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("merged_into_id")
        batch.drop_column("storm")
    with op.batch_alter_table("alert_group") as batch:
        batch.drop_column("alerts_unlisted")
    op.drop_table("correlation")
