"""With WARROOM_PROMETHEUS_URL set, the card and the postmortem take the error budget from
Prometheus (the SLO file's query over the incident's window), and say so.

Real: Prometheus (Debian package, via `PromStack`) scraping a small exporter on loopback whose
answer counters grow at a fixed 20 % hallucination ratio, asked through its HTTP API by warroom;
warroom and the Slack emulator. The traces warroom holds for the same window say 50 %, so a figure
computed from them would differ.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bot.clock import as_utc
from bot.emulator import Emulator
from bot.serving import ServerThread, free_port
from bot.slo.spec import load_slos
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import ALERT_TOKEN, READER, ROOT
from tests.e2e.promstack import PromStack, wait_until
from tests.slack.conftest import PRIYA, SlackHarness, _emulator, running  # noqa: F401  (_emulator: a fixture)

RATIO = 0.2  # hallucinations per answer, as the exporter's counters grow
# A recording rule, so the rule file is a real one Prometheus loads (and `promtool` checks).
RULES = """groups:
  - name: answers
    interval: 1s
    rules:
      - record: llm_answers:rate10s
        expr: sum(rate(llm_answers_total[10s]))
"""


def exporter() -> Starlette:
    """``llm_answers_total`` for llm-gateway, growing 10 answers a second of which 2 hallucinated."""
    began = time.time()

    def metrics(request: Request) -> PlainTextResponse:
        answers = 10 * (time.time() - began)
        return PlainTextResponse(
            "# TYPE llm_answers_total counter\n"
            f'llm_answers_total{{service="llm-gateway",outcome="hallucination"}} {answers * RATIO}\n'
            f'llm_answers_total{{service="llm-gateway",outcome="good"}} {answers * (1 - RATIO)}\n')

    return Starlette(routes=[Route("/metrics", metrics)])


@pytest.fixture
def prometheus_and_warroom(database_url: str, _emulator: Emulator,  # noqa: F811
                           tmp_path: Path) -> Iterator[tuple[PromStack, SlackHarness]]:
    metrics = ServerThread(exporter()).start()
    warroom_port = free_port()
    prom = PromStack(tmp_path, [f"127.0.0.1:{metrics.port}"], RULES,
                     f"http://127.0.0.1:{warroom_port}/webhooks/alertmanager", ALERT_TOKEN)
    with prom, running(database_url, _emulator, port=warroom_port, slos=load_slos(ROOT / "examples" / "slos.yaml"),
                       WARROOM_PROMETHEUS_URL=prom.prometheus_url) as slack:
        yield prom, slack
    metrics.stop()


def send_traces(slack: SlackHarness, count: int, bad: int, since: datetime) -> None:
    now = datetime.now(UTC)
    events = [{"request_id": f"budget-{i}", "service": "llm-gateway", "model": "primary-70b", "question": "q",
               "output": "a", "timestamp": (since + (now - since) * (i + 1) / (count + 1)).isoformat(),
               "hallucination_score": 0.9 if i < bad else 0.02} for i in range(count)]
    response = slack.http.post("/api/traces", json=events, headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert response.status_code == 200 and response.json()["accepted"] == count, response.text


@pytest.mark.e2e
def test_the_budget_comes_from_prometheus_when_it_is_configured(prometheus_and_warroom) -> None:
    prom, slack = prometheus_and_warroom
    # Prometheus has scraped enough of the exporter to answer for the incident's window.
    wait_until(lambda: prom.query("count_over_time(llm_answers:rate10s[30s]) >= 12"), timeout=60,
               what="Prometheus to hold 12 s of the answer rate")
    started = datetime.now(UTC) - timedelta(seconds=10)
    send_traces(slack, 10, 5, started)  # traces say 50 % bad: a figure from them would be 2.5× Prometheus'
    incident_id = slack.fire(am_payload([am_alert("primary-70b", starts=started.isoformat())]))
    channel = slack.room(incident_id)
    assert slack.resolve(channel, "rolled back").startswith("Resolved")
    slack.settle()

    incident = slack.incident(incident_id)
    window = as_utc(datetime.fromisoformat(incident["resolved_at"])) - started
    expected = RATIO / 0.005 * window.total_seconds() / (30 * 86400)  # 99.5 % over 30 days
    card = str(slack.card(channel).blocks)
    assert ("of hallucination-rate's 30d budget (its 99.5 % objective over 30d; from Prometheus: the SLO file's "
            "query, 20.0 % bad over the incident window)") in card

    slack.command("/incident postmortem", user=PRIYA, channel=channel)
    draft = slack.http.get(f"/api/incidents/{incident_id}/postmortem", headers=READER).json()["text"]
    line = next(line for line in draft.splitlines() if line.startswith("- Error budget consumed: "))
    assert "(its 99.5 % objective over 30d; from Prometheus: the SLO file's query, 20.0 % bad" in line
    consumed = float(line.removeprefix("- Error budget consumed: ").split(" %")[0]) / 100
    assert consumed == pytest.approx(expected, rel=0.05)
