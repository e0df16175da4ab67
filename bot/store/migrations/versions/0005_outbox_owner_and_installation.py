"""Outbox rows name the worker that holds them; one random id names this warroom installation.

``outbox.claimed_by``: a worker checks it still owns a row (and renews its lease) before each
step, so a row whose lease ran out while Slack was slow is never run by two processes.
``installation``: one row, created here, whose random id warroom writes into what it creates in
Slack (the channel purpose, message metadata) to recognise it later as its own.

Revision ID: 0005
Revises: 0003
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=80), nullable=True))
    table = op.create_table(
        "installation",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.bulk_insert(table, [{"id": uuid.uuid4().hex[:16], "created_at": datetime.now(timezone.utc)}])


def downgrade() -> None:
    op.drop_table("installation")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
