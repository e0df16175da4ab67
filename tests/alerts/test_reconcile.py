"""Truncated groups resolve once Alertmanager's API shows none of their alerts active.

Alertmanager's API is served by `httpx.MockTransport` here, answering as ``GET /api/v2/alerts``
does; tests/alerts/test_reconcile_real_am.py runs the same story against the real Alertmanager.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.alerts.reconcile import group_filters, reconcile_truncated, route_matchers
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import make_settings, serve_warroom

AM = "http://alertmanager.test:9093"


class FakeAlertmanager:
    """``GET /api/v2/alerts``: the alerts held, filtered by equality matchers as Alertmanager does."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []
        self.status = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, text="cluster not ready")
        assert request.url.path == "/api/v2/alerts"
        wanted = [f.split("=", 1) for f in request.url.params.get_list("filter") if "=~" not in f and "!" not in f]
        matching = [a for a in self.alerts if all(a["labels"].get(k) == v.strip('"') for k, v in wanted)]
        return httpx.Response(200, json=matching)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def held(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as Alertmanager's API lists it (``gettableAlert``)."""
    return {"labels": alert["labels"], "annotations": alert["annotations"], "startsAt": alert["startsAt"],
            "endsAt": "2026-03-14T03:06:00Z", "fingerprint": alert["fingerprint"], "receivers": [{"name": "warroom"}],
            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}, "updatedAt": alert["startsAt"]}


def truncated_incident(warroom) -> tuple[int, list[dict[str, Any]]]:
    alerts = [am_alert(f"m{i}") for i in range(5)]
    warroom.alertmanager(am_payload(alerts[:2], truncated=3, group="llm-gateway"))
    ends = "2026-03-14T02:20:00Z"
    last = am_payload([am_alert(f"m{i}", status="resolved", ends=ends) for i in range(2)], truncated=3,
                      group="llm-gateway", reason="all alerts resolved")
    assert warroom.alertmanager(last).json()["status"] == "updated"
    [incident] = warroom.incidents()
    assert (incident["status"], incident["alerts_unlisted"]) == ("triggered", 3)  # the truncated end resolves nothing
    return incident["id"], alerts


def test_route_key_and_group_labels_become_alertmanager_filters():
    key = '{}/{sloth_severity=~"page|ticket"}:{alertname="LLMSLOErrorBudgetBurn", sloth_service="llm-gateway"}'
    assert group_filters(key, {"alertname": "LLMSLOErrorBudgetBurn", "sloth_service": "llm-gateway"}) == [
        'alertname="LLMSLOErrorBudgetBurn"', 'sloth_service="llm-gateway"', 'sloth_severity=~"page|ticket"']
    assert route_matchers('{}/{team="ml",severity!="info"}/{env=~"prod|staging"}') == [
        'team="ml"', 'severity!="info"', 'env=~"prod|staging"']
    assert route_matchers("{}/{not a matcher}") == []  # unreadable: the group labels alone, a broader filter
    assert group_filters("{}:{}", {}) == []


def test_a_truncated_incident_resolves_when_alertmanager_holds_none_of_its_alerts(settings):
    with serve_warroom(make_settings(settings.database_url, WARROOM_ALERTMANAGER_URL=AM)) as warroom:
        incident_id, alerts = truncated_incident(warroom)
        am = FakeAlertmanager()
        am.alerts = [held(a) for a in alerts[2:]]  # the three never listed still fire
        with am.client() as client:
            assert reconcile_truncated(warroom.runtime.engine, client, AM) == 0
            assert warroom.incident(incident_id)["status"] == "triggered"
            filters = am.requests[0].url.params.get_list("filter")
            assert 'sloth_severity=~"page|ticket"' in filters and 'alertname="LLMSLOErrorBudgetBurn"' in filters

            am.alerts = []
            assert reconcile_truncated(warroom.runtime.engine, client, AM) == 1
        incident = warroom.incident(incident_id)
        assert incident["status"] == "resolved" and incident["alerts_firing"] == 0
        kinds = [e["kind"] for e in incident["timeline"]]
        assert "reconciled" in kinds and "resolved" in kinds and "cannot_self_resolve" not in kinds


def test_an_alertmanager_that_fails_leaves_the_incident_open_for_the_next_tick(settings):
    with serve_warroom(make_settings(settings.database_url, WARROOM_ALERTMANAGER_URL=AM)) as warroom:
        incident_id, _ = truncated_incident(warroom)
        am = FakeAlertmanager()
        am.status = 503
        with am.client() as client:
            assert reconcile_truncated(warroom.runtime.engine, client, AM) == 0
            assert warroom.incident(incident_id)["status"] == "triggered"
            am.status = 200
            assert reconcile_truncated(warroom.runtime.engine, client, AM) == 1


def test_complete_groups_are_not_asked_about(warroom):
    warroom.alertmanager(am_payload([am_alert("a")]))
    am = FakeAlertmanager()
    with am.client() as client:
        assert reconcile_truncated(warroom.runtime.engine, client, AM) == 0
    assert am.requests == [] and warroom.incidents()[0]["status"] == "triggered"
