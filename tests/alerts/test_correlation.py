"""Correlation: one cause, one room. Alert groups that share the correlation key (default
``service``) join the open incident instead of each opening one (`bot.alerts.correlation`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.alerts.intake import ingest
from bot.alerts.normalize import Notification, from_alertmanager
from bot.clock import utcnow
from bot.runtime import Runtime
from bot.store.db import transaction
from bot.store.models import Incident
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import Warroom, make_settings, serve_warroom

RESOLVED = {"status": "resolved", "ends": "2026-03-14T02:20:00Z"}
DEFAULTS = {"WARROOM_CORRELATE": "service", "WARROOM_STORM_INCIDENTS": 0, "WARROOM_STORM_SERVICE_INCIDENTS": 0}


def slo_group(slo: str, *, severity: str = "page", service: str = "llm-gateway", status: str = "firing",
              models: tuple[str, ...] = ("primary-70b",)) -> dict:
    """One Alertmanager group: an SLO's page or ticket alerts, as Sloth's rules group them."""
    extra = RESOLVED if status == "resolved" else {}
    alerts = [am_alert(m, slo=slo, service=service, extra_labels={"sloth_severity": severity}, **extra)
              for m in models]
    return am_payload(alerts, group=f"{service}-{slo}-{severity}")


@pytest.fixture
def correlating(database_url: str) -> Iterator[Warroom]:
    with serve_warroom(make_settings(database_url, **DEFAULTS)) as running:
        yield running


def test_groups_of_one_service_share_one_incident_and_its_highest_severity(correlating):
    first = correlating.alertmanager(slo_group("schema-valid-rate", severity="ticket")).json()
    second = correlating.alertmanager(slo_group("hallucination-rate", severity="page")).json()
    third = correlating.alertmanager(slo_group("tool-call-success", severity="ticket")).json()

    assert (first["status"], second["status"], third["status"]) == ("opened", "joined", "joined")
    assert first["incident_id"] == second["incident_id"] == third["incident_id"]
    [incident] = correlating.incidents()
    assert incident["severity"] == 2  # the page joined a ticket's incident: SEV3 became SEV2
    full = correlating.incident(incident["id"])
    assert [g["name"] for g in full["groups"]] == [
        "schema-valid-rate (ticket)", "hallucination-rate (page)", "tool-call-success (ticket)"]
    joined = [e["text"] for e in full["timeline"] if e["kind"] == "group_joined"]
    assert joined == ["Alert group joined: hallucination-rate (page) from Alertmanager, 1 alert(s) firing",
                      "Alert group joined: tool-call-success (ticket) from Alertmanager, 1 alert(s) firing"]


def test_page_and_ticket_of_one_slo_join_even_when_the_key_names_severity(database_url):
    settings = make_settings(database_url, **{**DEFAULTS, "WARROOM_CORRELATE": "service,slo,sloth_severity"})
    with serve_warroom(settings) as running:
        running.alertmanager(slo_group("hallucination-rate", severity="page"))
        assert running.alertmanager(slo_group("hallucination-rate", severity="ticket")).json()["status"] == "joined"
        assert running.alertmanager(slo_group("schema-valid-rate")).json()["status"] == "opened"  # another SLO


def test_another_service_opens_its_own_incident(correlating):
    correlating.alertmanager(slo_group("hallucination-rate"))
    assert correlating.alertmanager(slo_group("hallucination-rate", service="search")).json()["status"] == "opened"
    assert len(correlating.incidents()) == 2


def test_the_incident_resolves_when_its_last_group_resolves(correlating):
    incident_id = correlating.alertmanager(slo_group("hallucination-rate")).json()["incident_id"]
    correlating.alertmanager(slo_group("schema-valid-rate", severity="ticket"))

    correlating.alertmanager(slo_group("hallucination-rate", status="resolved"))
    full = correlating.incident(incident_id)
    assert full["status"] == "triggered"  # the schema group still fires
    assert [e["text"] for e in full["timeline"] if e["kind"] == "group_resolved"] == [
        "Alert group resolved: hallucination-rate (page); the incident stays open while its other groups fire"]

    correlating.alertmanager(slo_group("schema-valid-rate", severity="ticket", status="resolved"))
    assert correlating.incident(incident_id)["status"] == "resolved"


def test_a_truncated_group_keeps_the_incident_open_after_the_others_resolve(correlating):
    incident_id = correlating.alertmanager(slo_group("hallucination-rate")).json()["incident_id"]
    truncated = slo_group("schema-valid-rate", severity="ticket")
    truncated["truncatedAlerts"] = 3
    correlating.alertmanager(truncated)
    correlating.alertmanager(slo_group("hallucination-rate", status="resolved"))
    # The truncated group may hide alerts that still fire: the incident cannot end on the other's word.
    assert correlating.incident(incident_id)["status"] == "triggered"


def test_groups_racing_at_two_processes_join_one_incident(database_url):
    settings = make_settings(database_url, **DEFAULTS)
    with serve_warroom(settings) as one, serve_warroom(settings) as two:
        bodies = [slo_group(f"slo-{i}", severity="page" if i % 2 else "ticket") for i in range(8)]
        barrier = threading.Barrier(2)
        answers: list[dict] = []

        def send(client: Warroom, mine: list[dict]) -> None:
            barrier.wait()
            answers.extend(client.alertmanager(body).json() for body in mine)

        threads = [threading.Thread(target=send, args=(client, bodies[i::2])) for i, client in enumerate((one, two))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(a["status"] for a in answers) == ["joined"] * 7 + ["opened"]
        [incident] = one.incidents()
        assert len(one.incident(incident["id"])["groups"]) == 8


# The window, by the intake's own clock (``now``): a later group joins while it lasts, and each
# group that joins extends it.

@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    runtime = Runtime.build(make_settings(database_url, **DEFAULTS, WARROOM_CORRELATION_WINDOW_MINUTES=30))
    yield runtime
    runtime.engine.dispose()


def notification(body: dict) -> Notification:
    return from_alertmanager(json.loads(json.dumps(body)), received_at=utcnow())


def test_the_window_extends_with_each_group_and_a_later_group_opens_its_own(runtime):
    start = utcnow()
    rules = runtime.intake_rules

    def deliver(slo: str, minutes: int) -> str:
        with transaction(runtime.engine) as session:
            return ingest(session, notification(slo_group(slo)), rules, now=start + timedelta(minutes=minutes)).outcome

    assert deliver("a", 0) == "opened"
    assert deliver("b", 25) == "joined"
    assert deliver("c", 50) == "joined"  # 25 min after b joined: the window runs from the last group
    assert deliver("d", 81) == "opened"  # 31 min after c
    with transaction(runtime.engine) as session:
        assert len(session.execute(select(Incident)).all()) == 2


def test_a_group_that_fires_again_after_its_incident_ended_opens_a_new_one(correlating):
    first = correlating.alertmanager(slo_group("hallucination-rate")).json()["incident_id"]
    correlating.alertmanager(slo_group("hallucination-rate", status="resolved"))
    again = slo_group("hallucination-rate")
    again["alerts"][0]["startsAt"] = "2026-03-14T03:00:00Z"
    answer = correlating.alertmanager(again).json()
    assert answer["status"] == "opened" and answer["incident_id"] != first
    assert correlating.incident(answer["incident_id"])["previous_incident_id"] == first


def test_a_runbook_s_own_key_overrides_the_setting(database_url, tmp_path):
    import shutil

    from tests.conftest import ROOT

    folder = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", folder)
    own = folder / "schema-valid-drop.md"
    own.write_text(own.read_text().replace("\nowners:", "\ncorrelate: []  # its own room, always\nowners:", 1))
    settings = make_settings(database_url, **DEFAULTS, WARROOM_RUNBOOKS_DIR=folder)
    with serve_warroom(settings) as running:
        running.alertmanager(slo_group("hallucination-rate"))
        assert running.alertmanager(slo_group("schema-valid-rate", severity="ticket")).json()["status"] == "opened"
        assert running.alertmanager(slo_group("tool-call-success")).json()["status"] == "joined"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a connection cut by the server
def test_a_connection_cut_in_the_middle_of_a_join_stores_nothing_and_the_redelivery_joins_once(correlating):
    """The joining group's transaction is cut while it waits for the correlation key's lock (its
    backend terminated, as a failover or a restarted database does): Alertmanager is told to retry
    (503) and none of the join is stored; the retry then joins exactly once."""
    import psycopg
    from sqlalchemy import text

    from tests.support import wait_for

    incident_id = correlating.alertmanager(slo_group("hallucination-rate")).json()["incident_id"]
    url = correlating.runtime.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    answers: list = []
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as admin:
        holder.execute("SELECT id FROM correlation FOR UPDATE")  # the key's row, held by someone else
        joining = threading.Thread(target=lambda: answers.append(
            correlating.alertmanager(slo_group("schema-valid-rate", severity="ticket"))))
        joining.start()
        waiting = wait_for(lambda: admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone(), timeout=10, what="the join to wait for the correlation key")
        admin.execute("SELECT pg_terminate_backend(%s)", waiting)
        joining.join(timeout=20)
        holder.rollback()

    [cut] = answers
    assert cut.status_code == 503 and cut.headers.get("retry-after"), cut.text
    full = correlating.incident(incident_id)
    assert [g["name"] for g in full["groups"]] == ["hallucination-rate (page)"]
    assert not [e for e in full["timeline"] if e["kind"] == "group_joined"]
    with transaction(correlating.runtime.engine) as session:
        assert session.execute(text("SELECT count(*) FROM alert_group")).scalar_one() == 1

    again = correlating.alertmanager(slo_group("schema-valid-rate", severity="ticket")).json()
    assert (again["status"], again["incident_id"]) == ("joined", incident_id)
    full = correlating.incident(incident_id)
    assert [g["name"] for g in full["groups"]] == ["hallucination-rate (page)", "schema-valid-rate (ticket)"]
    assert len([e for e in full["timeline"] if e["kind"] == "group_joined"]) == 1
