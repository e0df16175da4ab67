"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

A column or index added to a model without a migration works in tests that create tables from the
models but not on a database upgraded in production; this catches the drift.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import bot.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bot.store.db import make_engine

# APScheduler creates and owns its job table; migration 0002 only creates it ahead of the replicas.
NOT_MODELLED = {"apscheduler_jobs"}


def _modelled(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table not in NOT_MODELLED


def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)  # the fixture has run `upgrade` on it
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _modelled})
            diffs = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diffs == []


def test_traces_stored_before_0013_keep_their_events_and_are_read_field_by_field(database_url: str) -> None:
    """0013 turns ``trace.data`` into jsonb on PostgreSQL: an event stored as ``json`` before it is
    the same event after, and the sensors' field reads see its values."""
    from datetime import datetime, timezone

    from alembic import command
    from sqlalchemy import insert, select

    from bot.sensors.watch import _read_events
    from bot.store.db import alembic_config, transaction
    from bot.store.models import Trace

    engine = make_engine(database_url)
    cfg = alembic_config(database_url)
    at = datetime(2026, 3, 14, 1, 0, tzinfo=timezone.utc)
    event = {"request_id": "r1", "service": "llm-gateway", "output": "Refunds within 30 days.",
             "hallucination_score": 0.75, "schema_valid": False, "tool_calls": [{"name": "search", "ok": False}],
             "attributes": {"status": "error", "scores": {"relevance": 0.25}}}
    try:
        command.downgrade(cfg, "0012")
        with engine.begin() as conn:
            conn.execute(insert(Trace.__table__), [{  # type: ignore[attr-defined]
                "request_id": "r1", "service": "llm-gateway", "timestamp": at, "failure_types": [], "failed": False,
                "label": {}, "data": event, "received_at": at}])
        command.upgrade(cfg, "head")
        with transaction(engine) as session:
            assert session.execute(select(Trace.data)).scalar_one() == event
            fields = ("attributes.status", "hallucination_score", "schema_valid", "scores.relevance", "tool_calls")
            assert _read_events(session, "llm-gateway", fields, at.replace(hour=0), at) == [(at, {
                "attributes.status": "error", "hallucination_score": 0.75, "schema_valid": False,
                "scores.relevance": 0.25, "tool_calls": [{"name": "search", "ok": False}]})]
    finally:
        engine.dispose()


def test_traces_stored_before_0014_survive_it_and_a_resent_one_is_still_a_duplicate(database_url: str) -> None:
    """0014 moves a trace's identity from ``request_id`` alone to (service, timestamp, request_id):
    on SQLite by copying the table. What was stored stays, and the event sent again is refused."""
    from datetime import datetime, timezone

    from alembic import command
    from sqlalchemy import func, insert, select

    from bot.store.db import alembic_config, transaction
    from bot.store.models import Trace
    from bot.store.statements import Statements
    from bot.traces.ingest import IDENTITY

    engine = make_engine(database_url)
    cfg = alembic_config(database_url)
    at = datetime(2026, 3, 14, 1, 0, tzinfo=timezone.utc)
    rows = [{"request_id": f"r{n}", "service": "llm-gateway", "timestamp": at, "failure_types": [], "failed": n == 1,
             "label": {}, "data": {"output": f"answer {n}"}, "received_at": at} for n in (1, 2)]
    try:
        command.downgrade(cfg, "0013")
        with engine.begin() as conn:
            conn.execute(insert(Trace.__table__), rows)  # type: ignore[attr-defined]
        command.upgrade(cfg, "head")
        engine.dispose()  # SQLite prepares on a connection's cached schema: new connections see 0014's index
        with transaction(engine) as session:
            again = Statements(session.connection()).insert_rows(
                Trace.__table__, rows[:1], conflict=IDENTITY, returning=("request_id",))  # type: ignore[attr-defined]
            assert list(again.rows()) == []
            assert session.execute(select(func.count()).select_from(Trace)).scalar_one() == 2
            assert session.execute(select(Trace.data).where(Trace.request_id == "r2")).scalar_one() == rows[1]["data"]
        command.downgrade(cfg, "0013")  # back to request_id alone, with those traces in it
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()
