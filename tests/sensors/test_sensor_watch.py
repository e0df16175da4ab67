"""Sensors in the built-in watcher raise and resolve incidents through the alert intake.

Trace rows are written as the trace routes store them (OTLP-mapped events keep scores and status
under ``attributes``); time is injected. Both databases.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.config import Settings
from bot.sensors.burn_rate import evaluate_slos
from bot.sensors.spec import load_sensors
from bot.sensors.watch import evaluate_sensors
from bot.slo.spec import load_slos
from bot.store.db import make_engine, transaction
from bot.store.models import Incident, Trace

T0 = datetime(2026, 3, 9, 14, 0, tzinfo=timezone.utc)
FILE = """\
slos:
  - service: llm-gateway
    name: relevance
    sli: hallucination_rate
    objective: 99
    trace: {field: scores.relevance, op: "<", value: 0.5}
  - service: llm-gateway
    name: provenance
    sli: provenance_coverage
    objective: 95
sensors:
  - name: token-drift
    service: llm-gateway
    kind: drift
    field: tokens
    baseline: 1d
    labels: {team: ml}
  - name: tool-error-spike
    service: llm-gateway
    kind: spike
    trace: {field: tool_calls, op: any_not_ok}
"""


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "slos.yaml"
    path.write_text(FILE, encoding="utf-8")
    return path


class Traces:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sent = 0

    def send(self, start: datetime, end: datetime, count: int, *, bundle: str = "v41", **fields: Any) -> None:
        step = (end - start) / count
        with transaction(self.engine) as session:
            for i in range(count):
                self.sent += 1
                at = start + step * (i + 0.5)
                data = {"request_id": f"r{self.sent}", "service": "llm-gateway", "timestamp": at.isoformat(),
                        "bundle_version": bundle, "tool_calls": [{"name": "search", "ok": True}],
                        "attributes": {"status": "ok"}}
                for key, value in fields.items():
                    data[key] = value(i) if callable(value) else value
                session.add(Trace(request_id=f"r{self.sent}", service="llm-gateway", timestamp=at, received_at=at,
                                  bundle_version=bundle, data=data))


def sensor_incidents(engine: Engine) -> list[Incident]:
    with transaction(engine) as session:
        rows = session.execute(select(Incident).where(Incident.source == "watcher")).scalars()
        return sorted((r for r in rows if "sensor" in r.labels), key=lambda r: r.labels["severity"])


def test_a_bundle_whose_token_counts_drift_raises_and_resolves_drift_incidents(engine, settings, spec):
    rng = random.Random(7)
    traces = Traces(engine)
    # A day of v41 at 250 traces an hour, then an hour of v42 whose answers use fewer tokens.
    traces.send(T0 - timedelta(days=1, hours=1), T0 - timedelta(hours=1), 6000, tokens=lambda i: rng.gauss(42, 4))
    traces.send(T0 - timedelta(hours=1), T0, 250, bundle="v42", tokens=lambda i: rng.gauss(34, 4))
    sensors = load_sensors(spec)

    results = evaluate_sensors(engine, settings, sensors, T0)

    assert sorted(r.outcome for r in results) == ["opened", "opened"]
    critical, warning = sensor_incidents(engine)
    assert critical.labels["severity"] == "critical" and warning.labels["severity"] == "warning"
    assert {k: critical.labels[k] for k in ("alertname", "sensor", "sensor_kind", "service", "bundle", "team")} == {
        "alertname": "LLMQualityDrift", "sensor": "token-drift", "sensor_kind": "drift", "service": "llm-gateway",
        "bundle": "v42", "team": "ml"}
    assert critical.runbook_id == "quality-drift" and critical.severity == 2 and warning.severity == 3
    assert float(critical.annotations["psi"]) > 0.25
    assert "PSI" in critical.annotations["summary"] and "bundle v42" in critical.annotations["summary"]

    # Same data a minute later: the same alerts, so nothing new.
    assert {r.outcome for r in evaluate_sensors(engine, settings, sensors, T0 + timedelta(minutes=1))} == {"duplicate"}

    # The rollback: an hour of v41 traffic like the baseline; the drift alerts resolve.
    traces.send(T0 + timedelta(minutes=1), T0 + timedelta(minutes=62), 250, tokens=lambda i: rng.gauss(42, 4))
    evaluate_sensors(engine, settings, sensors, T0 + timedelta(minutes=62))
    assert {i.status for i in sensor_incidents(engine)} == {"resolved"}


def test_steady_traffic_raises_no_drift(engine, settings, spec):
    rng = random.Random(3)
    Traces(engine).send(T0 - timedelta(days=1, hours=1), T0, 6250, tokens=lambda i: rng.gauss(42, 4))
    assert evaluate_sensors(engine, settings, load_sensors(spec), T0) == []


def test_tool_errors_at_three_times_the_usual_for_an_hour_raise_a_spike(engine, settings, spec):
    traces = Traces(engine)
    bad = [{"name": "search", "ok": False}]
    for day in range(1, 8):  # the usual: 5 % tool errors at this hour
        end = T0 - timedelta(days=day)
        traces.send(end - timedelta(hours=2), end, 120, tool_calls=lambda i: bad if i % 20 == 0 else [])
    traces.send(T0 - timedelta(hours=2), T0, 120, tool_calls=lambda i: bad if i % 6 == 0 else [])

    [result] = evaluate_sensors(engine, settings, load_sensors(spec), T0)

    assert result.outcome == "opened"
    [incident] = sensor_incidents(engine)
    assert incident.labels["alertname"] == "LLMFailureSpike" and incident.labels["sensor"] == "tool-error-spike"
    assert "the same hour of the last 7 days" in incident.annotations["summary"]


def test_sensors_of_one_service_each_judge_their_own_field(engine, settings, tmp_path):
    """A round reads each time range once for all the service's sensors: tool errors spike while
    schema failures and the status stay at their usual rate, and latency drifts while tokens do not."""
    path = tmp_path / "slos.yaml"
    path.write_text("slos: []\nsensors:\n" + "".join(f"""\
  - {{name: {name}, service: llm-gateway, kind: spike, trace: {rule}}}
""" for name, rule in (("tools", "{field: tool_calls, op: any_not_ok}"),
                       ("schema", "{field: schema_valid, op: ==, value: false}"),
                       ("status", "{field: status, op: '!=', value: ok}"))) + "".join(f"""\
  - {{name: {field}-drift, service: llm-gateway, kind: drift, field: {field}, baseline: 7d, by_bundle: false}}
""" for field in ("tokens", "latency_ms")), encoding="utf-8")
    rng = random.Random(11)
    traces = Traces(engine)
    bad = [{"name": "search", "ok": False}]
    for day in range(1, 8):  # the usual at this hour: 5 % of tool errors and 5 % of invalid answers
        end = T0 - timedelta(days=day)
        traces.send(end - timedelta(hours=2), end, 240, tool_calls=lambda i: bad if i % 20 == 0 else [],
                    schema_valid=lambda i: i % 20 != 1, tokens=lambda i: rng.gauss(42, 4),
                    latency_ms=lambda i: rng.gauss(900, 100))
    traces.send(T0 - timedelta(hours=2), T0, 480, tool_calls=lambda i: bad if i % 6 == 0 else [],
                schema_valid=lambda i: i % 20 != 1, tokens=lambda i: rng.gauss(42, 4),
                latency_ms=lambda i: rng.gauss(1400, 100))

    evaluate_sensors(engine, settings, load_sensors(path), T0)

    assert sorted((i.labels["sensor"], i.labels["severity"]) for i in sensor_incidents(engine)) == [
        ("latency_ms-drift", "critical"), ("latency_ms-drift", "warning"), ("tools", "warning")]


def test_burn_rate_on_an_evaluation_score_from_otel_pages(engine, settings, spec):
    traces = Traces(engine)
    traces.send(T0 - timedelta(hours=1), T0, 100,
                attributes=lambda i: {"scores": {"relevance": 0.2 if i % 4 == 0 else 0.9}, "status": "ok"})
    evaluate_slos(engine, settings, load_slos(spec), T0)
    with transaction(engine) as session:
        pages = [i for i in session.execute(select(Incident)).scalars() if i.labels.get("sloth_slo") == "relevance"]
    assert {i.labels["sloth_severity"] for i in pages} == {"page", "ticket"}


def test_provenance_coverage_counts_answers_that_cite_none_of_their_sources(engine, settings, spec):
    traces = Traces(engine)
    traces.send(T0 - timedelta(hours=1), T0, 100, retrieval_ids=["doc-1", "doc-2"],
                citations=lambda i: ["web:rumour"] if i % 3 == 0 else ["doc-2"])
    traces.send(T0 - timedelta(hours=1), T0, 50, retrieval_ids=[], citations=[])  # nothing to cite: not counted
    evaluate_slos(engine, settings, load_slos(spec), T0)
    with transaction(engine) as session:
        pages = [i for i in session.execute(select(Incident)).scalars() if i.labels.get("sloth_slo") == "provenance"]
    assert pages and all(i.service == "llm-gateway" for i in pages)

