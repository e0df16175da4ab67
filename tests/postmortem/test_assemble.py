"""The postmortem draft assembled from a real incident record, on SQLite and PostgreSQL.

The incident is opened the way Alertmanager opens it (a webhook over real HTTP); what people
and the LLM service add later (traces, bundles, playbook runs, a pinned message) is written as
the rows those parts of warroom write. ``seed_incident`` and the ``warroom`` fixture are shared
with the page and eval-export tests.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import as_utc
from bot.errors import NotFound
from bot.incidents import service, timeline
from bot.postmortem import assemble, store
from bot.releases import bundles
from bot.slo.spec import SLO
from bot.slo.tracerule import TraceRule
from bot.store.db import transaction
from bot.store.models import ActionRun, Alert, Postmortem, Trace
from bot.traces import ingest as traces
from bot.traces.rules import TraceEvent
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import Warroom, serve_warroom  # noqa: F401  (re-used by page tests)

SECTIONS = ["Summary", "Impact", "Timeline", "Actions taken", "Release bundle lineage", "Failing traces",
            "Contributing factors", "Lessons learned", "Follow-ups"]
EMAIL = "jane.doe@example.com"
V41 = {"prompt_version": "answer-v41", "model_route": "primary-70b", "retriever_snapshot": "policy-2026-03-01",
       "tool_contracts": "incident-tools-v7", "guardrail_policy": "v3"}
V42 = {**V41, "prompt_version": "answer-v42", "retriever_snapshot": "policy-2026-03-14"}
# (prompt hash, question, wrong answer): 9 hallucinations over 3 prompts, 3 schema failures over 2.
HALLUCINATIONS = [("h-refund", f"What is the refund policy? I'm {EMAIL}",
                   "Refunds are available within 90 days, no receipt needed.")] * 5 + \
                 [("h-warranty", "How long is the warranty?",
                   "The warranty lasts a lifetime for every product.")] * 2 + \
                 [("h-shipping", "Is shipping free?", "Shipping is always free worldwide, even for pianos.")] * 2
SCHEMA_FAILURES = [("h-json", "Give the order status as JSON for order 1234", '{"order_id": "1234"')] * 2 + \
                  [("h-json2", "List my open tickets as JSON", "tickets: none")]




@dataclass(frozen=True)
class Seeded:
    incident_id: int
    opened: datetime
    alert_start: datetime


def _am_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _trace(request_id: str, at: datetime, *, incident_id: int | None, kinds: list[str], **event: Any) -> Trace:
    data = TraceEvent(request_id=request_id, timestamp=at, service="llm-gateway", bundle_version="v42",
                      model="primary-70b", **event).model_dump(mode="json")
    return Trace(request_id=request_id, service="llm-gateway", timestamp=at, bundle_version="v42", model="primary-70b",
                 prompt_hash=event.get("prompt_hash"), failure_types=kinds, failed=bool(kinds),
                 incident_id=incident_id, data=data, received_at=at)


def seed_incident(warroom: Warroom, *, group: str = "llm-gateway-hallucination", resolve: bool = True,
                  annotations: dict[str, str] | None = None) -> Seeded:
    """The scenario's incident: 3 alerts, ack after 2 m, a pinned trace, fallback, rollback to v41, resolved at 13 m."""
    alert_start = datetime.now(timezone.utc) - timedelta(minutes=1)
    alerts = [am_alert(model, starts=_am_time(alert_start), annotations=annotations)
              for model in ("primary-70b", "secondary-13b", "tertiary-8b")]
    response = warroom.alertmanager(am_payload(alerts, group=group))
    assert response.status_code == 200 and response.json()["status"] == "opened", response.text
    incident_id = response.json()["incident_id"]
    tag = group

    with transaction(warroom.runtime.engine) as session:
        incident = service.get(session, incident_id)
        opened = as_utc(incident.opened_at)
        assert opened is not None

        def at(minutes: float) -> datetime:
            return opened + timedelta(minutes=minutes)

        service.acknowledge(session, incident, actor="U0PRIYA", at=at(2))
        timeline.record(session, incident, "pinned", "refund trace says <@U0PRIYA> 90 days, no receipt",
                        actor="U0PRIYA",
                        at=at(3))
        if bundles.live_bundle(session, "llm-gateway", at(0)) is None:  # a second incident shares them
            bundles.register_bundle(session, service="llm-gateway", version="v41", components=V41,
                                    deployed_at=at(-3 * 24 * 60), known_good=True)
            bundles.register_bundle(session, service="llm-gateway", version="v42", components=V42, deployed_at=at(-17))
            bundles.register_bundle(session, service="llm-gateway", version="v43",
                                    components={**V41, "prompt_version": "answer-v43"}, deployed_at=at(60))
        bundles.register_bundle(session, service=f"other-{tag}", version="v99", components={"prompt_version": "x"},
                                deployed_at=at(-1))
        for n, (prompt_hash, question, answer) in enumerate(HALLUCINATIONS):
            session.add(_trace(f"{tag}-hal-{n}", at(1 + n), incident_id=incident_id, kinds=["hallucination"],
                               prompt_hash=prompt_hash, input=question, output=answer, hallucination_score=0.92))
        for n, (prompt_hash, question, answer) in enumerate(SCHEMA_FAILURES):
            session.add(_trace(f"{tag}-json-{n}", at(2 + n), incident_id=incident_id, kinds=["schema_invalid"],
                               prompt_hash=prompt_hash, input=question, output=answer, schema_valid=False,
                               hallucination_score=0.1))
        for n in range(20):  # healthy traffic in the window, linked to nothing
            session.add(_trace(f"{tag}-ok-{n}", at(0.5 * n + 0.25), incident_id=None, kinds=[],
                               prompt_hash="h-ok", input="What are your opening hours?", output="9 to 5.",
                               hallucination_score=0.05))
        session.add(ActionRun(incident_id=incident_id, playbook="fallback", params={"route": "safe-fallback-8b"},
                              idempotency_key=f"{tag}-fallback", status="succeeded", requested_by="U0PRIYA",
                              requested_at=at(4), started_at=at(4), finished_at=at(4) + timedelta(seconds=1.4),
                              result={"status": "succeeded", "verify": {"ok": True, "attempts": 2}, "duration_s": 1.4}))
        session.flush()
        traces.label_trace(session, f"{tag}-hal-0", failure_type="unsupported claim",
                           expected="Refunds are available within 30 days.", notes="pinned in the channel",
                           actor="U0PRIYA", at=at(3))
        session.add(ActionRun(incident_id=incident_id, playbook="rollback", params={"bundle": "v41"},
                              idempotency_key=f"{tag}-rollback", status="succeeded", requested_by="U0PRIYA",
                              approved_by="U0SAM", requested_at=at(10), started_at=at(11),
                              finished_at=at(11) + timedelta(seconds=3),
                              result={"status": "succeeded", "verify": {"ok": True, "attempts": 1}, "duration_s": 3.0}))
        # The service re-registers v41 when the rollback deploys it: v41 now sorts after v42.
        bundles.register_bundle(session, service="llm-gateway", version="v41", components=V41, deployed_at=at(11))
        service.add_followup(session, incident, "Diff retriever snapshots in the release checklist", actor="U0PRIYA",
                             owner="U0SAM")
        if resolve:
            service.resolve(session, incident, actor="U0SAM", at=at(13))

    if resolve:  # Alertmanager's resolved notification closes the alert episodes
        resolved = [{**a, "status": "resolved", "endsAt": _am_time(opened + timedelta(minutes=13))} for a in alerts]
        assert warroom.alertmanager(am_payload(resolved, group=group)).status_code == 200
    return Seeded(incident_id, opened, alert_start)


def section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    assert match, f"no section {title!r}"
    return match.group(1)


def draft_of(warroom: Warroom, incident_id: int) -> Postmortem:
    with transaction(warroom.runtime.engine) as session:
        return store.generate(session, incident_id)


def test_context_carries_the_incidents_facts_impact_and_lineage(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    with transaction(warroom.runtime.engine) as session:
        ctx = assemble.build_context(session, seeded.incident_id)
    assert ctx.incident.ref == f"INC-{seeded.opened:%Y%m%d}-{seeded.incident_id:04d}"
    assert (ctx.incident.service, ctx.incident.severity, ctx.incident.status) == ("llm-gateway", "SEV2", "resolved")
    assert ctx.impact.mtta == timedelta(minutes=2) and ctx.impact.mttr == timedelta(minutes=13)
    assert ctx.impact.requests_affected == 12
    assert ctx.impact.budget_consumed is None  # no SLO definition passed
    assert ctx.bundles.live_version == "v42" and ctx.bundles.previous_version == "v41"
    assert ctx.bundles.changed_components == ["prompt answer-v41→answer-v42",
                                              "retriever snapshot policy-2026-03-01→policy-2026-03-14"]
    assert ctx.bundles.rolled_back_to == "v41"
    assert ctx.traces.counts == {"hallucination": 9, "schema_invalid": 3}


def test_examples_are_redacted_labelled_first_and_cover_every_failure_type(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    with transaction(warroom.runtime.engine) as session:
        examples = assemble.build_context(session, seeded.incident_id).traces.examples
    assert len(examples) == 5
    assert examples[0].request_id.endswith("-hal-0")  # the one a human labelled
    assert {kind for e in examples for kind in e.failure_types} == {"hallucination", "schema_invalid"}
    assert len({e.input for e in examples}) == 5  # five different prompts, not five copies of one
    assert all(EMAIL not in e.input for e in examples) and "[email]" in examples[0].input


def test_budget_consumed_comes_from_the_slo_over_the_incident_window(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    slo = SLO(service="llm-gateway", name="hallucination-rate", sli="hallucination_rate", objective=99.0,
              trace=TraceRule("hallucination_score", ">", 0.5))
    with transaction(warroom.runtime.engine) as session:
        ctx = assemble.build_context(session, seeded.incident_id, budget_slo=slo)
        first_alert = as_utc(session.execute(select(Alert.starts_at).where(Alert.incident_id == seeded.incident_id)
                                             ).scalars().first())
    end = seeded.opened + timedelta(minutes=13)
    # 9 bad of the 32 scored traces, over first alert → resolution, against a 30-day budget of 1 %.
    expected = (9 / 32) / 0.01 * (end - first_alert).total_seconds() / (30 * 86400)
    assert ctx.impact.budget_consumed == pytest.approx(expected)


def test_draft_has_every_section_and_tells_the_story(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    draft = draft_of(warroom, seeded.incident_id).draft
    positions = [draft.index(f"\n## {title}\n") for title in SECTIONS]
    assert positions == sorted(positions)
    impact = section(draft, "Impact")
    assert "MTTA): 2 m" in impact and "MTTR): 13 m" in impact and "Requests affected: 12" in impact
    lineage = section(draft, "Release bundle lineage")
    assert "Live when the incident opened: `v42`" in lineage and "Previous bundle: `v41`" in lineage
    assert "prompt answer-v41→answer-v42" in lineage and "Rolled back to: `v41`" in lineage
    assert "v43" not in draft  # deployed after the incident opened
    timeline_md = section(draft, "Timeline")
    assert "📌 `pinned` refund trace says @U0PRIYA 90 days" in timeline_md
    assert "Acknowledged by @U0PRIYA (MTTA 2 m)" in timeline_md
    actions = section(draft, "Actions taken")
    assert "| `rollback` | bundle=v41 | U0PRIYA | U0SAM | succeeded | 3.0 s | yes |" in actions
    assert "| `fallback` | route=safe-fallback-8b | U0PRIYA | not required | succeeded | 1.4 s | yes |" in actions
    traces = section(draft, "Failing traces")
    assert "| hallucination | 9 |" in traces and "| schema_invalid | 3 |" in traces
    assert "[email]" in traces and EMAIL not in draft
    assert "Diff retriever snapshots in the release checklist (owner @U0SAM)" in section(draft, "Follow-ups")


def test_regenerating_keeps_the_human_edit_and_flags_a_changed_draft(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    first = draft_of(warroom, seeded.incident_id)
    with transaction(warroom.runtime.engine) as session:
        edited = store.save_edit(session, seeded.incident_id, "# Our review\r\nThe retriever snapshot was stale.\r\n")
    assert store.current_text(edited) == "# Our review\nThe retriever snapshot was stale.\n"

    same = draft_of(warroom, seeded.incident_id)  # nothing changed in the record
    assert same.draft == first.draft and not store.draft_changed_since_edit(same)

    with transaction(warroom.runtime.engine) as session:
        service.add_followup(session, service.get(session, seeded.incident_id), "Add a retriever freshness check",
                             actor="U0SAM", owner=None)
    again = draft_of(warroom, seeded.incident_id)
    assert again.edited == "# Our review\nThe retriever snapshot was stale.\n"
    assert "Add a retriever freshness check" in again.draft and again.draft != first.draft
    assert store.draft_changed_since_edit(again)
    assert store.current_text(again) == again.edited
    assert warroom.count(Postmortem) == 1


def test_an_empty_edit_goes_back_to_the_draft(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    with transaction(warroom.runtime.engine) as session:
        store.save_edit(session, seeded.incident_id, "mine")
        pm = store.save_edit(session, seeded.incident_id, "  \n")
    assert pm.edited is None and store.current_text(pm) == pm.draft


def test_an_incident_with_no_service_record_says_so_plainly(warroom: Warroom) -> None:
    with transaction(warroom.runtime.engine) as session:
        declared = service.declare(session, title="Checkout answers look odd", severity=3, actor="U0PRIYA")
        ctx = assemble.build_context(session, declared.id)
        draft = store.generate(session, declared.id).draft
    assert ctx.impact.requests_affected is None and ctx.bundles.live_version is None
    assert "_No release bundle was registered for this service._" in draft
    assert "_No failing traces were linked to this incident._" in draft


def test_an_unknown_incident_is_not_found(warroom: Warroom) -> None:
    with transaction(warroom.runtime.engine) as session, pytest.raises(NotFound):
        store.generate(session, 424242)


def test_two_replicas_generating_at_once_store_one_postmortem(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def generate() -> None:
        try:
            start.wait(timeout=10)
            draft_of(warroom, seeded.incident_id)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=generate) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not errors and warroom.count(Postmortem) == 1
