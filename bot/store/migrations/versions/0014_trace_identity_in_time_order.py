"""A trace is known by its service, time and request id, in one index that new traces append to.

A unique index on ``request_id`` alone put each new trace at a random place: a batch of 750
traces changed about 750 of its pages, each written to the WAL (and on PostgreSQL as a full page
after every checkpoint), and a batch's store grew with the table. The unique index on
(service, timestamp, request_id) takes the place of (service, timestamp), which it serves as
well; an exporter's or a sender's retry carries the same three, so it still stores nothing twice.
Labels find a failing trace by request id in a partial index of failing traces only.

Revision ID: 0014
Revises: 0013
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FAILING = sa.text("failed")
# SQLite keeps 0001's unique constraint on request_id unnamed: batch mode names it to drop it.
NAMED = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    with op.batch_alter_table("trace", naming_convention=NAMED) as batch:
        batch.drop_constraint(_request_id_constraint(), type_="unique")
        batch.drop_index("ix_trace_service_time")
        batch.create_index("ux_trace_service_time_request", ["service", "timestamp", "request_id"], unique=True)
        batch.create_index("ix_trace_failing_request", ["request_id"], sqlite_where=FAILING, postgresql_where=FAILING)


def downgrade() -> None:
    # Fails if two traces now share a request id (at different times or services): 0013 allowed one.
    with op.batch_alter_table("trace", naming_convention=NAMED) as batch:
        batch.drop_index("ix_trace_failing_request")
        batch.drop_index("ux_trace_service_time_request")
        batch.create_index("ix_trace_service_time", ["service", "timestamp"])
        batch.create_unique_constraint("uq_trace_request_id", ["request_id"])


def _request_id_constraint() -> str:
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints("trace"):
        if constraint["column_names"] == ["request_id"] and constraint["name"]:
            return str(constraint["name"])  # PostgreSQL's: trace_request_id_key, or 0014's downgrade's
    return NAMED["uq"] % {"table_name": "trace", "column_0_name": "request_id"}
