"""Seeding incidents and failing traces straight into the database, for the suite and gate tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from bot.evals.suite import collect_incident
from bot.releases import bundles
from bot.store.db import transaction
from bot.store.models import Incident, Trace
from bot.traces.rules import TraceEvent, failure_types
from examples.llm_service.bundles import BUNDLES

SERVICE = "llm-gateway"
T0 = datetime(2026, 3, 14, 2, 0, tzinfo=timezone.utc)
REFUND = "What is the refund policy?"
ORDER_JSON = "Give the order status as JSON for order 1234"


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


def register_catalogue(engine: Engine) -> None:
    with transaction(engine) as session:
        for n, (version, bundle) in enumerate(BUNDLES.items()):
            bundles.register_bundle(session, service=SERVICE, version=version, components=bundle.components(),
                                    deployed_at=T0 - timedelta(days=10 - n), known_good=version == "v41" or None)


def seed_incident_from_v42(engine: Engine, url: str) -> int:
    """The demo's incident: v42's production answers, one refund answer labelled by a human."""
    incident = add_incident(engine)
    with httpx.Client(base_url=url, timeout=10) as client:
        for n, question in enumerate([REFUND, REFUND, ORDER_JSON, REFUND]):
            reply = client.post("/v1/answer", json={"question": question}).raise_for_status().json()
            assert reply["bundle"] == "v42"
            label = ({"failure_type": "hallucination", "expected": "Refunds are available within 30 days.",
                      "unsupported_claim": "90 days"} if n == 3 else None)
            add_trace(engine, reply["request_id"], question, reply["output"], incident_id=incident,
                      at=T0 + timedelta(seconds=n), label=label, schema_valid=reply["schema_valid"],
                      hallucination_score=reply["hallucination_score"], latency_ms=reply["latency_ms"])
    with transaction(engine) as session:
        change = collect_incident(session, incident)
    assert (change.new, change.updated) == (2, 0)
    return incident
