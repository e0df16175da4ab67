"""`warroom demo --otlp`, its story end to end without Slack: the example service exports OTLP only,
v41 history is replayed, v42 ships, and warroom's watcher opens the burn-rate and drift incidents;
the incident's postmortem shows the failing traces the JSON route would have stored."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.demo_otlp import replay_history
from bot.postmortem.assemble import build_context
from bot.sensors.burn_rate import evaluate_slos
from bot.sensors.spec import load_sensors
from bot.sensors.watch import evaluate_sensors
from bot.serving import ServerThread, wait_until
from bot.slo.spec import load_slos
from bot.store.db import transaction
from bot.store.models import Incident, Trace
from bot.traces import ingest as traces
from examples.llm_service.answers import traffic_questions
from examples.llm_service.app import create_app as service_app
from tests.conftest import ALERT_TOKEN

SLO_FILE = Path(__file__).resolve().parents[1] / "examples" / "slos-otlp.yaml"


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_the_bad_bundle_raises_burn_and_drift_incidents_from_otlp_traces_alone(warroom, encoding):
    service = ServerThread(service_app(bundle="v41", warroom_url=warroom.url, warroom_token=ALERT_TOKEN,
                                       trace_interval=0.1, otlp=encoding)).start()
    try:
        replayed = replay_history(warroom.url, ALERT_TOKEN, encoding)
        assert warroom.count(Trace) == replayed
        with httpx.Client(base_url=service.url) as client:
            assert client.put("/control/bundle", json={"version": "v42"}).status_code == 200
            asked = [client.post("/v1/answer", json={"question": q}).json()
                     for _ in range(40) for q in traffic_questions()]
        wait_until(lambda: warroom.count(Trace) == replayed + len(asked), timeout=30, what="v42's OTLP traces")
    finally:
        service.stop()

    now = datetime.now(timezone.utc)
    settings = warroom.runtime.settings
    evaluate_slos(warroom.runtime.engine, settings, load_slos(SLO_FILE), now)
    evaluate_sensors(warroom.runtime.engine, settings, load_sensors(SLO_FILE), now)

    with transaction(warroom.runtime.engine) as session:
        incidents = list(session.execute(select(Incident).where(Incident.source == "watcher")).scalars())
        burn = next(i for i in incidents if i.labels.get("sloth_slo") == "hallucination-rate"
                    and i.labels.get("sloth_severity") == "page")
        drift = [i for i in incidents if i.labels.get("sensor") == "answer-tokens-drift"]
        assert drift and {i.labels["bundle"] for i in drift} == {"v42"}
        assert {i.labels["severity"] for i in drift} == {"warning", "critical"}

        # The postmortem's failing traces are v42's hallucinated refund answers, as the service gave them.
        failing = traces.failing_traces(session, burn.id)
        hallucinated = {a["request_id"]: a for a in asked if a["hallucination_score"] > 0.5}
        assert failing and {t.request_id for t in failing} <= {a["request_id"] for a in asked}
        assert {t.request_id for t in failing if "hallucination" in t.failure_types} <= set(hallucinated)
        examples = build_context(session, burn.id).traces.examples
        assert examples and all(e.request_id in hallucinated or e.failure_types for e in examples)
        first = next(e for e in examples if e.request_id in hallucinated)
        assert first.output == hallucinated[first.request_id]["output"]
        assert first.input == "What is the refund policy?"
