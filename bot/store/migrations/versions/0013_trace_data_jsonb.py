"""A trace's event (``trace.data``) is ``jsonb`` on PostgreSQL.

Sensors, SLIs, impact and the eval export read single fields of it. ``json`` keeps the text, and
every field read parses it again (most of the sensors' first round over a month of traces);
``jsonb`` is stored parsed. SQLite keeps JSON text: nothing changes there.

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE trace ALTER COLUMN data TYPE jsonb USING data::jsonb")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE trace ALTER COLUMN data TYPE json USING data::json")
