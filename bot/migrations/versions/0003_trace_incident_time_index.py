"""An index for reading an incident's traces in time order (eval export, postmortem).

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trace_incident_time", "trace", ["incident_id", "timestamp", "request_id"])


def downgrade() -> None:
    op.drop_index("ix_trace_incident_time", table_name="trace")
