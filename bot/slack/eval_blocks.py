"""`/incident evals`: the incident's eval cases, labelled and unlabelled, each with a Label button."""

from __future__ import annotations

from typing import Any

from bot.evals.suite import SuiteCase
from bot.slack.blocks import button
from bot.slack.text import MAX_BLOCKS, SECTION_TEXT_LIMIT, cut, safe

# Two blocks are the header and the footer; the rest are cases.
MAX_CASES = MAX_BLOCKS - 3


def incident_cases(incident_id: int, cases: list[SuiteCase], counts: dict[str, int]) -> dict[str, Any]:
    labelled = [c for c in cases if c.labelled]
    unlabelled = [c for c in cases if not c.labelled]
    head = (f"*Eval cases of incident #{incident_id}*: {len(cases)} "
            f"({counts.get('new', 0)} new, {counts.get('updated', 0)} seen in earlier incidents) · "
            f"{len(labelled)} labelled, {len(unlabelled)} unlabelled. "
            "Unlabelled cases do not block the gate until someone labels them.")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": cut(head,
                                                                                               SECTION_TEXT_LIMIT)}}]
    for case in (unlabelled + labelled)[:MAX_CASES]:
        state = "✅ labelled" if case.labelled else "❔ unlabelled"
        others = [f"#{i}" for i in case.incidents if i != incident_id]
        text = (f"`{case.case_id}` · {safe(case.failure_type, 40)} · {state} · {case.trace_count} trace(s)"
                + (f" · also in {', '.join(others)}" if others else "")
                + f"\n*Q:* {_question(case)}\n*A:* {safe(str(case.data.get('output') or '(no output)'), 500)}")
        section: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_TEXT_LIMIT)}}
        if case.request_ids:
            section["accessory"] = button("Relabel" if case.labelled else "Label", "trace.label", case.request_ids[0])
        blocks.append(section)
    if len(cases) > MAX_CASES:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f"… and {len(cases) - MAX_CASES} more: `warroom evals export --service NAME`"}]})
    return {"text": head, "blocks": blocks}


def _question(case: Any) -> str:
    """The case's question, or why it has none (an OTLP span without message content)."""
    if case.question:
        return safe(case.question, 300)
    return f"_(no input: {safe(str(case.data.get('input_missing') or 'the trace carried none'), 280)})_"
