"""Runbook-declared automatic actions: warroom acts first, through the same policy as a person."""

from __future__ import annotations

from pathlib import Path

from bot.incidents import service as incidents
from bot.incidents import timeline
from bot.store.db import transaction
from tests.alerts.payloads import am_alert, am_payload
from tests.automation.conftest import register_bundles, runs
from tests.slack.conftest import PRIYA, SAM
from tests.support import wait_for

AUTO = "warroom (auto)"


def events(harness, incident_id: int, kind: str) -> list[dict]:
    return [e for e in harness.incident(incident_id)["timeline"] if e["kind"] == kind]


def test_a_sev2_hallucination_incident_gets_the_fallback_before_anyone_clicks(start_warroom, llm_service):
    slack = start_warroom()
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    wait_for(lambda: llm_service.state()["route"] == "safe-fallback-8b", timeout=10, what="the automatic fallback")
    slack.settle()
    [run] = runs(slack, incident_id)
    assert (run.playbook, run.requested_by, run.status) == ("fallback", AUTO, "succeeded")
    assert run.result["verify"]["ok"] is True
    requested = events(slack, incident_id, "action_requested")[0]
    assert requested["actor"] == AUTO and "runbook *Hallucination rate spike*" in requested["text"]
    said = " ".join(m.text for m in slack.messages(channel))
    assert "warroom is running run #1 `fallback" in said and "`/incident undo 1`" in said
    assert "/incident auto off" in said and "(verified)" in said
    card = next(m for m in slack.messages(channel) if m.blocks and "*Run #1:" in str(m.blocks))
    assert "Requested by warroom (automatic)" in str(card.blocks) and "<@warroom" not in str(card.blocks)
    assert slack.incident(incident_id)["status"] == "mitigated"  # no guard without an SLO file: as a person's run


def test_no_automatic_action_when_automation_is_switched_off_globally(start_warroom, llm_service):
    slack = start_warroom(WARROOM_AUTOMATION=False)
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    slack.room(incident_id)
    slack.settle()
    assert runs(slack, incident_id) == [] and llm_service.state()["route"] == "primary-70b"


def test_auto_off_stops_a_delayed_action_for_that_incident(start_warroom, llm_service, runbooks_dir: Path):
    text = (runbooks_dir / "hallucination-spike.md").read_text()
    (runbooks_dir / "hallucination-spike.md").write_text(
        text.replace("    max_severity: 2\n    undo_if_not_improved: true", "    delay_seconds: 600", 1))
    slack = start_warroom()
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    scheduled = wait_for(lambda: events(slack, incident_id, "auto_scheduled"), what="the delayed rule")
    assert "will consider `fallback` in 600 s" in scheduled[0]["text"]

    reply = slack.command("/incident auto off", user=PRIYA, channel=channel)
    wait_for(lambda: "Automatic actions are off" in " ".join(slack.said_to(PRIYA)), what="the answer")
    assert reply is not None
    slack.warroom.automation.consider(incident_id, 0)  # the delayed row comes due
    assert runs(slack, incident_id) == [] and llm_service.state()["route"] == "primary-70b"
    skipped = events(slack, incident_id, "auto_skipped")[-1]
    # The API's text reads with names; who switched it off is also there as an id.
    assert "switched off for this incident by @Priya" in skipped["text"] and skipped["people"] == [PRIYA]


def test_auto_off_is_for_people_in_the_incident_channel(start_warroom, llm_service):
    slack = start_warroom()
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    slack.room(incident_id)
    slack.command(f"/incident auto #{incident_id} off", user="U0OUTSIDER")
    wait_for(lambda: any("Only people in the incident channel" in t for t in slack.said_to("U0OUTSIDER")),
             what="the refusal")
    assert slack.incident(incident_id)["status"] in ("triggered", "mitigated")
    assert not events(slack, incident_id, "automation")


def test_the_same_action_is_never_requested_twice_for_one_incident(start_warroom, llm_service):
    slack = start_warroom()
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    slack.room(incident_id)
    wait_for(lambda: runs(slack, incident_id) and runs(slack, incident_id)[0].status == "succeeded", timeout=10,
             what="the automatic run")
    assert slack.warroom.automation.consider(incident_id) == []
    assert len([r for r in runs(slack, incident_id) if r.playbook == "fallback"]) == 1
    assert any("did not run `fallback`: it already requested it for this incident (run #1); never twice" in e["text"]
               for e in events(slack, incident_id, "auto_skipped"))


def test_at_most_n_automatic_actions_per_service_per_hour(start_warroom, llm_service):
    slack = start_warroom(WARROOM_AUTOMATION_MAX_PER_HOUR=1)
    first = slack.fire(am_payload([am_alert("primary-70b")], group="storm-1"))
    wait_for(lambda: runs(slack, first) and runs(slack, first)[0].status == "succeeded", timeout=10, what="run 1")
    second = slack.fire(am_payload([am_alert("primary-70b", starts="2026-03-14T03:00:00Z")], group="storm-2"))
    channel = slack.room(second)
    slack.settle()
    assert runs(slack, second) == []
    assert any("1 automatic actions already ran for llm-gateway in the last hour" in m.text
               for m in slack.messages(channel))


def test_a_silenced_incident_gets_no_automatic_action(start_warroom, llm_service):
    slack = start_warroom(WARROOM_AUTOMATION_MAX_PER_HOUR=5)
    with transaction(slack.runtime.engine) as session:
        incident = incidents.declare(session, title="silenced one", severity=1, actor=PRIYA, service="llm-gateway",
                                     runbook_id="hallucination-spike")
        timeline.record(session, incident, "silenced", "silenced for 1 h", actor=PRIYA)
        incident_id = incident.id
    assert slack.warroom.automation.consider(incident_id) == []
    assert "silenced" in events(slack, incident_id, "auto_skipped")[0]["text"]


def test_a_low_severity_incident_gets_no_automatic_action(start_warroom, llm_service):
    slack = start_warroom()
    with transaction(slack.runtime.engine) as session:
        incident = incidents.declare(session, title="minor", severity=3, actor=PRIYA, service="llm-gateway",
                                     runbook_id="hallucination-spike")
        incident_id = incident.id
    assert slack.warroom.automation.consider(incident_id) == []
    assert "SEV3 is below the automation threshold" in events(slack, incident_id, "auto_skipped")[0]["text"]


def test_a_rollback_is_only_proposed_and_waits_for_a_person(start_warroom, llm_service):
    slack = start_warroom()
    register_bundles(slack, v42_minutes_ago=17)
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    wait_for(lambda: len(runs(slack, incident_id)) == 2, timeout=10, what="the fallback and the proposal")
    slack.settle()
    rollback = next(r for r in runs(slack, incident_id) if r.playbook == "rollback")
    assert (rollback.status, rollback.requested_by, rollback.params) == ("awaiting_approval", AUTO, {"bundle": "v41"})
    assert llm_service.state()["bundle"] == "v42"
    assert any(f"warroom proposes run #{rollback.id} `rollback bundle=v41`" in m.text for m in slack.messages(channel))

    card = next(m for m in slack.messages(channel) if m.blocks and f"*Run #{rollback.id}:" in str(m.blocks))
    slack.emu.click(channel, card.ts, "action.approve", str(rollback.id), user=SAM)
    wait_for(lambda: llm_service.state()["bundle"] == "v41", timeout=15, what="the approved rollback")


def test_anyone_who_may_run_it_requests_the_undo_and_confirms_it_themselves(start_warroom, llm_service):
    slack = start_warroom()
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    wait_for(lambda: llm_service.state()["route"] == "safe-fallback-8b", timeout=10, what="the automatic fallback")
    slack.settle()

    slack.command("/incident undo 1", user=SAM, channel=channel)
    wait_for(lambda: len(runs(slack, incident_id)) == 2, what="the undo request")
    undo = runs(slack, incident_id)[1]
    assert (undo.undo_of, undo.requested_by, undo.status) == (1, SAM, "awaiting_confirmation")
    card = wait_for(lambda: next((m for m in slack.messages(channel)
                                  if m.blocks and f"*Run #{undo.id}:" in str(m.blocks)), None),
                    what="the undo's card")
    slack.emu.click(channel, card.ts, "action.confirm", str(undo.id), user=PRIYA)  # not Priya's request
    wait_for(lambda: any("Only <@U0SAM>, who requested it, can confirm" in t for t in slack.said_to(PRIYA)),
             what="the refusal")
    assert llm_service.state()["route"] == "safe-fallback-8b"
    slack.emu.click(channel, card.ts, "action.confirm", str(undo.id), user=SAM)
    wait_for(lambda: llm_service.state()["route"] == "primary-70b", timeout=10, what="the undo")


def test_people_outside_the_channel_cannot_undo_warroom_s_run(start_warroom, llm_service):
    slack = start_warroom()
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    slack.room(incident_id)
    wait_for(lambda: llm_service.state()["route"] == "safe-fallback-8b", timeout=10, what="the automatic fallback")
    slack.command("/incident undo 1", user="U0OUTSIDER")
    wait_for(lambda: any("may not undo a fallback run" in t for t in slack.said_to("U0OUTSIDER")), what="the refusal")
    assert len(runs(slack, incident_id)) == 1


def test_the_incident_card_says_what_warroom_did_and_how_to_undo_it(start_warroom, llm_service):
    slack = start_warroom()
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    wait_for(lambda: "run #1, succeeded); anyone who may run it can undo: `/incident undo 1`" in str(
        slack.card(channel).blocks), timeout=10, what="the card to tell the automatic run")
    assert "warroom ran `fallback` on its own" in str(slack.card(channel).blocks)
    slack.command("/incident auto off", user=PRIYA, channel=channel)
    wait_for(lambda: "automatic actions switched off for this incident" in str(slack.card(channel).blocks),
             what="the card to show the switch")


def test_a_storm_of_incidents_at_once_stays_within_the_hourly_limit(start_warroom, llm_service):
    from concurrent.futures import ThreadPoolExecutor

    slack = start_warroom(WARROOM_AUTOMATION_MAX_PER_HOUR=2, WARROOM_WORKER=False)
    with transaction(slack.runtime.engine) as session:
        ids = [incidents.declare(session, title=f"storm {n}", severity=1, actor=PRIYA, service="llm-gateway",
                                 runbook_id="hallucination-spike").id for n in range(6)]
    automation = slack.warroom.automation
    with ThreadPoolExecutor(6) as pool:
        requested = [run for found in pool.map(automation.consider, ids) for run in found]
    assert len(requested) == 2
    limited = [i for i in ids if any("2 automatic actions already ran for llm-gateway in the last hour" in e["text"]
                                     for e in events(slack, i, "auto_skipped"))]
    assert len(limited) == 4
