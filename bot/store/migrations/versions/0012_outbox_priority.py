"""Outbox rows carry a priority: the worker claims due rows by (priority, due time, id).

``outbox.priority``: lower goes sooner (`bot.effects.Priority`: 0 a person's action, 1 a room's
set-up, 2 posts, 3 cosmetic card refreshes). Rows already queued are posts (2). The claim index
leads with the priority so the next row is found without sorting every due row.

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="2"))
    op.create_index("ix_outbox_claim", "outbox", ["status", "priority", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_claim", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("priority")
