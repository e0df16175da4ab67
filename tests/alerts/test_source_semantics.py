"""What Alertmanager's and Grafana's payloads mean, as their senders mean it: monitoring gaps,
test notifications, replays of old notifications and the time an alert really ended."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.store.db import transaction
from bot.store.models import AlertGroup, Incident, OutboxItem
from tests.alerts.payloads import (
    am_alert,
    am_payload,
    grafana_alert,
    grafana_contact_point_test,
    grafana_message,
)

RULE = {"alertname": "LLM schema-valid rate", "grafana_folder": "LLM", "service": "llm-gateway",
        "slo": "schema-valid-rate", "severity": "critical"}


def grafana(warroom, body):
    response = warroom.post("/webhooks/grafana", body)
    assert response.status_code == 200, response.text
    return response.json()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def notices(warroom) -> list[str]:
    with transaction(warroom.runtime.engine) as session:
        rows = session.execute(select(OutboxItem).where(OutboxItem.kind == "slack.notice")).scalars()
        return [row.payload["text"] for row in rows]


def test_an_ordinary_grafana_alert_with_values_null_is_not_a_monitoring_gap(warroom):
    assert grafana(warroom, grafana_message([grafana_alert(RULE, values=None)]))["status"] == "opened"
    [incident] = warroom.incidents()
    assert incident["monitoring_gap"] is False
    full = warroom.incident(incident["id"])
    assert not any(e["kind"] == "monitoring_gap" for e in full["timeline"])
    assert full["alerts"][0]["monitoring_gap"] is False


def test_a_missing_series_resolution_is_not_a_monitoring_gap(warroom):
    grafana(warroom, grafana_message([grafana_alert(RULE, values={"B": 0.91, "C": 1})]))
    gone = grafana_alert(RULE, status="resolved", values=None, ends="2026-03-14T02:30:00Z",
                         annotations={"grafana_state_reason": "MissingSeries"})
    assert grafana(warroom, grafana_message([gone]))["status"] == "updated"
    [incident] = warroom.incidents()
    assert (incident["status"], incident["monitoring_gap"]) == ("resolved", False)


def test_datasource_nodata_and_error_alerts_and_their_state_reasons_are_monitoring_gaps(warroom):
    nodata = grafana_alert({"alertname": "DatasourceNoData", "datasource_uid": "prom-1", "ref_id": "A",
                            "rulename": "LLM schema-valid rate", "grafana_folder": "LLM"}, values=None)
    grafana(warroom, grafana_message([nodata]))
    error = grafana_alert({**RULE, "model": "primary-70b"}, values=None,
                          annotations={"grafana_state_reason": "Error", "Error": "context deadline exceeded"})
    grafana(warroom, grafana_message([error], group_labels={"alertname": "LLM schema-valid rate", "x": "1"}))
    assert [i["monitoring_gap"] for i in warroom.incidents()] == [True, True]


def test_a_grafana_contact_point_test_is_answered_and_announced_but_opens_nothing(warroom):
    body = grafana_contact_point_test()
    answer = grafana(warroom, body)
    assert (answer["status"], answer["incident_id"]) == ("test", None)
    assert warroom.incidents() == [] and warroom.count(AlertGroup) == 0
    assert grafana(warroom, body)["status"] == "test"  # a retried copy: still one line
    assert notices(warroom) == [
        "Test notification received from Grafana (receiver warroom): 1 alert(s), no incident opened."]


def test_a_custom_grafana_test_alert_is_recognised_by_its_group_key(warroom):
    body = grafana_contact_point_test()
    body["alerts"][0]["labels"] = body["commonLabels"] = {"alertname": "Checkout latency", "team": "payments"}
    assert grafana(warroom, body)["status"] == "test"
    assert warroom.incidents() == []


def test_an_amtool_test_alert_through_alertmanager_opens_nothing(warroom):
    test_alert = am_alert(extra_labels={"alertname": "TestAlert"}, annotations={"summary": "amtool test"})
    body = am_payload([test_alert])
    body["receiver"] = "llm\\.slo-bot"  # Alertmanager passes receiver names through regexp.QuoteMeta
    response = warroom.alertmanager(body)
    assert response.status_code == 200 and response.json()["status"] == "test"
    assert warroom.incidents() == []
    assert notices(warroom) == [
        "Test notification received from Alertmanager (receiver llm.slo-bot): 1 alert(s), no incident opened."]


def test_a_real_alert_next_to_a_test_alert_is_no_test(warroom):
    body = am_payload([am_alert("a", extra_labels={"alertname": "TestAlert"}), am_alert("b")])
    assert warroom.alertmanager(body).json()["status"] == "opened"
    assert notices(warroom) == []


def test_a_replayed_old_notification_names_its_own_incident_not_the_groups_current_one(warroom):
    first_fire = am_payload([am_alert("a", starts="2026-03-14T02:06:00Z")])
    first_end = am_payload([am_alert("a", starts="2026-03-14T02:06:00Z", status="resolved",
                                     ends="2026-03-14T02:20:00Z")])
    first = warroom.alertmanager(first_fire).json()["incident_id"]
    warroom.alertmanager(first_end)
    second = warroom.alertmanager(am_payload([am_alert("a", starts="2026-03-14T03:00:00Z")])).json()["incident_id"]
    assert second != first

    for replay in (first_end, first_fire):  # while the second is open
        answer = warroom.alertmanager(replay).json()
        assert answer["incident_id"] == first, answer
    warroom.alertmanager(am_payload([am_alert("a", starts="2026-03-14T03:00:00Z", status="resolved",
                                              ends="2026-03-14T03:20:00Z")]))
    assert warroom.alertmanager(first_fire).json() == {  # after both ended
        "status": "ignored", "incident_id": first, "alerts": 1, "new_alerts": 0, "resolved_alerts": 0}
    assert [i["status"] for i in warroom.incidents()] == ["resolved", "resolved"]


def test_a_replayed_grafana_notification_names_its_own_incident(warroom):
    first_fire = grafana_message([grafana_alert(RULE, values={"B": 0.91})])
    first = grafana(warroom, first_fire)["incident_id"]
    grafana(warroom, grafana_message([grafana_alert(RULE, status="resolved", ends="2026-03-14T02:30:00Z",
                                                    values={"B": 0.995})]))
    second = grafana(warroom, grafana_message([grafana_alert(RULE, starts="2026-03-14T03:00:00Z",
                                                             values={"B": 0.9})]))["incident_id"]
    assert second != first
    assert grafana(warroom, first_fire)["incident_id"] == first


def test_an_alertmanager_incident_resolves_at_the_alerts_end_not_when_the_notification_came(warroom):
    started = datetime.now(timezone.utc) - timedelta(minutes=3)
    warroom.alertmanager(am_payload([am_alert("a", starts=rfc3339(started)), am_alert("b", starts=rfc3339(started))]))
    a_ended = datetime.now(timezone.utc)
    warroom.alertmanager(am_payload([am_alert("a", starts=rfc3339(started), status="resolved", ends=rfc3339(a_ended)),
                                     am_alert("b", starts=rfc3339(started))]))
    b_ended = datetime.now(timezone.utc)
    # group_interval later, the group's last notification
    warroom.alertmanager(am_payload([am_alert("b", starts=rfc3339(started), status="resolved", ends=rfc3339(b_ended))],
                                    reason="all alerts resolved"))
    [incident] = warroom.incidents()
    assert incident["resolved_at"] == rfc3339(b_ended)
    opened = datetime.fromisoformat(incident["opened_at"].replace("Z", "+00:00"))
    assert incident["mttr_seconds"] == (b_ended - opened).total_seconds()
    [resolved] = [e for e in warroom.incident(incident["id"])["timeline"] if e["kind"] == "resolved"]
    assert resolved["at"] == rfc3339(b_ended)


def test_a_grafana_incident_resolves_at_the_alerts_end(warroom):
    started = datetime.now(timezone.utc) - timedelta(minutes=2)
    grafana(warroom, grafana_message([grafana_alert(RULE, starts=rfc3339(started), values={"B": 0.91})]))
    ended = datetime.now(timezone.utc)
    grafana(warroom, grafana_message([grafana_alert(RULE, status="resolved", starts=rfc3339(started),
                                                    ends=rfc3339(ended), values={"B": 0.995})]))
    [incident] = warroom.incidents()
    assert incident["resolved_at"] == rfc3339(ended)


def test_an_end_before_the_incident_opened_gives_a_zero_mttr_not_a_negative_one(warroom):
    warroom.alertmanager(am_payload([am_alert("a")]))  # 2026-03-14: long before this test runs
    warroom.alertmanager(am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z")]))
    [incident] = warroom.incidents()
    assert incident["mttr_seconds"] == 0 and incident["resolved_at"] == incident["opened_at"]


def test_a_truncated_group_without_alertmanager_api_says_it_cannot_resolve_by_itself(warroom):
    from bot.slack.views import card_view

    warroom.alertmanager(am_payload([am_alert("a"), am_alert("b")], truncated=3))
    [incident] = warroom.incidents()
    lines = [e["text"] for e in warroom.incident(incident["id"])["timeline"] if e["kind"] == "cannot_self_resolve"]
    assert len(lines) == 1 and "cannot resolve by itself" in lines[0] and "WARROOM_ALERTMANAGER_URL" in lines[0]
    with transaction(warroom.runtime.engine) as session:
        view = card_view(session, session.get(Incident, incident["id"]), None)
    assert any("cannot resolve by itself" in warning for warning in view.warnings)


def test_a_truncated_grafana_group_says_it_cannot_resolve_by_itself(warroom):
    body = grafana_message([grafana_alert({**RULE, "model": m}, values={"B": 0.9}) for m in ("a", "b")])
    body["truncatedAlerts"] = 4
    grafana(warroom, body)
    [incident] = warroom.incidents()
    [line] = [e["text"] for e in warroom.incident(incident["id"])["timeline"] if e["kind"] == "cannot_self_resolve"]
    assert line.startswith("This incident cannot resolve by itself: Grafana truncated the group (4 alert(s)")
