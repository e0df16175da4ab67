"""bot.store.statements on PostgreSQL: statements sent straight on psycopg fail the way SQLAlchemy's do."""

from __future__ import annotations

import pytest
from sqlalchemy import text, update

from bot.alerts.writer import ingest_batch
from bot.runtime import Runtime
from bot.store.db import is_database_unavailable, transaction
from bot.store.models import AlertGroup
from bot.store.statements import Statements
from tests.alerts.payloads import am_alert, am_payload
from tests.alerts.test_writer import note, outcomes

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite runs through SQLAlchemy


@pytest.fixture
def runtime(settings):
    runtime = Runtime.build(settings)
    yield runtime
    runtime.engine.dispose()


def test_a_connection_killed_inside_a_pipeline_is_database_unavailable_and_the_next_batch_is_written(runtime):
    """The intake answers 503 to "database unavailable", which Alertmanager retries; a psycopg
    error that came back unwrapped would be a 500, which it does not retry."""
    raised = None
    try:
        with transaction(runtime.engine) as session:
            sql = Statements(session.connection())
            backend = sql.execute(text("SELECT pg_backend_pid() AS pid")).rows()[0].pid
            with runtime.engine.connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            with sql.pipeline():
                sql.execute(update(AlertGroup.__table__).values(source="x"))  # type: ignore[attr-defined]
    except Exception as exc:
        raised = exc
    assert raised is not None and is_database_unavailable(raised), raised

    answers = ingest_batch(runtime, [note(am_payload([am_alert("a")], group="after-the-kill"))])
    assert outcomes(answers) == ["opened"]


def test_an_update_counts_its_rows_inside_a_pipeline(runtime):
    """The trace link reads this count: it decides whether a new room gets the failing traces."""
    ingest_batch(runtime, [note(am_payload([am_alert("a")], group=f"g{i}")) for i in range(3)])
    with transaction(runtime.engine) as session:
        sql = Statements(session.connection())
        with sql.pipeline():
            changed = sql.execute(update(AlertGroup.__table__).values(source="grafana"))  # type: ignore[attr-defined]
            assert changed.count() == 3
        session.rollback()
