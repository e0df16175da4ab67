"""The guard: after a mitigating action, warroom checks the SLI and says whether it worked."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.slo import load_slos
from tests.alerts.payloads import am_alert, am_payload
from tests.automation.conftest import AUTH, register_bundles, runs
from tests.conftest import ROOT
from tests.support import wait_for

AUTO = "warroom (auto)"
_ids = itertools.count(1)


def send_traces(harness, count: int, bad: int, *, at: datetime | None = None, spread: timedelta = timedelta(0)) -> None:
    at = at or datetime.now(UTC)
    events = [{"request_id": f"guard-{next(_ids)}-{i}", "service": "llm-gateway", "model": "primary-70b",
               "timestamp": (at - spread * (i / max(count, 1))).isoformat(), "question": "q", "output": "a",
               "hallucination_score": 0.9 if i < bad else 0.02, "user_id": f"user-{i % 5}"} for i in range(count)]
    response = harness.http.post("/api/traces", json=events, headers=AUTH)
    assert response.status_code == 200 and response.json()["accepted"] == count, response.text


def events(harness, incident_id: int, kind: str) -> list[dict]:
    return [e for e in harness.incident(incident_id)["timeline"] if e["kind"] == kind]


@pytest.fixture
def guarded(start_warroom):
    def start(**overrides):
        values = {"WARROOM_GUARD_CHECK_SECONDS": 0.2, "WARROOM_GUARD_MIN_REQUESTS": 5, **overrides}
        return start_warroom(slos=load_slos(ROOT / "examples" / "slos.yaml"), **values)
    return start


def test_the_guard_mitigates_with_evidence_when_the_ratio_drops(guarded, llm_service):
    slack = guarded(WARROOM_GUARD_SECONDS=60)
    deployed = (datetime.now(UTC) - timedelta(minutes=17, seconds=20)).isoformat()
    assert slack.http.post("/api/bundles", headers=AUTH, json={
        "service": "llm-gateway", "version": "v42", "components": {"prompt_version": "answer-v42"},
        "deployed_at": deployed, "deployed_by": "deploy-bot"}).status_code == 201
    send_traces(slack, 20, 8, at=datetime.now(UTC) - timedelta(seconds=1), spread=timedelta(seconds=50))
    incident_id = slack.fire(am_payload([am_alert("primary-70b",
                                                  starts=(datetime.now(UTC) - timedelta(seconds=60)).isoformat())]))
    channel = slack.room(incident_id)
    started = wait_for(lambda: events(slack, incident_id, "guard_started"), timeout=10, what="the guard")
    assert "before: 40.0 % bad, objective 99.5 %; from traces" in started[0]["text"]
    assert slack.incident(incident_id)["status"] == "triggered"  # not mitigated until the SLI says so

    send_traces(slack, 10, 0)
    improved = wait_for(lambda: events(slack, incident_id, "guard_improved"), timeout=10, what="the verdict")
    assert "hallucination-rate error ratio 40.0 % → 0.0 % within" in improved[0]["text"]
    assert "10 requests, from traces" in improved[0]["text"]
    incident = slack.incident(incident_id)
    assert incident["status"] == "mitigated"
    assert next(e for e in incident["timeline"] if e["kind"] == "mitigated")["actor"] == AUTO
    slack.settle()
    assert any("Guard: improved" in m.text for m in slack.messages(channel))
    card = str(slack.card(channel).blocks)
    assert "Traffic since it started: 30 requests, 26.7 % failing, 5 users affected (from traces" in card
    assert "user-1" not in card
    assert "guard: improved — hallucination-rate error ratio 40.0 % → 0.0 %" in card
    metrics = slack.http.get("/metrics").text
    assert "warroom_auto_action_verified_seconds_count 1.0" in metrics
    assert 'warroom_guard_verdict_seconds_count{verdict="improved"} 1.0' in metrics

    draft = postmortem_of(slack, incident_id)
    assert "Time to detect: 17 m" in draft and "| `deploy` | bundle v42 | deploy-bot |" in draft
    assert "Automatic actions by warroom: 1; alert received → first automatic action verified:" in draft
    assert "Guard after `fallback` (run 1): improved" in draft and "40.0 % → 0.0 %" in draft
    assert "| warroom (auto) |" in draft  # the actions table says whose run it was
    assert "Requests served: 30\n- Requests affected: 8 (26.7 % failing)" in draft
    assert "Users affected: 5" in draft and "user-1" not in draft
    assert "failing by hallucination-rate SLO rule hallucination_score" in draft
    assert "(its 99.5 % objective over 30d; from traces: 30 requests of llm-gateway in the incident window" in draft
    budget = float(draft.split("Error budget consumed: ")[1].split(" %")[0])
    assert 0 < budget < 5  # a minute of a 26.7 % failure rate, against 0.5 % of 30 days
    # The card shows the same figure, from the same computation, and where it came from.
    on_card = float(card.split("Error budget consumed since it started: ")[1].split(" %")[0])
    assert on_card == pytest.approx(budget, abs=0.05)
    assert "of hallucination-rate's 30d budget (its 99.5 % objective over 30d; from traces: 30 requests" in card


def postmortem_of(harness, incident_id: int) -> str:
    from bot.postmortem.assemble import build_context
    from bot.postmortem.render import render_postmortem
    from bot.store.db import transaction
    with transaction(harness.runtime.engine) as session:
        return render_postmortem(build_context(session, incident_id, slos=harness.runtime.slos))


def test_not_improved_by_the_deadline_pages_again_undoes_and_proposes_the_next_action(guarded, llm_service):
    slack = guarded(WARROOM_GUARD_SECONDS=2)
    register_bundles(slack, v42_minutes_ago=5 * 60)  # too long ago for the open-time proposal
    send_traces(slack, 20, 8, at=datetime.now(UTC) - timedelta(seconds=1), spread=timedelta(seconds=50))
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    wait_for(lambda: events(slack, incident_id, "guard_started"), timeout=10, what="the guard")
    send_traces(slack, 10, 9)

    verdict = wait_for(lambda: events(slack, incident_id, "guard_not_improved"), timeout=10, what="the verdict")
    assert "hallucination-rate error ratio 40.0 % → 90.0 %" in verdict[0]["text"]
    wait_for(lambda: llm_service.state()["route"] == "primary-70b", timeout=10, what="the automatic undo")
    slack.settle()
    fallback, undo, rollback = runs(slack, incident_id)
    assert (undo.undo_of, undo.requested_by, undo.status) == (fallback.id, AUTO, "succeeded")
    assert (rollback.playbook, rollback.status, rollback.params) == ("rollback", "awaiting_approval", {"bundle": "v41"})
    said = " ".join(m.text for m in slack.messages(channel))
    assert "Paging the owners again" in said and "@ml-oncall" in said
    assert f"warroom proposes run #{rollback.id} `rollback bundle=v41` next" in said
    assert slack.incident(incident_id)["status"] == "triggered"


def test_a_person_s_fallback_is_guarded_too_and_never_undone_by_warroom(guarded, llm_service):
    from tests.slack.conftest import PRIYA
    slack = guarded(WARROOM_GUARD_SECONDS=2, WARROOM_AUTOMATION=False)
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    slack.command("/incident fallback", user=PRIYA, channel=channel)
    card = wait_for(lambda: next((m for m in slack.messages(channel) if m.blocks and "*Run #1:" in str(m.blocks)),
                                 None),
                    what="the run card")
    slack.emu.click(channel, card.ts, "action.confirm", "1", user=PRIYA)
    wait_for(lambda: events(slack, incident_id, "guard_not_improved"), timeout=15, what="the verdict")
    assert "no requests to judge by" in events(slack, incident_id, "guard_not_improved")[0]["text"]
    assert [r.playbook for r in runs(slack, incident_id)] == ["fallback"]
    assert llm_service.state()["route"] == "safe-fallback-8b"


def test_with_prometheus_configured_the_guard_reads_the_slo_file_s_query():
    import httpx

    from bot.automation.guard import PrometheusSLI
    from bot.errors import ExternalError

    asked: list[httpx.Request] = []

    def prometheus(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if len(asked) > 1:
            return httpx.Response(503, text="overloaded")
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1700000000, "0.004"]}]}})

    slo = next(s for s in load_slos(ROOT / "examples" / "slos.yaml") if s.name == "hallucination-rate")
    source = PrometheusSLI("http://prometheus.test:9090/", httpx.Client(transport=httpx.MockTransport(prometheus)))
    end = datetime(2026, 3, 14, 2, 10, tzinfo=UTC)
    reading = source.read(None, slo, end - timedelta(seconds=90), end)  # type: ignore[arg-type]
    assert (reading.ratio, reading.requests) == (0.004, None)
    query = asked[0].url.params["query"]
    assert 'outcome="hallucination"}[90s]' in query and asked[0].url.path == "/api/v1/query"
    assert float(asked[0].url.params["time"]) == end.timestamp()
    with pytest.raises(ExternalError, match=re.escape("Prometheus at http://prometheus.test:9090 did not answer")):
        source.read(None, slo, end - timedelta(seconds=90), end)  # type: ignore[arg-type]
