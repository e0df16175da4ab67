"""Seeding incidents and failing traces straight into the database, for the suite and gate tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.db import make_engine, transaction
from bot.models import Incident, Trace
from bot.trace_rules import TraceEvent, failure_types

SERVICE = "llm-gateway"
T0 = datetime(2026, 3, 14, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def add_incident(engine: Engine, *, service: str = SERVICE, at: datetime = T0) -> int:
    with transaction(engine) as session:
        incident = Incident(title=f"{service} failing", service=service, opened_at=at, status="resolved",
                            resolved_at=at + timedelta(minutes=30))
        session.add(incident)
        session.flush()
        assert incident.id is not None
        return incident.id


def add_trace(engine: Engine, request_id: str, question: str, output: str, *, incident_id: int | None,
              at: datetime = T0, label: dict[str, Any] | None = None, service: str = SERVICE, **event: Any) -> None:
    data = TraceEvent(request_id=request_id, timestamp=at, service=service, bundle_version="v42",
                      input=question, output=output, **event)
    kinds = failure_types(data)
    with transaction(engine) as session:
        session.add(Trace(request_id=request_id, service=service, timestamp=at, bundle_version="v42",
                          prompt_hash=None, failure_types=kinds, failed=bool(kinds), incident_id=incident_id,
                          label=label or {}, data=data.model_dump(mode="json"), received_at=at))
