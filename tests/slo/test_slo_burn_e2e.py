"""The generated rules page through a real Prometheus + Alertmanager, then resolve.

A tiny LLM service exposes ``llm_answers_total``; a traffic thread answers 50/s, all good until
the test switches it to 50 % hallucinations. Windows are scaled (1h -> 30s ...) so the whole
page-then-resolve cycle takes about half a minute.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from bot.slo.rules import prometheus_rules
from bot.slo.spec import load_slos
from bot.slo.windows import WindowSet
from tests.e2e.promstack import PromStack, wait_until

TOKEN = "e2e-alert-token"
SCALED = ["5m=5s", "30m=15s", "1h=30s", "2h=60s", "6h=120s", "1d=240s", "3d=720s"]
SLO_FILE = """\
slos:
  - service: llm-gateway
    name: hallucination-rate
    sli: hallucination_rate
    objective: 99
    runbook: hallucination-spike
    prometheus:
      errors: sum(rate(llm_answers_total{service="llm-gateway",outcome="hallucination"}[{{window}}]))
      total: sum(rate(llm_answers_total{service="llm-gateway"}[{{window}}]))
"""


class Traffic:
    """50 answers a second; ``bad_share`` of them hallucinated."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter("llm_answers", "Answers by outcome", ["service", "outcome"], registry=self.registry)
        for outcome in ("good", "hallucination", "schema_invalid"):
            self.answers.labels("llm-gateway", outcome)  # every series exists from the first scrape
        self.bad_share = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.server, _ = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.target = f"127.0.0.1:{self.server.server_port}"

    def _run(self) -> None:
        sent = bad = 0
        while not self._stop.wait(0.02):
            sent += 1
            if bad < self.bad_share * sent:
                bad += 1
                self.answers.labels("llm-gateway", "hallucination").inc()
            else:
                self.answers.labels("llm-gateway", "good").inc()

    def switch(self, bad_share: float) -> None:
        self.bad_share = bad_share

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.shutdown()
        self.server.server_close()


class WebhookSink:
    """Records every POST: (Authorization header, JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append((self.headers.get("Authorization", ""), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/alertmanager"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page_alerts(self, status: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(auth header, payload, alert) for every page alert received with ``status``."""
        return [(auth, payload, alert) for auth, payload in list(self.received) for alert in payload["alerts"]
                if alert["labels"].get("sloth_severity") == "page" and alert["status"] == status]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.e2e
def test_page_alert_fires_on_hallucinations_and_resolves_after_recovery(tmp_path: Path) -> None:
    slo_path = tmp_path / "slos.yaml"
    slo_path.write_text(SLO_FILE)
    rules = prometheus_rules(load_slos(slo_path), windows=WindowSet.from_overrides(SCALED))
    sink = WebhookSink()
    try:
        with Traffic() as traffic, PromStack(tmp_path, [traffic.target], rules, sink.url, TOKEN) as stack:
            wait_until(lambda: stack.query('slo:sli_error:ratio_rate1h{sloth_slo="hallucination-rate"}'),
                       timeout=20, what="the 1h error ratio to be recorded")
            assert all(health == "ok" for _, health, _ in stack.rules_health()), stack.rules_health()
            assert sink.page_alerts("firing") == []

            traffic.switch(0.5)
            auth, payload, alert = wait_until(lambda: next(iter(sink.page_alerts("firing")), None),
                                              timeout=40, what="a firing page webhook")
            assert auth == f"Bearer {TOKEN}"
            assert payload["version"] == "4"
            assert payload["groupLabels"] == {"alertname": "LLMSLOErrorBudgetBurn", "sloth_service": "llm-gateway",
                                              "sloth_severity": "page", "sloth_slo": "hallucination-rate"}
            assert alert["labels"]["service"] == "llm-gateway"
            assert alert["labels"]["slo"] == "hallucination-rate"
            assert alert["endsAt"] == "0001-01-01T00:00:00Z"
            assert alert["annotations"]["runbook"] == "hallucination-spike"
            # the burn rate Prometheus measured (half the answers bad: far above the 6x and 14.4x thresholds)
            assert float(alert["annotations"]["burn_rate"]) > 6
            burning = f"burning {alert['annotations']['burn_rate']}× (page threshold 14.4×"
            assert burning in alert["annotations"]["summary"]
            assert any(a["labels"].get("sloth_severity") == "page" for a in stack.alertmanager_alerts())

            traffic.switch(0.0)
            _, resolved_payload, resolved = wait_until(lambda: next(iter(sink.page_alerts("resolved")), None),
                                                       timeout=40, what="a resolved page webhook")
            assert resolved_payload["status"] == "resolved"
            assert resolved["fingerprint"] == alert["fingerprint"]
            assert resolved["endsAt"] != "0001-01-01T00:00:00Z"
            assert resolved["endsAt"] > resolved["startsAt"]
    finally:
        sink.close()
