"""The alert intake through real HTTP: identity, dedupe, grouping, resolution, re-fire."""

from __future__ import annotations

import threading

import httpx

from bot.alerts.fingerprint import fingerprint
from bot.store.models import Alert, AlertGroup, Incident, OutboxItem, TimelineEvent
from tests.alerts.payloads import am_alert, am_payload, grafana_payload
from tests.conftest import READER


def test_alertmanager_notification_opens_one_incident_with_its_alerts(warroom):
    body = am_payload([am_alert("primary-70b"), am_alert("primary-8b"), am_alert("rerank-1b")])
    response = warroom.alertmanager(body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "opened"

    [incident] = warroom.incidents()
    assert incident["title"] == "llm-gateway hallucination-rate burning 14.4x"
    assert incident["status"] == "triggered"
    assert incident["severity"] == 2  # sloth_severity=page
    assert (incident["service"], incident["slo"]) == ("llm-gateway", "hallucination-rate")
    assert incident["group_key"] == body["groupKey"]
    assert (incident["alerts_firing"], incident["alerts_resolved"], incident["alerts_unlisted"]) == (3, 0, 0)
    assert incident["runbook"] == "hallucination-spike"
    full = warroom.incident(incident["id"])
    assert {a["labels"]["model"] for a in full["alerts"]} == {"primary-70b", "primary-8b", "rerank-1b"}
    assert full["alerts"][0]["ends_at"] is None  # Go's zero time means "still firing"
    assert any(link["title"] == "Source query" and "g0.tab=1" in link["url"] for link in full["links"])
    kinds = [e["kind"] for e in full["timeline"]]
    assert kinds.count("opened") == 1 and kinds.count("alert_fired") == 3


def test_same_body_twice_changes_nothing_and_queues_nothing_twice(warroom):
    body = am_payload([am_alert("primary-70b"), am_alert("primary-8b")])
    assert warroom.alertmanager(body).json()["status"] == "opened"
    counts = [warroom.count(m) for m in (Incident, Alert, TimelineEvent, OutboxItem)]
    body["notification_reason"] = "repeat interval elapsed"  # HA peers and repeats differ only here
    second = warroom.alertmanager(body)
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert [warroom.count(m) for m in (Incident, Alert, TimelineEvent, OutboxItem)] == counts


def test_duplicates_racing_at_two_processes_make_one_incident(settings):
    """Two warroom instances (own engines and pools) on one database get the same bodies at once."""
    from bot.compose import compose
    from bot.web import create_app
    from tests.conftest import Warroom
    from tests.support import ServerThread

    warrooms = [compose(settings) for _ in range(2)]
    servers = [ServerThread(create_app(w)).start() for w in warrooms]
    try:
        clients = [Warroom(w, s.url) for w, s in zip(warrooms, servers, strict=True)]
        bodies = [am_payload([am_alert(f"m{i}-{j}") for j in range(3)], group=f"svc-{i}") for i in range(8)]
        barrier = threading.Barrier(4)
        statuses: list[int] = []

        def deliver(client, body) -> None:
            barrier.wait()
            statuses.append(client.alertmanager(body).status_code)

        for body in bodies:
            threads = [threading.Thread(target=deliver, args=(clients[k % 2], body)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert set(statuses) == {200}
        assert clients[0].count(Incident) == 8
        assert clients[0].count(AlertGroup) == 8
        assert clients[0].count(Alert) == 24
        assert clients[0].count(OutboxItem) == 8  # one room set-up per incident, never two
    finally:
        for s in servers:
            s.stop()
        for w in warrooms:
            w.engine.dispose()


def test_new_alert_joins_the_open_incident_and_is_news(warroom):
    warroom.alertmanager(am_payload([am_alert("primary-70b")]))
    body = am_payload([am_alert("primary-70b"), am_alert("primary-8b")], reason="new alerts added")
    first, repeat = warroom.alertmanager(body).json(), warroom.alertmanager(body).json()
    assert (first["status"], first["new_alerts"]) == ("updated", 1)
    assert (repeat["status"], repeat["new_alerts"]) == ("duplicate", 0)
    [incident] = warroom.incidents()
    assert incident["alerts_firing"] == 2
    texts = [e["text"] for e in warroom.incident(incident["id"])["timeline"] if e["kind"] == "alerts_changed"]
    assert texts == ["1 new alert(s) firing — now 2 firing, 0 resolved"]


def test_alert_status_comes_from_each_alert_not_the_payload(warroom):
    warroom.alertmanager(am_payload([am_alert("a"), am_alert("b")]))
    partial = am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z"), am_alert("b")])
    assert partial["status"] == "firing"
    warroom.alertmanager(partial)
    [incident] = warroom.incidents()
    assert (incident["status"], incident["alerts_firing"], incident["alerts_resolved"]) == ("triggered", 1, 1)


def test_truncated_payload_never_resolves_and_shows_unlisted_alerts(warroom):
    warroom.alertmanager(am_payload([am_alert("a"), am_alert("b")], truncated=0))
    resolved_but_partial = am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z"),
                                       am_alert("b", status="resolved", ends="2026-03-14T02:20:00Z")], truncated=5)
    assert resolved_but_partial["status"] == "resolved"
    warroom.alertmanager(resolved_but_partial)
    [incident] = warroom.incidents()
    assert incident["status"] == "triggered"
    assert incident["alerts_unlisted"] == 5


def test_complete_all_resolved_payload_resolves_the_incident(warroom):
    warroom.alertmanager(am_payload([am_alert("a")]))
    warroom.alertmanager(am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z")]))
    [incident] = warroom.incidents()
    assert incident["status"] == "resolved" and incident["resolved_at"] and incident["mttr_seconds"] is not None


def test_resolved_notification_for_an_unknown_group_is_accepted_and_ignored(warroom):
    response = warroom.alertmanager(am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z")]))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert warroom.incidents() == []
    assert warroom.count(Alert) == 0


def test_group_firing_again_after_resolve_opens_a_new_incident_linked_to_the_old(warroom):
    warroom.alertmanager(am_payload([am_alert("a")]))
    warroom.alertmanager(am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z")]))
    refire = warroom.alertmanager(am_payload([am_alert("a", starts="2026-03-14T03:00:00Z")]))
    assert refire.json()["status"] == "opened"
    new, old = warroom.incidents()
    assert (new["status"], old["status"]) == ("triggered", "resolved")
    assert new["previous_incident_id"] == old["id"]
    assert any(e["kind"] == "refired" for e in warroom.incident(old["id"])["timeline"])


def test_late_copy_of_an_ended_episode_does_not_reopen(warroom):
    first = am_payload([am_alert("a")])
    warroom.alertmanager(first)
    warroom.alertmanager(am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z")]))
    assert warroom.alertmanager(first).json()["status"] == "ignored"
    assert [i["status"] for i in warroom.incidents()] == ["resolved"]


def test_fingerprint_is_computed_when_an_old_alertmanager_omits_it(warroom):
    alert = am_alert("a", with_fingerprint=False)
    warroom.alertmanager(am_payload([alert]))
    [incident] = warroom.incidents()
    [stored] = warroom.incident(incident["id"])["alerts"]
    assert stored["fingerprint"] == fingerprint(alert["labels"])
    assert fingerprint({"alertname": "alert1", "lbl1": "val1"}) == "fac0861a85de433a"


def test_grafana_notification_keeps_its_links_and_maps_severity(warroom):
    response = warroom.post("/webhooks/grafana", grafana_payload())
    assert response.status_code == 200, response.text
    [incident] = warroom.incidents()
    assert incident["severity"] == 2 and incident["source"] == "grafana" and not incident["monitoring_gap"]
    titles = {link["title"] for link in incident["links"]}
    assert {"Dashboard", "Panel", "Silence"} <= titles


def test_grafana_nodata_alert_is_accepted_as_a_monitoring_gap(warroom):
    body = grafana_payload(values=None, annotations={"grafana_state_reason": "NoData", "summary": "no data"})
    assert warroom.post("/webhooks/grafana", body).status_code == 200
    [incident] = warroom.incidents()
    assert incident["monitoring_gap"] is True
    assert any(e["kind"] == "monitoring_gap" for e in warroom.incident(incident["id"])["timeline"])


def test_sequence_fire_duplicate_add_repeat_partial_all_resolved_refire(warroom):
    t1 = "2026-03-14T02:06:00Z"
    steps = [
        (am_payload([am_alert("a", starts=t1)]), "opened", ("triggered", 1, 0)),
        (am_payload([am_alert("a", starts=t1)]), "duplicate", ("triggered", 1, 0)),
        (am_payload([am_alert("a", starts=t1), am_alert("b", starts=t1)]), "updated", ("triggered", 2, 0)),
        (am_payload([am_alert("a", starts=t1), am_alert("b", starts=t1)], reason="repeat interval elapsed"),
         "duplicate",
         ("triggered", 2, 0)),
        (am_payload([am_alert("a", starts=t1, status="resolved", ends="2026-03-14T02:15:00Z"), am_alert("b",
                                                                                                        starts=t1)]),
         "updated", ("triggered", 1, 1)),
        (am_payload([am_alert("b", starts=t1, status="resolved", ends="2026-03-14T02:20:00Z")]), "updated",
         ("resolved", 0, 2)),
    ]
    for body, outcome, (status, firing, resolved) in steps:
        response = warroom.alertmanager(body)
        assert response.json()["status"] == outcome, (outcome, response.json())
        [incident] = warroom.incidents()
        assert (incident["status"], incident["alerts_firing"], incident["alerts_resolved"]) == (status, firing,
                                                                                                resolved)
    assert warroom.alertmanager(am_payload([am_alert("a", starts="2026-03-14T04:00:00Z")])).json()["status"] == "opened"
    assert [i["status"] for i in warroom.incidents()] == ["triggered", "resolved"]


def test_list_filters_by_status_and_rejects_unknown_status(warroom):
    warroom.alertmanager(am_payload([am_alert("a")], group="one"))
    warroom.alertmanager(am_payload([am_alert("a")], group="two"))
    warroom.alertmanager(am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z")], group="two"))
    assert [i["status"] for i in warroom.incidents(status="resolved")] == ["resolved"]
    assert len(warroom.incidents(status="open")) == 1
    bad = warroom.http.get("/api/incidents", params={"status": "burning"}, headers=READER)
    assert bad.status_code == 400 and "unknown status" in bad.json()["error"]
    assert warroom.http.get("/api/incidents/999", headers=READER).status_code == 404


def test_metrics_count_alerts_by_source_and_outcome(warroom):
    warroom.alertmanager(am_payload([am_alert("a")]))
    warroom.post("/webhooks/alertmanager", content=b"{")
    text = warroom.http.get("/metrics").text
    assert 'warroom_alerts_received_total{outcome="opened",source="alertmanager"} 1.0' in text
    assert 'warroom_alerts_received_total{outcome="rejected",source="alertmanager"} 1.0' in text
    assert "warroom_open_incidents 1.0" in text
    assert "warroom_webhook_duration_seconds_bucket" in text


def test_healthz_checks_the_database(warroom):
    assert warroom.http.get("/healthz").json() == {"status": "ok", "database": "ok", "otlp_workers": "in-process"}
    assert isinstance(warroom.http, httpx.Client)


def test_a_service_label_longer_than_its_column_is_cut_not_a_500(warroom):
    body = am_payload([am_alert("a", service="s" * 300, slo="o" * 250)])
    response = warroom.alertmanager(body)
    assert response.status_code == 200, response.text
    [incident] = warroom.incidents()
    assert (incident["service"], incident["slo"]) == ("s" * 200, "o" * 200)


def test_a_new_episode_leaves_the_rows_of_earlier_episodes_alone(warroom):
    from sqlalchemy import select

    from bot.store.db import transaction

    warroom.alertmanager(am_payload([am_alert("a", starts="2026-03-14T02:06:00Z")]))
    warroom.alertmanager(am_payload([am_alert("a", starts="2026-03-14T02:06:00Z", status="resolved",
                                              ends="2026-03-14T02:20:00Z")]))

    def rows() -> list[tuple]:
        with transaction(warroom.runtime.engine) as session:
            return session.execute(select(Alert.starts_at, Alert.status, Alert.last_seen_at).order_by(Alert.id)).all()

    [(_, status, seen_before)] = rows()
    refire = am_payload([am_alert("a", starts="2026-03-14T03:00:00Z")])
    assert warroom.alertmanager(refire).json()["status"] == "opened"
    assert warroom.alertmanager(refire).json()["status"] == "duplicate"
    old, new = rows()
    assert (status, old[1], old[2]) == ("resolved", "resolved", seen_before)
    assert new[1] == "firing"


def test_changed_annotations_update_the_alert_and_keep_its_end(warroom):
    ends = "2026-03-14T02:20:00Z"
    warroom.alertmanager(am_payload([am_alert("a"), am_alert("b")]))
    warroom.alertmanager(am_payload([am_alert("a", status="resolved", ends=ends), am_alert("b")]))
    edited = am_payload([am_alert("a", status="resolved", ends=ends, annotations={"summary": "edited"}), am_alert("b")])
    assert warroom.alertmanager(edited).json()["status"] == "duplicate"
    [incident] = warroom.incidents()
    alerts = {a["labels"]["model"]: a for a in warroom.incident(incident["id"])["alerts"]}
    assert (alerts["a"]["status"], alerts["a"]["ends_at"], alerts["a"]["annotations"]) == (
        "resolved", ends, {"summary": "edited"})
    assert alerts["b"]["status"] == "firing"
