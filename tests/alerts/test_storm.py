"""Storm mode: when incidents open faster than a threshold, a service's further alert groups join
one storm incident instead of each opening a room (`bot.alerts.correlation`)."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.alerts.intake import ingest
from bot.alerts.normalize import from_alertmanager
from bot.clock import utcnow
from bot.runtime import Runtime
from bot.store.db import transaction
from tests.alerts.test_correlation import slo_group
from tests.conftest import ALERT_TOKEN, make_settings, serve_warroom

# Each SLO its own incident, so that only storm mode can put groups together.
PER_SLO = {"WARROOM_CORRELATE": "service,slo"}


def test_a_service_past_its_threshold_gets_one_storm_incident_for_its_further_groups(database_url):
    settings = make_settings(database_url, **PER_SLO, WARROOM_STORM_INCIDENTS=0, WARROOM_STORM_SERVICE_INCIDENTS=3)
    with serve_warroom(settings) as warroom:
        answers = [warroom.alertmanager(slo_group(f"slo-{i}")).json() for i in range(7)]

        assert [a["status"] for a in answers] == ["opened"] * 3 + ["joined"] * 4
        storm_id = answers[3]["incident_id"]
        assert {a["incident_id"] for a in answers[3:]} == {storm_id}
        storm = warroom.incident(storm_id)
        assert storm["storm"] is True and storm["title"] == "Alert storm: llm-gateway"
        assert [g["name"] for g in storm["groups"]] == [f"slo-{i} (page)" for i in range(3, 7)]
        [line] = [e["text"] for e in storm["timeline"] if e["kind"] == "storm"]
        assert line.startswith("Storm mode: ") and "join this incident until none has come for 10 min" in line
        # Another service is not in storm: its group opens its own incident.
        assert warroom.alertmanager(slo_group("slo-0", service="search")).json()["status"] == "opened"


def test_a_workspace_wide_storm_puts_each_service_in_its_own_storm_incident(database_url):
    settings = make_settings(database_url, **PER_SLO, WARROOM_STORM_INCIDENTS=5, WARROOM_STORM_SERVICE_INCIDENTS=0)
    with serve_warroom(settings) as warroom:
        answers = [warroom.alertmanager(slo_group("hallucination-rate", service=f"svc-{i}")).json() for i in range(5)]
        assert [a["status"] for a in answers] == ["opened"] * 5
        late = [warroom.alertmanager(slo_group(slo, service=service)).json()
                for service in ("svc-5", "svc-6") for slo in ("a", "b")]
        assert [a["status"] for a in late] == ["joined"] * 4
        assert late[0]["incident_id"] == late[1]["incident_id"] != late[2]["incident_id"] == late[3]["incident_id"]
        storms = [i for i in warroom.incidents() if i["title"].startswith("Alert storm")]
        assert sorted(i["title"] for i in storms) == ["Alert storm: svc-5", "Alert storm: svc-6"]


def test_storm_mode_ends_after_the_quiet_period(database_url):
    runtime = Runtime.build(make_settings(database_url, **PER_SLO, WARROOM_STORM_INCIDENTS=0,
                                          WARROOM_STORM_SERVICE_INCIDENTS=3, WARROOM_STORM_QUIET_MINUTES=10))
    start = utcnow()
    try:
        def deliver(slo: str, minutes: float) -> tuple[str, int | None]:
            body = json.loads(json.dumps(slo_group(slo)))
            with transaction(runtime.engine) as session:
                result = ingest(session, from_alertmanager(body, received_at=utcnow()), runtime.intake_rules,
                                now=start + timedelta(minutes=minutes))
            return result.outcome, result.incident_id

        assert [deliver(f"s{i}", i)[0] for i in range(3)] == ["opened"] * 3
        outcome, storm_id = deliver("s3", 3)
        assert outcome == "joined"
        assert deliver("s4", 12) == ("joined", storm_id)  # 9 min after the last: the storm goes on
        # 10 min without a new group: the storm is over, and the old incidents are out of the window.
        outcome, incident_id = deliver("s5", 22.5)
        assert outcome == "opened" and incident_id != storm_id
    finally:
        runtime.engine.dispose()


def test_the_scripted_storm_with_the_default_thresholds_opens_five_incidents_and_then_storm_incidents(database_url):
    """`warroom storm` (the demo's scripted storm) against the product's defaults: correlation by
    service, storm mode at 5 new incidents in 2 minutes."""
    from bot.config import Settings
    from bot.demo_storm import send_storm

    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    settings = make_settings(database_url, WARROOM_CORRELATE=",".join(defaults.correlate),
                             WARROOM_STORM_INCIDENTS=defaults.storm_incidents,
                             WARROOM_STORM_SERVICE_INCIDENTS=defaults.storm_service_incidents)
    with serve_warroom(settings) as warroom:
        answers = send_storm(warroom.url, ALERT_TOKEN, services=8, slos=5)
        assert answers == {"opened": 5, "joined": 35}
        incidents = warroom.incidents()
        storms = [i for i in incidents if i["title"].startswith("Alert storm: ")]
        assert (len(incidents), len(storms)) == (8, 3)
        assert all(len(warroom.incident(i["id"])["groups"]) == 5 for i in incidents)  # nothing lost
