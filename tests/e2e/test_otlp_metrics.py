"""warroom's trace counters as the only metrics: the example service sends OTLP traces alone, a
real Prometheus scrapes warroom's /metrics with the rules `warroom slo rules` generates from
examples/slos-otlp.yaml, and the bad bundle (v42) pages through Alertmanager back into warroom."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.slo.rules import prometheus_rules
from bot.slo.spec import load_slos
from bot.slo.windows import WindowSet
from examples.llm_service.app import create_app as llm_service_app
from tests.conftest import ALERT_TOKEN, READER, serve_warroom
from tests.e2e.promstack import PromStack, wait_until
from tests.support import ServerThread

ROOT = Path(__file__).resolve().parents[2]
SCALED = ["5m=5s", "30m=15s", "1h=30s", "2h=60s", "6h=120s", "1d=240s", "3d=720s"]


def hallucination_page(warroom: Any) -> dict[str, Any] | None:
    response = warroom.http.get("/api/incidents", headers=READER)
    assert response.status_code == 200, response.text
    return next((i for i in response.json() if i["labels"].get("sloth_slo") == "hallucination-rate"
                 and i["labels"].get("sloth_severity") == "page"), None)


@pytest.mark.e2e
def test_rules_on_warroom_trace_counters_page_on_the_bad_bundle_from_otlp_traces_alone(settings, tmp_path):
    rules = prometheus_rules(load_slos(ROOT / "examples" / "slos-otlp.yaml"), windows=WindowSet.from_overrides(SCALED))
    with serve_warroom(settings) as warroom:
        service = ServerThread(llm_service_app(bundle="v42", traffic_rps=20, warroom_url=warroom.url,
                                               warroom_token=ALERT_TOKEN, trace_interval=0.2, otlp="protobuf")).start()
        try:
            with PromStack(tmp_path, [warroom.url.removeprefix("http://")], rules,
                           f"{warroom.url}/webhooks/alertmanager", ALERT_TOKEN) as prom:
                wait_until(lambda: prom.query('warroom_llm_traces_total{bundle="v42"}'), timeout=30,
                           what="Prometheus to scrape warroom's trace counters")
                firing = wait_until(lambda: [a for a in prom.prometheus_alerts("LLMSLOErrorBudgetBurn")
                                             if a["alertstate"] == "firing" and a["sloth_severity"] == "page"
                                             and a["sloth_slo"] == "hallucination-rate"],
                                    timeout=90, what="the hallucination page alert to fire")
                assert all(health == "ok" for _, health, _ in prom.rules_health()), prom.rules_health()
                assert firing[0]["service"] == "llm-gateway"
                incident = wait_until(lambda: hallucination_page(warroom), timeout=60,
                                      what="Alertmanager to open the incident in warroom")
                assert incident["service"] == "llm-gateway" and incident["runbook"] == "hallucination-spike"
        finally:
            service.stop()
