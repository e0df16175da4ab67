"""The raw insert path (bot.store.statements: the intake's rows and the change set's timeline and outbox
rows) applies no model defaults: on PostgreSQL a column it leaves out is NULL or its server
default. So every column the model fills in by itself (a ``default`` other than None, a
``default_factory``) or that must not be NULL has to be named by every raw insert of its table.
A model that gains such a column fails here until the raw rows name it (see `Statements.insert_rows`)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_core import PydanticUndefined
from sqlalchemy import Table
from sqlalchemy.sql.dml import Insert
from sqlmodel import SQLModel

from bot.alerts.writer import ingest_batch
from bot.store.statements import Statements
from tests.alerts.payloads import am_alert, am_payload
from tests.alerts.test_writer import note, outcomes

RAW_TABLES = {"alert_group", "incident", "alert", "timeline_event", "outbox"}


def _models() -> dict[str, type[SQLModel]]:
    return {mapper.local_table.name: mapper.class_ for mapper in SQLModel._sa_registry.mappers}  # type: ignore[attr-defined]


def must_be_named(model: type[SQLModel]) -> set[str]:
    """The columns a raw INSERT of ``model``'s table has to give."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    named = set()
    for name, info in model.model_fields.items():
        if name not in table.c or table.c[name].primary_key:
            continue
        column = table.c[name]
        model_default = info.default_factory is not None or info.default not in (None, PydanticUndefined)
        if model_default or column.default is not None or (not column.nullable and column.server_default is None):
            named.add(name)
    return named


@pytest.fixture
def raw_inserts(monkeypatch) -> dict[str, list[set[str]]]:
    """The columns of every raw INSERT, by table, as the code under test sends them."""
    seen: dict[str, list[set[str]]] = {}
    insert_rows, execute = Statements.insert_rows, Statements.execute

    def watched_insert_rows(self: Statements, table: Table, rows: Any, **kwargs: Any) -> Any:
        for row in rows:
            seen.setdefault(table.name, []).append(set(row))
        return insert_rows(self, table, rows, **kwargs)

    def watched_execute(self: Statements, stmt: Any, params: Any = None) -> Any:
        if isinstance(stmt, Insert):
            for row in [params] if isinstance(params, dict) else list(params or []):
                seen.setdefault(stmt.table.name, []).append(set(row))  # type: ignore[attr-defined]
        return execute(self, stmt, params)

    monkeypatch.setattr(Statements, "insert_rows", watched_insert_rows)
    monkeypatch.setattr(Statements, "execute", watched_execute)
    return seen


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # what is sent, not how it is run
def test_every_raw_insert_names_each_column_its_model_would_fill_in(runtime, raw_inserts):
    # An incident opened, changed and resolved by the intake: every raw insert it makes, and the
    # change set's (timeline lines, echo lines, the room, the card, the resolve's rows).
    answers = ingest_batch(runtime, [note(am_payload([am_alert("a")], group="defaults"))])
    answers += ingest_batch(runtime, [note(am_payload([am_alert("a"), am_alert("b")], group="defaults"))])
    answers += ingest_batch(
        runtime,
        [note(am_payload([am_alert("a", status="resolved"), am_alert("b", status="resolved")], group="defaults"))],
    )
    assert outcomes(answers) == ["opened", "updated", "updated"]
    assert set(raw_inserts) >= RAW_TABLES, set(raw_inserts)

    models = _models()
    missing = {table: sorted(must_be_named(models[table]) - columns)
               for table, rows in raw_inserts.items() for columns in rows if must_be_named(models[table]) - columns}
    assert not missing, f"raw inserts leave out columns their model fills in (name them in the rows): {missing}"


def test_a_new_model_default_is_one_the_raw_rows_must_name():
    """The check itself: a column with a Python-side default counts, a nullable one without does not."""
    from bot.store.models import Incident, OutboxItem

    assert {"severity", "labels", "monitoring_gap", "title", "opened_at"} <= must_be_named(Incident)
    assert {"channel_id", "summary", "acknowledged_at", "id"}.isdisjoint(must_be_named(Incident))
    assert {"status", "attempts", "payload", "dedupe_key", "next_attempt_at"} <= must_be_named(OutboxItem)
