"""`/incident evals` lists the incident's eval cases with Label buttons; a gate run reports to the incidents."""

from __future__ import annotations

from datetime import datetime, timezone

from bot.evals.gate import FAILED, CaseVerdict, GateReport, Outcome
from bot.evals.gate_notify import post_to_incidents
from bot.evals.suite import suite_cases
from bot.store.db import transaction
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import PRIYA, reply_text
from tests.slack.test_actions import llm_service, room, run_card  # noqa: F401
from tests.slack.test_traces import post_traces
from tests.support import wait_for


def open_incident_with_failures(slack) -> tuple[int, str]:
    post_traces(slack)
    incident_id = slack.fire(am_payload([am_alert("primary-70b", starts=datetime.now(timezone.utc).isoformat())]))
    return incident_id, slack.room(incident_id)


def test_incident_evals_lists_unlabelled_cases_and_a_label_makes_them_labelled(slack):
    _, channel = open_incident_with_failures(slack)
    reply = slack.command("/incident evals", user=PRIYA, channel=channel)
    text = str(reply.json.get("blocks")) + reply_text(reply)
    assert "1 (1 new, 0 seen in earlier incidents)" in text and "0 labelled, 1 unlabelled" in text
    assert "jane@example.com" not in text
    [button] = [b["accessory"] for b in reply.json["blocks"] if b.get("accessory")]
    assert button["action_id"] == "trace.label" and button["text"]["text"] == "Label"

    message = wait_for(lambda: next((m for m in slack.messages(channel) if "failing trace" in m.text), None),
                       what="the failing traces message")
    slack.emu.click(channel, message.ts, "trace.label", button["value"], user=PRIYA)
    view = wait_for(lambda: next(iter(slack.emu.state.views.values()), None), what="the label form")
    slack.emu.submit_view(view.id, {"failure_type": "hallucination",
                                    "expected": "Refunds are available within 30 days.",
                                    "claim": "90 days"}, user=PRIYA)
    with transaction(slack.runtime.engine) as session:
        [case] = suite_cases(session, "llm-gateway")
    assert case.labelled and case.data["facts"] == ["30 days"] and case.data["claims"] == ["90 days"]
    again = slack.command("/incident evals", user=PRIYA, channel=channel)
    assert "1 labelled, 0 unlabelled" in reply_text(again) and "Relabel" in str(again.json.get("blocks"))


def test_a_failed_gate_posts_its_summary_to_the_incidents_its_cases_came_from(slack):
    incident_id, channel = open_incident_with_failures(slack)
    slack.command("/incident evals", user=PRIYA, channel=channel)  # collects the cases
    with transaction(slack.runtime.engine) as session:
        [case] = suite_cases(session, "llm-gateway")
        report = GateReport(service="llm-gateway", version="v44", baseline="v41", status=FAILED, run_id=7, cases=1,
                            failures=[CaseVerdict(case, Outcome(False, "missing fact: 30 days", "Ninety days!", 5,
                                                                None),
                                                  None, True, "labelled case fails")], incidents=[incident_id])
        post_to_incidents(session, report)
    slack.runtime.wake.set()
    posted = wait_for(lambda: next((m for m in slack.messages(channel) if "Eval gate FAILED" in m.text), None),
                      what="the gate summary in the incident channel")
    assert "llm-gateway:v44" in posted.text and case.case_id in posted.text and "missing fact: 30 days" in posted.text


def test_rollback_proposes_the_newest_gated_bundle_and_says_when_it_passed(llm_service, slack, room):  # noqa: F811
    from bot.releases import bundles
    from bot.store.models import EvalRun
    incident_id, channel = room
    with transaction(slack.runtime.engine) as session:
        # v43 is registered after the incident opened (a candidate, not what was live) and passes a gate.
        bundles.register_bundle(session, service="llm-gateway", version="v43",
                                components={"prompt_version": "answer-v43", "model_route": "primary-70b"})
        run = EvalRun(service="llm-gateway", bundle_version="v43", kind="gate", status="passed",
                      started_at=datetime.now(timezone.utc))
        session.add(run)
        session.flush()
        bundles.mark_known_good(session, "llm-gateway", "v43", reason="gate passed", run_id=run.id)
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    card = run_card(slack, channel, 1)
    assert "bundle=`v43`" in str(card.blocks)
    requested = [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "action_requested"]
    assert f"v43 passed eval gate run #{run.id} at " in requested[0]["text"]


def test_rollback_to_a_hand_marked_bundle_says_so(llm_service, slack, room):  # noqa: F811
    incident_id, channel = room
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    assert "bundle=`v41`" in str(run_card(slack, channel, 1).blocks)
    requested = [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "action_requested"]
    assert "v41 was marked known-good by hand" in requested[0]["text"]


def test_the_card_names_the_bundle_that_passed_the_gate(llm_service, slack, room):  # noqa: F811
    from datetime import timedelta

    from bot.clock import utcnow
    from bot.incidents import service
    from bot.releases import bundles
    from bot.slack.views import bundle_line
    incident_id, _ = room
    with transaction(slack.runtime.engine) as session:
        # A candidate awaiting the gate, not deployed: dated after everything, as the demo registers it.
        bundles.register_bundle(session, service="llm-gateway", version="v43",
                                components={"prompt_version": "answer-v43"},
                                deployed_at=utcnow() + timedelta(days=30))
        bundles.mark_known_good(session, "llm-gateway", "v43", run_id=12)
        line = bundle_line(session, service.get(session, incident_id))
    assert line is not None and line.startswith("v42") and line.endswith("· v43 passed eval gate run #12")


def test_the_postmortem_from_slack_counts_the_eval_cases_the_incident_added(slack):
    _, channel = open_incident_with_failures(slack)
    slack.command("/incident postmortem", user=PRIYA, channel=channel)
    draft = wait_for(lambda: next((m for m in slack.messages(channel) if m.text.startswith("Postmortem draft")), None),
                     what="the draft in the channel")
    assert "Eval cases added: 1 (1 new, 0 already in the suite from earlier incidents" in str(draft.blocks)
    assert "Gate the fix" in str(draft.blocks)
