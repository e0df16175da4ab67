from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError

from bot.postmortem import (
    ActionRecord,
    BundleLineage,
    Impact,
    IncidentInfo,
    PostmortemContext,
    TimelineEntry,
    TraceExample,
    TraceSummary,
    render_postmortem,
)

OPENED = datetime(2026, 3, 14, 2, 7, 1)
SECTIONS = ["Summary", "Impact", "Timeline", "Actions taken", "Release bundle lineage", "Failing traces",
            "Contributing factors", "Lessons learned", "Follow-ups"]


def at(minutes: float) -> datetime:
    return OPENED + timedelta(minutes=minutes)


def scenario(**overrides: Any) -> PostmortemContext:
    fields: dict[str, Any] = dict(
        incident=IncidentInfo(
            id=1, ref="INC-20260314-0001", title="llm-gateway hallucination-rate burning", service="llm-gateway",
            slo="hallucination-rate", severity="SEV2", status="resolved", opened_at=OPENED, acknowledged_at=at(2),
            mitigated_at=at(4), resolved_at=at(13), commander="priya",
            channel="inc-1-llm-gateway-hallucination-rate",
        ),
        impact=Impact(budget_consumed=0.021, requests_affected=3400),
        timeline=[
            TimelineEntry(at=OPENED, kind="declared", actor="alertmanager", text="3 alerts firing"),
            TimelineEntry(at=at(2), kind="acknowledged", actor="priya", text="Acknowledged"),
            TimelineEntry(at=at(3), kind="message", actor="priya", text="refund trace says 90 days", pinned=True),
        ],
        actions=[
            ActionRecord(playbook="fallback", params={"route": "safe-fallback-8b"}, requested_by="priya",
                         status="succeeded", started_at=at(4), duration_s=1.4, verify=True),
            ActionRecord(playbook="rollback", params={"bundle": "v41"}, requested_by="priya", approved_by="sam",
                         status="succeeded", started_at=at(12), duration_s=3.0, verify=True),
        ],
        bundles=BundleLineage(live_version="v42", live_components={"prompt": "answer-v42",
                                                                   "model_route": "primary-70b"},
                              previous_version="v41", changed_components=["prompt", "retriever_snapshot"],
                              rolled_back_to="v41"),
        traces=TraceSummary(counts={"hallucination": 9, "schema_invalid": 3}, examples=[
            TraceExample(request_id="req-refund", input="What is the refund policy? I'm jane@example.com",
                         output="Refunds are available within 90 days, no receipt needed.",
                         failure_types=["hallucination"]),
        ]),
        followups=["Diff retriever snapshots in the release checklist"],
        eval_cases_added=9,
    )
    fields.update(overrides)
    return PostmortemContext(**fields)


def section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    assert match, f"no section {title!r}"
    return match.group(1)


def test_draft_has_every_section_in_order_with_the_incidents_facts() -> None:
    draft = render_postmortem(scenario())
    assert draft.startswith("# Postmortem INC-20260314-0001: llm-gateway hallucination-rate burning\n")
    positions = [draft.index(f"\n## {title}\n") for title in SECTIONS]
    assert positions == sorted(positions)
    impact = section(draft, "Impact")
    assert "MTTA): 2 m" in impact and "MTTR): 13 m" in impact
    assert "2.1 %" in impact and "3,400" in impact
    assert "Eval cases added: 9" in section(draft, "Follow-ups")
    assert "- [ ] Diff retriever snapshots in the release checklist" in section(draft, "Follow-ups")


def test_timeline_is_in_utc_and_marks_pinned_events() -> None:
    paris = datetime.fromisoformat("2026-03-14T03:10:01+01:00")
    ctx = scenario(timeline=[TimelineEntry(at=paris, kind="message", actor="priya", text="pinned trace", pinned=True)])
    timeline = section(render_postmortem(ctx), "Timeline")
    assert "| 02:10:01 | priya | 📌 `message` pinned trace |" in timeline


def test_actions_show_who_approved_and_how_it_went() -> None:
    actions = section(render_postmortem(scenario()), "Actions taken")
    assert "| `rollback` | bundle=v41 | priya | sam | succeeded | 3.0 s | yes |" in actions
    assert "| `fallback` | route=safe-fallback-8b | priya | not required | succeeded | 1.4 s | yes |" in actions


def test_bundle_lineage_and_failing_traces_are_shown_with_pii_redacted() -> None:
    draft = render_postmortem(scenario())
    lineage = section(draft, "Release bundle lineage")
    assert "`v42`" in lineage and "prompt: `answer-v42`" in lineage and "Rolled back to: `v41`" in lineage
    traces = section(draft, "Failing traces")
    assert "| hallucination | 9 |" in traces
    assert "jane@example.com" not in draft and "[email]" in traces
    assert "90 days, no receipt needed" in traces


def test_user_text_cannot_break_the_markdown() -> None:
    hostile = "refund | policy\n# Heading injection\n<script>alert(1)</script>"
    ctx = scenario(
        incident=scenario().incident.model_copy(update={"title": "# bad | title\nsecond line"}),
        timeline=[TimelineEntry(at=OPENED, kind="message", actor="mallory|x", text=hostile)],
        followups=["- [x] pretend done"],
    )
    draft = render_postmortem(ctx)
    assert draft.startswith("# Postmortem INC-20260314-0001: \\# bad \\| title second line\n")
    row = next(line for line in section(draft, "Timeline").splitlines() if "Heading injection" in line)
    assert len(re.findall(r"(?<!\\)\|", row)) == 4  # unescaped pipes: still exactly three cells
    assert "<script>" not in draft and "&lt;script&gt;" in row
    assert not any(line.startswith("# Heading") for line in draft.splitlines())
    assert "- [ ] \\- [x] pretend done" in draft


def test_missing_facts_are_said_plainly_instead_of_failing() -> None:
    bare = PostmortemContext(incident=IncidentInfo(id="7", ref="INC-20260314-0007", title="t", status="triggered",
                                                   opened_at=OPENED))
    draft = render_postmortem(bare)
    assert "never acknowledged" in draft and "not resolved yet" in draft
    assert "_No playbook actions were run through warroom._" in draft
    assert "_No failing traces were linked to this incident._" in draft
    assert "Eval cases added: 0" in draft


def test_a_written_summary_replaces_the_generated_one_and_keeps_its_paragraphs() -> None:
    written = "Users saw wrong refund terms.\n\n# v42 trusted a forum post."
    summary = section(render_postmortem(scenario(summary=written)), "Summary")
    assert summary.strip() == "Users saw wrong refund terms.\n\n\\# v42 trusted a forum post."


def test_a_template_in_the_users_folder_overrides_the_builtin(tmp_path: Path) -> None:
    (tmp_path / "postmortem.md.j2").write_text("# {{ incident.ref }} review for {{ incident.title | md }}\n")
    assert render_postmortem(scenario(),
                             tmp_path) == "# INC-20260314-0001 review for llm-gateway hallucination-rate burning\n"
    assert "## Summary" in render_postmortem(scenario(), tmp_path / "empty-folder")


def test_a_misspelt_variable_in_an_override_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "postmortem.md.j2").write_text("{{ incident.titel }}\n")
    with pytest.raises(UndefinedError):
        render_postmortem(scenario(), tmp_path)


def test_ten_thousand_timeline_events_render_fast_and_keep_what_humans_did() -> None:
    noise = [TimelineEntry(at=OPENED + timedelta(seconds=i), kind="alert", actor="alertmanager", text=f"update {i}")
             for i in range(10_000)]
    human = [TimelineEntry(at=at(2.5), kind="message", actor="priya", text="checking traces", pinned=True),
             TimelineEntry(at=at(13), kind="resolved", actor="warroom", text="resolved")]
    ctx = scenario(timeline=noise + human)
    started = time.perf_counter()
    draft = render_postmortem(ctx)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"render took {elapsed:.2f} s"
    timeline = section(draft, "Timeline")
    assert "📌 `message` checking traces" in timeline and "`resolved` resolved" in timeline
    assert "update 0 |" in timeline and "update 9999 |" in timeline and "update 5000 |" not in timeline
    skipped = sum(int(n.replace(",", "")) for n in re.findall(r"… ([\d,]+) more automated events", timeline))
    shown = len(re.findall(r"`alert` update \d+", timeline))
    assert shown == 10 and skipped + shown == 10_000
    assert len(timeline.splitlines()) < 40
