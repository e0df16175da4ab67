"""A batch of trace events, from ``POST /api/traces`` or OTLP, stored in one transaction.

Both routes store the same way, with the same rules (`bot.traces.ingest.ingest_traces`), and count what
was newly stored for ``/metrics`` (`bot.traces.metrics`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from bot.clock import utcnow
from bot.config import Settings
from bot.store.db import transaction
from bot.telemetry import Metrics
from bot.traces import ingest as traces


def store_events(engine: Engine, settings: Settings, metrics: Metrics, events: list[Any]) -> traces.TraceIngestResult:
    with transaction(engine) as session:
        result = traces.ingest_traces(session, events, rules=settings.failure_rules(), now=utcnow(),
                                      max_string=settings.max_value_length,
                                      post_every_s=settings.traces_post_every_seconds)
    metrics.llm.record(result.stored)  # after the commit: counted once it is stored
    return result


def store_prepared_events(engine: Engine, settings: Settings, metrics: Metrics, prepared: traces.PreparedTraces,
                          now: datetime) -> traces.TraceIngestResult:
    """`store_events` for a batch validated already (`bot.otlp.pool`): the database part only."""
    with transaction(engine) as session:
        result = traces.store_prepared(session, prepared, now=now, post_every_s=settings.traces_post_every_seconds)
    metrics.llm.record(result.stored)
    return result
