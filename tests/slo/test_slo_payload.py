"""The watcher's alerts become Alertmanager v4 bodies that warroom's own intake accepts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.alerts.payloads import AlertmanagerPayload
from bot.slo.burn import evaluate, to_alertmanager_payload
from bot.slo.payload import go_quote, group_key
from bot.slo.spec import SLO

NOW = datetime(2026, 3, 14, 2, 7, 0, 250000, tzinfo=timezone.utc)
SLO_99 = SLO(service="llm-gateway", name="hallucination-rate", sli="hallucination_rate", objective=99,
             runbook="hallucination-spike")
BURNING = [(NOW - timedelta(minutes=1), i % 2 == 0) for i in range(200)]


def test_firing_payload_looks_like_alertmanagers() -> None:
    page = [a for a in evaluate(SLO_99, BURNING, NOW) if a.severity == "page"]
    payload = to_alertmanager_payload(page)
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "warroom-watcher"
    assert payload["truncatedAlerts"] == 0 and payload["externalURL"] == ""
    assert payload["groupKey"] == ('{}:{alertname="LLMSLOErrorBudgetBurn", sloth_service="llm-gateway", '
                                   'sloth_severity="page", sloth_slo="hallucination-rate"}')
    assert payload["groupLabels"] == {"alertname": "LLMSLOErrorBudgetBurn", "sloth_service": "llm-gateway",
                                      "sloth_slo": "hallucination-rate", "sloth_severity": "page"}
    assert payload["commonLabels"]["slo"] == "hallucination-rate"
    assert payload["commonAnnotations"]["burn_rate"] == "50.0"  # half the answers bad against a 1 % budget
    [alert] = payload["alerts"]
    assert alert["status"] == "firing"
    assert alert["startsAt"] == "2026-03-14T02:07:00.25Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"] == ""
    assert len(alert["fingerprint"]) == 16
    parsed = AlertmanagerPayload.model_validate(payload)
    assert parsed.alerts[0].endsAt is None


def test_resolved_payload_carries_the_real_end_and_the_same_fingerprint() -> None:
    firing = evaluate(SLO_99, BURNING, NOW)
    later = NOW + timedelta(hours=7)
    resolved = [a for a in evaluate(SLO_99, BURNING, later, previous=firing) if a.severity == "page"]
    payload = to_alertmanager_payload(resolved)
    [alert] = payload["alerts"]
    assert payload["status"] == alert["status"] == "resolved"
    assert alert["endsAt"] == "2026-03-14T09:07:00.25Z"
    first = to_alertmanager_payload([a for a in firing if a.severity == "page"])["alerts"][0]
    assert alert["fingerprint"] == first["fingerprint"]
    assert AlertmanagerPayload.model_validate(payload).alerts[0].endsAt == later


def test_one_payload_per_group() -> None:
    both = evaluate(SLO_99, BURNING, NOW)
    assert {a.severity for a in both} == {"page", "ticket"}
    with pytest.raises(ValueError, match="different groups"):
        to_alertmanager_payload(both)
    with pytest.raises(ValueError):
        to_alertmanager_payload([])


def test_group_key_quotes_values_like_go() -> None:
    assert go_quote('say "hi"\n\\') == '"say \\"hi\\"\\n\\\\"'
    assert go_quote("café") == '"café"'
    assert group_key({"sloth_slo": "b", "alertname": "A"}) == '{}:{alertname="A", sloth_slo="b"}'
