"""`/incident merge` and `/incident split` through Slack (the emulator), on both databases: groups
move between incidents, the merged one ends in the other with its channel archived and its
announcement edited, a split group gets its own incident and room, and each undoes the other."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.emulator import Emulator
from bot.incidents import merge
from bot.store.db import transaction
from bot.store.models import IncidentStep
from bot.traces import ingest as traces
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import ALERT_TOKEN, READER
from tests.slack.conftest import ALEX, INCIDENTS, PRIYA, SlackHarness, reply_text, running
from tests.support import wait_for

RESOLVED = {"status": "resolved", "ends": "2026-03-14T02:20:00Z"}


def slo_group(slo: str, *, severity: str = "page", service: str = "llm-gateway", status: str = "firing") -> dict:
    """One Alertmanager group: an SLO's page or ticket alert, as Sloth's rules group them."""
    extra = RESOLVED if status == "resolved" else {}
    alert = am_alert("primary-70b", slo=slo, service=service, extra_labels={"sloth_severity": severity}, **extra)
    return am_payload([alert], group=f"{service}-{slo}-{severity}")


@pytest.fixture
def correlating(database_url: str, _emulator: Emulator) -> Iterator[SlackHarness]:
    """The `slack` fixture with correlation by service (storm mode off)."""
    with running(database_url, _emulator, WARROOM_CORRELATE="service") as slack:
        yield slack


def said(slack: SlackHarness, line: str, channel: str, user: str = PRIYA) -> str:
    return reply_text(slack.command(line, user=user, channel=channel))


def split_into(reply: str) -> int:
    found = re.search(r"out into incident #(\d+)", reply)
    assert found, reply
    return int(found.group(1))


def deliver(slack: SlackHarness, body: dict) -> dict:
    response = slack.http.post("/webhooks/alertmanager", json=body, headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert response.status_code == 200, response.text
    return response.json()


def timeline(slack: SlackHarness, incident_id: int, kind: str) -> list[str]:
    return [e["text"] for e in slack.incident(incident_id)["timeline"] if e["kind"] == kind]


def groups(slack: SlackHarness, incident_id: int) -> list[str]:
    return [g["name"] for g in slack.incident(incident_id)["groups"]]


def announcement(slack: SlackHarness, incident_id: int) -> Any:
    with transaction(slack.runtime.engine) as session:
        step = session.execute(select(IncidentStep).where(IncidentStep.incident_id == incident_id,
                                                          IncidentStep.name == "announce")).scalar_one()
        ts = step.result["ts"]
    return next(m for m in slack.messages(INCIDENTS) if m.ts == ts)


def test_merge_moves_the_groups_and_ends_the_other_incident_in_this_one(slack):
    into = slack.fire(slo_group("latency", severity="ticket"))
    merged = slack.fire(slo_group("hallucination-rate", service="search"))
    into_channel, merged_channel = slack.room(into), slack.room(merged)

    reply = said(slack, f"/incident merge {merged}", into_channel)
    assert f"Merged #{merged} into incident #{into}" in reply and "hallucination-rate (page)" in reply

    target, ended = slack.incident(into), slack.incident(merged)
    assert groups(slack, into) == ["latency (ticket)", "hallucination-rate (page)"]
    assert target["severity"] == 2 and target["alerts_firing"] == 2  # the page's SEV2 is the higher
    assert (ended["status"], ended["merged_into"]) == ("resolved", into)
    [resolved] = timeline(slack, merged, "resolved")
    assert resolved.startswith("Resolved by @Priya") and resolved.endswith(f": merged into #{into}")
    assert ended["alerts_firing"] == 0 and groups(slack, merged) == []
    assert timeline(slack, into, "merged") == [
        f"Merged #{merged} (search hallucination-rate burning 14.4x) into this incident by @Priya: "
        "its groups hallucination-rate (page); severity SEV3 → SEV2"]
    [moved_on] = timeline(slack, merged, "merged_into")
    assert moved_on.startswith(f"Merged into #{into} (") and moved_on.endswith(
        "by @Priya. Follow the incident there; this channel will be archived.")

    slack.settle()
    # Its people were told where to go, then its channel was archived.
    told = [m.text for m in slack.messages(merged_channel) if "Merged into" in m.text]
    assert told and f"<#{into_channel}>" in told[0]
    assert slack.emu.state.channels[merged_channel].archived
    assert not slack.emu.state.channels[into_channel].archived
    assert "Also firing: hallucination-rate (page)" in str(slack.card(into_channel).blocks)
    edited = announcement(slack, merged)
    assert edited.edited and f"Merged into incident #{into} in <#{into_channel}>" in str(edited.blocks)
    assert not any("Postmortem due" in m.text for m in slack.messages(merged_channel))

    # The moved group's next notification is the incident's it went into; it resolves with its last group.
    assert slack.fire(slo_group("hallucination-rate", service="search", status="resolved")) == into
    assert slack.incident(into)["status"] == "triggered"
    assert slack.fire(slo_group("latency", severity="ticket", status="resolved")) == into
    assert slack.incident(into)["status"] == "resolved"
    assert slack.incident(merged)["status"] == "resolved"  # it stays ended


def failing_search_traces(slack: SlackHarness, count: int, prefix: str = "search") -> None:
    now = datetime.now(timezone.utc)
    events = [{"request_id": f"{prefix}-{i}", "timestamp": (now - timedelta(seconds=i)).isoformat(),
               "service": "search", "input": "What is the refund policy?", "output": "Refunds within 90 days.",
               "hallucination_score": 0.9}
              for i in range(count)]
    response = slack.http.post("/api/traces", json=events, headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert response.status_code == 200 and response.json()["accepted"] == count, response.text


def test_merge_brings_the_merged_incident_s_failing_traces_into_the_postmortem(slack):
    into = slack.fire(slo_group("latency", severity="ticket"))
    merged = slack.fire(slo_group("hallucination-rate", service="search"))
    failing_search_traces(slack, 3)
    channel = slack.room(into)
    # Linked to the search incident, the one that will be merged away.
    assert "`search-0`" in slack.http.get(f"/incidents/{merged}/postmortem.md", headers=READER).text
    assert "`search-0`" not in slack.http.get(f"/incidents/{into}/postmortem.md", headers=READER).text

    said(slack, f"/incident merge {merged}", channel)

    postmortem = slack.http.get(f"/incidents/{into}/postmortem.md", headers=READER).text
    assert "`search-0`" in postmortem and "No failing traces were linked" not in postmortem
    assert "3 linked trace(s)" in timeline(slack, into, "merged")[0]
    ended = slack.http.get(f"/incidents/{merged}/postmortem.md", headers=READER).text
    assert "No failing traces were linked to this incident" in ended


def test_the_merged_incident_s_service_keeps_bringing_its_failing_traces_to_the_incident_it_went_into(
        database_url, _emulator):
    with running(database_url, _emulator, WARROOM_TRACES_POST_EVERY_SECONDS=1) as slack:
        into = slack.fire(slo_group("latency", severity="ticket"))
        merged = slack.fire(slo_group("hallucination-rate", service="search"))
        channel = slack.room(into)
        said(slack, f"/incident merge {merged}", channel)

        failing_search_traces(slack, 2, prefix="later")

        postmortem = slack.http.get(f"/incidents/{into}/postmortem.md", headers=READER).text
        assert "`later-0`" in postmortem and "`later-1`" in postmortem
        wait_for(lambda: any("2 failing trace(s)" in m.text for m in slack.messages(channel)),
                 what="the later traces posted in the room of the incident the search one went into")
        ended = slack.http.get(f"/incidents/{merged}/postmortem.md", headers=READER).text
        assert "No failing traces were linked to this incident" in ended


def test_after_a_merge_of_merges_the_traces_go_to_the_incident_still_open(slack):
    into = slack.fire(slo_group("latency", severity="ticket"))
    middle = slack.fire(slo_group("schema-valid-rate", service="billing"))
    first = slack.fire(slo_group("hallucination-rate", service="search"))
    said(slack, f"/incident merge {first}", slack.room(middle))
    said(slack, f"/incident merge {middle}", slack.room(into))

    failing_search_traces(slack, 1, prefix="after-both")

    assert "`after-both-0`" in slack.http.get(f"/incidents/{into}/postmortem.md", headers=READER).text
    assert "`after-both-0`" not in slack.http.get(f"/incidents/{middle}/postmortem.md", headers=READER).text


def search_failure(request_id: str) -> dict:
    return {"request_id": request_id, "timestamp": datetime.now(timezone.utc).isoformat(), "service": "search",
            "input": "What is the refund policy?", "output": "Refunds within 90 days.", "hallucination_score": 0.9}


# Only PostgreSQL runs a batch's transaction alongside a merge's: on SQLite the one writer waits.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_traces_a_batch_linked_to_the_incident_while_it_was_being_merged_reach_the_one_it_went_into(
        database_url, _emulator):
    with running(database_url, _emulator) as slack:
        into = slack.fire(slo_group("latency", severity="ticket"))
        merged = slack.fire(slo_group("hallucination-rate", service="search"))
        engine, settings = slack.warroom.runtime.engine, slack.warroom.runtime.settings

        def batch_that_saw_the_search_incident_open() -> None:
            with transaction(engine) as session:
                traces.ingest_traces(session, [search_failure("during-merge")], rules=settings.failure_rules())

        with transaction(engine) as session:  # the merge, not committed yet
            merge.merge(session, into, [merged], actor=PRIYA)
            batch = threading.Thread(target=batch_that_saw_the_search_incident_open)
            batch.start()
            # Its link to the search incident waits for the merge's lock on that row.
            wait_for(lambda: waiting_for_a_lock(engine), what="the batch waiting for the merge")
        batch.join()

        # Linked to the merged incident after the merge moved its traces, then moved after them.
        postmortem = slack.http.get(f"/incidents/{into}/postmortem.md", headers=READER).text
        assert "`during-merge`" in postmortem


def waiting_for_a_lock(engine: Engine) -> bool:
    """A session of this test's database waits for a lock (other tests' databases run alongside)."""
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()").scalar())


def test_merge_named_from_another_channel_takes_several(slack):
    into = slack.fire(slo_group("hallucination-rate"))
    first = slack.fire(slo_group("latency", service="search"))
    second = slack.fire(slo_group("tool-call-success", service="tools", severity="ticket"))
    for incident_id in (into, first, second):
        slack.room(incident_id)

    reply = said(slack, f"/incident merge #{first}, {second} into {into}", INCIDENTS)
    assert f"Merged #{first}, #{second} into incident #{into}" in reply
    assert groups(slack, into) == ["hallucination-rate (page)", "latency (page)", "tool-call-success (ticket)"]
    assert [slack.incident(i)["merged_into"] for i in (first, second)] == [into, into]


def test_split_gives_a_group_its_own_incident_and_room(correlating):
    slack = correlating
    source = slack.fire(slo_group("hallucination-rate"))
    assert slack.fire(slo_group("schema-valid-rate", severity="ticket")) == source
    channel = slack.room(source)

    reply = said(slack, "/incident split Schema-Valid-Rate (TICKET)", channel)
    new = split_into(reply)
    assert f"Split schema-valid-rate (ticket) out into incident #{new}" in reply
    assert f"Incident #{source} keeps its other groups" in reply

    new_channel = slack.room(new)
    split_off = slack.incident(new)
    assert groups(slack, new) == ["schema-valid-rate (ticket)"]
    assert groups(slack, source) == ["hallucination-rate (page)"]
    # As the intake would have opened it: its runbook (which says SEV2), service and SLO from its labels.
    assert (split_off["severity"], split_off["service"], split_off["slo"], split_off["runbook"]) == (
        2, "llm-gateway", "schema-valid-rate", "schema-valid-drop")
    assert split_off["title"] == "llm-gateway schema-valid-rate burning 14.4x"
    assert split_off["alerts_firing"] == 1 and slack.incident(source)["alerts_firing"] == 1
    assert timeline(slack, source, "split") == [
        f"Split alert group schema-valid-rate (ticket) out into incident #{new} by @Priya"]
    assert timeline(slack, new, "opened")[0].startswith(
        f"Incident opened by splitting alert group schema-valid-rate (ticket) out of incident #{source} by @Priya")
    assert new_channel != channel and slack.incident(source)["status"] == "triggered"

    # The split group's next notification goes to its own incident (the correlation key still
    # points at the first: it is not taken back there), and resolves it alone.
    again = deliver(slack, slo_group("schema-valid-rate", severity="ticket"))
    assert (again["status"], again["incident_id"]) == ("duplicate", new)
    assert slack.fire(slo_group("schema-valid-rate", severity="ticket", status="resolved")) == new
    assert slack.incident(new)["status"] == "resolved" and slack.incident(source)["status"] == "triggered"
    # A new group of the service still joins the incident it was split from.
    assert slack.fire(slo_group("tool-call-success", severity="ticket")) == source


def test_merge_takes_a_split_group_back(correlating):
    slack = correlating
    source = slack.fire(slo_group("hallucination-rate"))
    slack.fire(slo_group("schema-valid-rate", severity="ticket"))
    channel = slack.room(source)
    new = split_into(said(slack, "/incident split schema-valid-rate (ticket)", channel))
    slack.room(new)

    assert f"Merged #{new} into incident #{source}" in said(slack, f"/incident merge {new}", channel)
    assert groups(slack, source) == ["hallucination-rate (page)", "schema-valid-rate (ticket)"]
    assert slack.incident(new)["merged_into"] == source
    assert slack.fire(slo_group("schema-valid-rate", severity="ticket", status="resolved")) == source
    assert slack.incident(source)["status"] == "triggered"  # the page still fires


def test_splitting_the_last_firing_group_resolves_the_incident_it_leaves(correlating):
    slack = correlating
    source = slack.fire(slo_group("hallucination-rate"))
    slack.fire(slo_group("schema-valid-rate", severity="ticket"))
    slack.fire(slo_group("hallucination-rate", status="resolved"))
    channel = slack.room(source)

    reply = said(slack, "/incident split schema-valid-rate (ticket)", channel)
    assert f"Incident #{source} resolved: that was its last firing group" in reply
    assert slack.incident(source)["status"] == "resolved"
    assert slack.incident(split_into(reply))["status"] == "triggered"


def test_a_storm_incident_merges_into_an_ordinary_one_and_its_key_goes_with_it(database_url, _emulator):
    settings = {"WARROOM_CORRELATE": "service,slo", "WARROOM_STORM_SERVICE_INCIDENTS": 3}
    with running(database_url, _emulator, **settings) as slack:
        first, *_ = [slack.fire(slo_group(f"slo-{i}")) for i in range(3)]
        storm = slack.fire(slo_group("slo-3"))
        assert slack.incident(storm)["storm"] is True
        channel = slack.room(first)
        slack.room(storm)

        assert f"Merged #{storm} into incident #{first}" in said(slack, f"/incident merge {storm}", channel)
        assert groups(slack, first) == ["slo-0 (page)", "slo-3 (page)"]
        assert slack.incident(storm)["merged_into"] == first
        # The service's next group in the storm joins where the storm went.
        joined = deliver(slack, slo_group("slo-4"))
        assert (joined["status"], joined["incident_id"]) == ("joined", first)


def test_merge_and_split_refuse_what_makes_no_sense(correlating):
    slack = correlating
    one = slack.fire(slo_group("hallucination-rate"))
    other = slack.fire(slo_group("latency", service="search"))
    ended = slack.fire(slo_group("tool-call-success", service="tools"))
    channel, other_channel = slack.room(one), slack.room(other)
    slack.room(ended)
    slack.fire(slo_group("tool-call-success", service="tools", status="resolved"))

    assert "cannot be merged into itself" in said(slack, f"/incident merge {one}", channel)
    assert "There is no incident #999" in said(slack, "/incident merge 999", channel)
    assert f"Incident #{ended} cannot be merged: it is resolved" in said(slack, f"/incident merge {ended}", channel)
    assert "is not an incident number" in said(slack, "/incident merge latency", channel)
    assert "Usage" in said(slack, "/incident merge", channel)
    assert "or name it" in said(slack, f"/incident merge {other}", INCIDENTS)
    assert "Only people in the incident channel" in said(slack, f"/incident merge {other}", channel, user=ALEX)
    assert "only alert group" in said(slack, "/incident split hallucination-rate (page)", channel)
    assert "has no alert group nope. Its groups: hallucination-rate (page)" in said(
        slack, "/incident split nope", channel)
    assert "Only people in the incident channel" in said(slack, "/incident split latency", other_channel, user=ALEX)
    # Nothing moved.
    assert groups(slack, one) == ["hallucination-rate (page)"] and groups(slack, other) == ["latency (page)"]
    assert slack.incident(other)["status"] == "triggered"

    said(slack, f"/incident merge {other}", channel)
    assert f"cannot be merged: it was merged into #{one}" in said(slack, f"/incident merge {other}", channel)
    help_text = said(slack, "/incident help", INCIDENTS)
    assert "`merge &lt;id&gt;… [into &lt;id&gt;]`" in help_text and "`split &lt;group&gt;`" in help_text

