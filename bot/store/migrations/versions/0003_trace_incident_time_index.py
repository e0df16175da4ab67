"""An index for reading an incident's traces in time order (eval export, postmortem).

Partial (linked traces only): most traces never belong to an incident, and with every trace in it
the index slowed trace ingest by a third on SQLite (its planner then used it for the "unlinked
traces of this service" UPDATE that links traces to a new incident).

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    linked = sa.text("incident_id IS NOT NULL")
    op.create_index("ix_trace_incident_time", "trace", ["incident_id", "timestamp", "request_id"],
                    sqlite_where=linked, postgresql_where=linked)


def downgrade() -> None:
    op.drop_index("ix_trace_incident_time", table_name="trace")
