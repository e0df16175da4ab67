"""The built-in SLO watcher: failing traces page through the alert intake, good traffic resolves.

Traces are written straight into the table (as the traces API stores them); time is injected.
Hallucination SLO at 99.5 %: the page pair fires above 14.4 x 0.5 % = 7.2 % bad over 1 h and 5 m.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.config import Settings
from bot.sensors.burn_rate import evaluate_slos
from bot.slo.spec import SLO, load_slos
from bot.store.db import make_engine, transaction
from bot.store.models import Alert, AlertGroup, Incident, OutboxItem, TimelineEvent, Trace

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
SLO_FILE = """\
slos:
  - service: llm-gateway
    name: hallucination-rate
    sli: hallucination_rate
    objective: 99.5
    runbook: hallucination-spike
    labels: {team: ml}
    trace: {field: hallucination_score, op: ">", value: 0.5}
  - service: llm-gateway
    name: schema-valid-rate
    sli: schema_valid_rate
    objective: 99
  - service: llm-gateway
    name: error-rate
    sli: error_rate
    objective: 99.9
    trace: null
    prometheus:
      errors: sum(rate(llm_requests_total{status="error"}[{{window}}]))
      total: sum(rate(llm_requests_total[{{window}}]))
"""


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def slos(tmp_path: Path) -> list[SLO]:
    path = tmp_path / "slos.yaml"
    path.write_text(SLO_FILE, encoding="utf-8")
    return load_slos(path)


class Traffic:
    """Writes trace rows for the LLM gateway with numbered request ids."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sent = 0

    def send(self, start: datetime, end: datetime, count: int, service: str = "llm-gateway", **fields: Any) -> None:
        step = (end - start) / count
        with transaction(self.engine) as session:
            for i in range(count):
                self.sent += 1
                at = start + step * i
                request_id = f"req-{self.sent:05d}"
                data = {"request_id": request_id, "service": service, "timestamp": at.isoformat(),
                        "model": "gpt-x", "latency_ms": 900, "tool_calls": [{"name": "search", "ok": True}], **fields}
                session.add(Trace(request_id=request_id, service=service, timestamp=at, received_at=at,
                                  bundle_version="2026.03.1", model="gpt-x", data=data))

    def burst(self) -> None:
        """An hour of good answers, then four minutes where most answers are hallucinated."""
        self.send(T0 - timedelta(hours=1), T0 - timedelta(minutes=5), 120, hallucination_score=0.05, schema_valid=True)
        self.send(T0 - timedelta(minutes=4), T0, 40, hallucination_score=0.92, schema_valid=True)
        self.send(T0 - timedelta(minutes=4), T0, 10, hallucination_score=0.1, schema_valid=True)


def counts(engine: Engine) -> dict[str, int]:
    with transaction(engine) as session:
        return {model.__name__: session.execute(select(func.count()).select_from(model)).scalar_one()
                for model in (Incident, Alert, AlertGroup, TimelineEvent, OutboxItem)}


def watcher_incidents(engine: Engine) -> dict[str, Incident]:
    with transaction(engine) as session:
        rows = session.execute(select(Incident).where(Incident.source == "watcher")).scalars()
        return {row.labels["sloth_severity"]: row for row in rows}


def test_a_burst_of_failing_traces_opens_an_incident_through_the_intake(
        engine: Engine, settings: Settings, slos: list[SLO]) -> None:
    Traffic(engine).burst()

    results = evaluate_slos(engine, settings, slos, T0)

    assert sorted(r.outcome for r in results) == ["opened", "opened"]  # page and ticket groups
    incidents = watcher_incidents(engine)
    page = incidents["page"]
    assert page.status == "triggered"
    assert page.service == "llm-gateway" and page.slo == "hallucination-rate"
    assert {k: page.labels[k] for k in ("slo", "service", "sloth_severity", "sloth_slo", "team", "alertname")} == {
        "slo": "hallucination-rate", "service": "llm-gateway", "sloth_severity": "page",
        "sloth_slo": "hallucination-rate", "team": "ml", "alertname": "LLMSLOErrorBudgetBurn",
    }
    assert page.runbook_id == "hallucination-spike"
    assert page.severity == 2
    assert page.annotations["burn_rate"] == "47.3"  # measured over the hour (the burst), not the 14.4 threshold
    assert incidents["ticket"].labels["sloth_severity"] == "ticket"
    with transaction(engine) as session:
        group = session.get(AlertGroup, page.group_id)
        assert group is not None and group.source == "watcher"
        assert group.group_labels == {"alertname": "LLMSLOErrorBudgetBurn", "sloth_service": "llm-gateway",
                                      "sloth_slo": "hallucination-rate", "sloth_severity": "page"}
        (alert,) = session.execute(select(Alert).where(Alert.incident_id == page.id)).scalars()
        assert alert.status == "firing" and alert.starts_at.replace(tzinfo=timezone.utc) == T0
        rooms = session.execute(select(OutboxItem.dedupe_key).where(OutboxItem.kind == "slack.room")).scalars()
        assert set(rooms) == {f"room:{page.id}", f"room:{incidents['ticket'].id}"}


def test_running_again_with_the_same_data_changes_nothing(engine: Engine, settings: Settings, slos: list[SLO]) -> None:
    Traffic(engine).burst()
    evaluate_slos(engine, settings, slos, T0)
    before = counts(engine)

    again = evaluate_slos(engine, settings, slos, T0)
    a_minute_later = evaluate_slos(engine, settings, slos, T0 + timedelta(minutes=1))

    assert [r.outcome for r in again + a_minute_later] == ["duplicate"] * 4
    assert counts(engine) == before
    assert {i.status for i in watcher_incidents(engine).values()} == {"triggered"}


def test_good_traffic_later_resolves_the_incident(engine: Engine, settings: Settings, slos: list[SLO]) -> None:
    traffic = Traffic(engine)
    traffic.burst()
    evaluate_slos(engine, settings, slos, T0)
    later = T0 + timedelta(hours=7)
    traffic.send(T0 + timedelta(minutes=1), later, 400, hallucination_score=0.02, schema_valid=True)

    results = evaluate_slos(engine, settings, slos, later)

    assert sorted(r.outcome for r in results) == ["updated", "updated"]
    incidents = watcher_incidents(engine)
    assert {sev: i.status for sev, i in incidents.items()} == {"page": "resolved", "ticket": "resolved"}
    assert incidents["page"].resolved_by == "watcher"
    with transaction(engine) as session:
        statuses = set(session.execute(select(Alert.status)).scalars())
        assert statuses == {"resolved"}
    assert evaluate_slos(engine, settings, slos, later + timedelta(minutes=1)) == []  # nothing firing, nothing to say


def test_a_new_burst_after_resolving_opens_a_new_incident_pointing_at_the_old(
        engine: Engine, settings: Settings, slos: list[SLO]) -> None:
    traffic = Traffic(engine)
    traffic.burst()
    evaluate_slos(engine, settings, slos, T0)
    calm = T0 + timedelta(hours=7)
    traffic.send(T0 + timedelta(minutes=1), calm, 400, hallucination_score=0.02)
    evaluate_slos(engine, settings, slos, calm)
    first = watcher_incidents(engine)["page"]

    traffic.send(calm + timedelta(minutes=1), calm + timedelta(minutes=5), 60, hallucination_score=0.97)
    evaluate_slos(engine, settings, slos, calm + timedelta(minutes=5))

    with transaction(engine) as session:
        newest = session.execute(select(Incident).where(Incident.group_id == first.group_id)
                                 .order_by(Incident.id.desc())).scalars().first()
    assert newest is not None and newest.id != first.id
    assert newest.status == "triggered" and newest.previous_incident_id == first.id


def test_other_services_and_traces_without_the_field_do_not_count(
        engine: Engine, settings: Settings, slos: list[SLO]) -> None:
    traffic = Traffic(engine)
    traffic.send(T0 - timedelta(minutes=30), T0, 100, service="search-api", hallucination_score=0.99)
    traffic.send(T0 - timedelta(minutes=30), T0, 100)  # llm-gateway, but no grader score and no schema check
    traffic.send(T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), 50, hallucination_score=0.99)  # after `now`

    assert evaluate_slos(engine, settings, slos, T0) == []
    assert counts(engine)["Incident"] == 0


def test_schema_valid_false_counts_as_bad_on_both_databases(
        engine: Engine, settings: Settings, slos: list[SLO]) -> None:
    traffic = Traffic(engine)
    traffic.send(T0 - timedelta(minutes=50), T0 - timedelta(minutes=5), 60, schema_valid=True)
    traffic.send(T0 - timedelta(minutes=4), T0, 30, schema_valid=False)

    results = evaluate_slos(engine, settings, [s for s in slos if s.name == "schema-valid-rate"], T0)

    assert {r.outcome for r in results} == {"opened"}
    assert {i.slo for i in watcher_incidents(engine).values()} == {"schema-valid-rate"}


def test_an_alert_whose_slo_labels_changed_is_resolved_not_left_firing(
        engine: Engine, settings: Settings, slos: list[SLO], tmp_path: Path) -> None:
    Traffic(engine).burst()
    evaluate_slos(engine, settings, slos, T0)
    relabelled = tmp_path / "relabelled.yaml"
    relabelled.write_text(SLO_FILE.replace("{team: ml}", "{team: trust}"), encoding="utf-8")

    results = evaluate_slos(engine, settings, load_slos(relabelled), T0 + timedelta(minutes=1))

    assert sorted(r.outcome for r in results) == ["updated", "updated"]
    page = watcher_incidents(engine)["page"]
    assert page.status == "triggered"  # the relabelled alert still fires in the same group
    with transaction(engine) as session:
        alerts = session.execute(select(Alert).where(Alert.incident_id == page.id).order_by(Alert.id)).scalars()
        assert [(a.labels["team"], a.status) for a in alerts] == [("ml", "resolved"), ("trust", "firing")]
