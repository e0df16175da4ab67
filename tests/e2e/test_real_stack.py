"""The story with real parts: a bad release pages, the room opens, fallback fixes it, Alertmanager resolves it.

Real: the example LLM service answering 20 questions a second, Prometheus running the rules
``warroom slo rules`` generates for examples/slos.yaml, Alertmanager posting to warroom's webhook
with the alert token, warroom on PostgreSQL, and the Slack emulator. Windows are scaled (1h -> 30s
…) so the page fires within seconds of v42 going live and resolves within seconds of the fallback.

Warroom and Alertmanager each need the other's address at start-up, so warroom's port is picked
first and the `slack` fixture's steps are done here in that order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.emulator import Emulator
from bot.serving import ServerThread, free_port
from bot.slo.rules import prometheus_rules
from bot.slo.spec import load_slos
from bot.slo.windows import WindowSet
from examples.llm_service import create_app as llm_service_app
from tests.conftest import ALERT_TOKEN, READER, ROOT
from tests.e2e.promstack import PromStack, wait_until
from tests.slack.conftest import PRIYA, SlackHarness, _emulator, running  # noqa: F401  (_emulator: a fixture)

CONTROL_TOKEN = "e2e-control-token"
# Every window stays >= 5 scrape intervals (1 s): rate() over fewer samples is empty, and an
# empty ratio can neither fire nor resolve.
SCALED = ["5m=5s", "30m=15s", "1h=30s", "2h=60s", "6h=120s", "1d=240s", "3d=720s"]
HALLUCINATION_5M = 'slo:sli_error:ratio_rate5m{sloth_slo="hallucination-rate"}'


class LLMGateway:
    def __init__(self, url: str) -> None:
        self.url = url
        self.target = url.removeprefix("http://")
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}, timeout=5)

    def state(self) -> dict[str, Any]:
        return self.http.get("/control/state").json()

    def ship(self, version: str) -> None:
        response = self.http.put("/control/bundle", json={"version": version})
        assert response.status_code == 200, response.text


@pytest.fixture
def llm_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMGateway]:
    """v41 (good) under steady synthetic traffic; the playbooks reach it through these env vars."""
    server = ServerThread(llm_service_app(control_token=CONTROL_TOKEN, bundle="v41", traffic_rps=20)).start()
    monkeypatch.setenv("WARROOM_TARGET_LLM_GATEWAY", server.url)
    monkeypatch.setenv("WARROOM_SECRET_CONTROL_TOKEN", CONTROL_TOKEN)
    yield LLMGateway(server.url)
    server.stop()


@pytest.fixture
def stack(llm_gateway: LLMGateway, database_url: str, _emulator: Emulator, tmp_path: Path,  # noqa: F811
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PromStack, SlackHarness]]:
    warroom_port = free_port()
    rules = prometheus_rules(load_slos(ROOT / "examples" / "slos.yaml"), windows=WindowSet.from_overrides(SCALED))
    with PromStack(tmp_path, [llm_gateway.target], rules,
                   f"http://127.0.0.1:{warroom_port}/webhooks/alertmanager", ALERT_TOKEN) as prom:
        monkeypatch.setenv("WARROOM_ALERTMANAGER_URL", prom.alertmanager_url)
        with running(database_url, _emulator, port=warroom_port) as slack:
            yield prom, slack


def page_incident(slack: SlackHarness) -> dict[str, Any] | None:
    """The hallucination-rate page incident (the ticket alert and the other SLOs open their own)."""
    response = slack.http.get("/api/incidents", headers=READER)
    assert response.status_code == 200, response.text
    return next((i for i in response.json() if i["runbook"] == "hallucination-spike"
                 and i["labels"].get("sloth_severity") == "page"), None)


def answer(slack: SlackHarness, line: str, *, channel: str, user: str = PRIYA) -> str:
    """What ``user`` is told, whether it came in the ack or later through response_url."""
    before = len(slack.said_to(user))
    slack.command(line, user=user, channel=channel)
    return wait_until(lambda: next((t for t in slack.said_to(user)[before:] if t and not t.startswith("⏳")), None),
                      timeout=15, what=f"the answer to {line!r}")


def fallback_card(slack: SlackHarness, channel: str) -> Any:
    return next((m for m in slack.messages(channel) if m.blocks and "action.confirm" in str(m.blocks)), None)


@pytest.mark.e2e
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_bad_release_pages_fallback_mitigates_and_alertmanager_resolves(
        llm_gateway: LLMGateway, stack: tuple[PromStack, SlackHarness]) -> None:
    prom, slack = stack
    # v41 is healthy: ten evaluations of its traffic page nobody.
    wait_until(lambda: prom.query(f"count_over_time({HALLUCINATION_5M}[1m]) >= 10"), timeout=30,
               what="ten evaluations of the hallucination ratio under v41")
    assert all(health == "ok" for _, health, _ in prom.rules_health()), prom.rules_health()
    assert prom.prometheus_alerts() == [] and page_incident(slack) is None

    # 01:50 — v42 ships; its prompt trusts a bad web_search result for the refund question.
    llm_gateway.ship("v42")
    incident = wait_until(lambda: page_incident(slack), timeout=60, what="warroom to open the page incident")
    assert incident["service"] == "llm-gateway" and incident["slo"] == "hallucination-rate"
    assert incident["severity"] == 2 and incident["status"] == "triggered"
    channel = slack.room(incident["id"], timeout=30)
    assert "SEV2" in slack.card(channel).text
    assert any(m.text == "Runbook: Hallucination rate spike" for m in slack.messages(channel))

    # 02:09 — Priya moves traffic to the safe fallback route and confirms the card.
    assert "press Confirm" in answer(slack, "/incident fallback", channel=channel)
    card = wait_until(lambda: fallback_card(slack, channel), timeout=15, what="the fallback confirmation card")
    assert "safe-fallback-8b" in str(card.blocks)
    slack.emu.click(channel, card.ts, "action.confirm", "1", user=PRIYA)
    wait_until(lambda: llm_gateway.state()["route"] == "safe-fallback-8b", timeout=15, what="the route switch")
    wait_until(lambda: any("succeeded" in m.text and "(verified)" in m.text for m in slack.messages(channel)),
               timeout=20, what="the fallback to be reported verified")
    # The fallback route answers the refund question correctly, so the short-window ratio drops to 0.
    wait_until(lambda: any(float(s["value"][1]) == 0 for s in prom.query(HALLUCINATION_5M)),
               timeout=30, what="the 5m hallucination ratio to reach 0")

    # Alertmanager sends `resolved`; warroom resolves the incident on its own.
    def resolved_incident() -> dict[str, Any] | None:
        current = slack.incident(incident["id"])
        return current if current["status"] == "resolved" else None

    resolved = wait_until(resolved_incident, timeout=90,
                          what="Alertmanager's resolved notification to resolve the incident")
    kinds = [e["kind"] for e in resolved["timeline"]]
    assert {"alert_fired", "action_succeeded", "mitigated", "alert_resolved", "resolved"} <= set(kinds)
    assert kinds.index("alert_resolved") > kinds.index("action_succeeded")
    assert resolved["alerts_firing"] == 0 and resolved["alerts_resolved"] >= 1

    # Keep it quiet while people look: the silence lands in Alertmanager, on the group's labels.
    assert "Silenced" in answer(slack, "/incident silence 30m", channel=channel)
    silenced = [e for e in slack.incident(incident["id"])["timeline"] if e["kind"] == "silenced"]
    assert len(silenced) == 1
    silence_id = silenced[0]["data"]["silence_id"]
    response = httpx.get(f"{prom.alertmanager_url}/api/v2/silence/{silence_id}", timeout=5)
    assert response.status_code == 200, response.text
    silence = response.json()
    assert silence["status"]["state"] == "active" and silence["createdBy"] == f"warroom/{PRIYA}"
    assert {m["name"]: m["value"] for m in silence["matchers"]} == {
        "alertname": incident["labels"]["alertname"], "sloth_service": "llm-gateway",
        "sloth_slo": "hallucination-rate", "sloth_severity": "page"}
