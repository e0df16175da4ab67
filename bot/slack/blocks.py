"""Block Kit for the incident card, the announcement and the runbook post.

Rendering only: it takes plain values (a `CardView`) and returns blocks. Alert text is untrusted
and goes through `text.safe`; every block respects Slack's limits (50 blocks, 3000 characters a
text, 150 a button or header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.slack.text import MAX_BLOCKS, PLAIN_TEXT_LIMIT, SECTION_TEXT_LIMIT, cut, escape, escape_keep_mentions, safe

STATUS_ICON = {"triggered": "🔴", "acknowledged": "🟠", "mitigated": "🟡", "resolved": "🟢", "closed": "⚪"}


@dataclass
class CardView:
    id: int
    title: str
    status: str
    severity: int
    service: str | None = None
    slo: str | None = None
    firing: int = 0
    resolved: int = 0
    unlisted: int = 0
    burn_rate: str | None = None
    commander: str | None = None
    acknowledged_by: str | None = None
    mtta: str | None = None
    mttr: str | None = None
    channel_id: str | None = None
    runbook_title: str | None = None
    bundle_line: str | None = None
    change_line: str | None = None  # "Changed 17 min before: bundle v42 by deploy-bot"
    auto_line: str | None = None  # warroom's own action and the guard's verdict (bot.automation)
    traffic_line: str | None = None  # requests and failing fraction since the incident started
    budget_line: str | None = None  # the error budget consumed, and where the figure came from
    monitoring_gap: bool = False
    status_text: str | None = None
    links: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failing_traces: int = 0  # LLM traces linked to the incident that failed the trace rules
    # The incident's other alert groups (correlation), "schema-valid-rate (ticket)", by whether any
    # of their alerts fires; and a storm incident's live count of groups.
    other_groups: list[str] = field(default_factory=list)
    resolved_groups: list[str] = field(default_factory=list)
    storm_groups: int | None = None
    thread_only: bool = False  # a low-severity incident living in a thread of the incidents channel
    # `/incident merge` ended this incident in another one (and its channel, if it has one).
    merged_into: int | None = None
    merged_into_channel: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in ("triggered", "acknowledged", "mitigated")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(text, PLAIN_TEXT_LIMIT), "emoji": True}


def _md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": cut(text, SECTION_TEXT_LIMIT)}


MAX_GROUPS_SHOWN = 8


def button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "button", "text": _plain(label), "action_id": action_id, "value": value}
    if style:
        b["style"] = style
    return b


def severity_select(incident_id: int, current: int) -> dict[str, Any]:
    options = [{"text": _plain(f"SEV{n}"), "value": f"{incident_id}:{n}"} for n in (1, 2, 3, 4)]
    return {"type": "static_select", "action_id": "incident.severity", "placeholder": _plain("Severity"),
            "options": options, "initial_option": options[current - 1]}


def headline(view: CardView) -> str:
    return f"{STATUS_ICON.get(view.status, '')} SEV{view.severity} · {view.title}".strip()


def card(view: CardView) -> list[dict[str, Any]]:
    alerts = f"{view.firing} firing · {view.resolved} resolved"
    if view.unlisted:
        alerts += f" · {view.unlisted} not listed"
    fields = [
        f"*Status*\n{view.status}", f"*Severity*\nSEV{view.severity}",
        f"*Service*\n{safe(view.service or '–', 100)}", f"*SLO*\n{safe(view.slo or '–', 100)}",
        f"*Alerts*\n{alerts}", f"*Burn rate*\n{safe(view.burn_rate + '×', 20) if view.burn_rate else '–'}",
    ]
    if view.failing_traces:
        fields.append(f"*Failing traces*\n{view.failing_traces}")
    if view.acknowledged_by:
        fields.append(f"*Acknowledged*\n<@{view.acknowledged_by}> (MTTA {view.mtta or '–'})")
    if view.commander:
        fields.append(f"*Commander*\n<@{view.commander}>")
    if view.mttr:
        fields.append(f"*MTTR*\n{view.mttr}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(headline(view))},
        {"type": "section", "fields": [_md(f) for f in fields[:10]]},
    ]
    context = []
    if view.merged_into is not None:
        context.append(f"➡️ {_merged_into(view)}")
    if view.storm_groups is not None:
        context.append(f"🌪️ Storm: {view.storm_groups} alert group(s) joined this incident, "
                       f"{view.firing} alert(s) firing")
    for label, names in (("Also firing", view.other_groups), ("Resolved groups", view.resolved_groups)):
        if names:
            shown = ", ".join(safe(name, 80) for name in names[:MAX_GROUPS_SHOWN])
            more = len(names) - MAX_GROUPS_SHOWN
            context.append(f"{label}: {shown}" + (f" and {more} more" if more > 0 else ""))
    if view.bundle_line:
        context.append(f"Live bundle {safe(view.bundle_line, 400)}")
    if view.change_line:
        context.append(safe(view.change_line, 400))
    if view.auto_line:
        context.append(safe(view.auto_line, 600))
    # One element for both figures of the incident's window: a context block holds at most 10.
    measured = [safe(text, 400) for text in (view.traffic_line, view.budget_line) if text]
    if measured:
        context.append("\n".join(measured))
    if view.runbook_title:
        context.append(f"Runbook: {safe(view.runbook_title, 200)}")
    if view.monitoring_gap:
        context.append("⚠️ Monitoring gap: the alert source reports NoData/Error")
    if view.status_text:
        context.append(f"Status: {safe(view.status_text, 500)}")
    if context:
        blocks.append({"type": "context", "elements": [_md(c) for c in context[:10]]})
    if view.links:
        links = " · ".join(f"<{escape(link['url'])}|{safe(link['title'], 40)}>" for link in view.links[:8])
        blocks.append({"type": "context", "elements": [_md(links)]})
    for warning in view.warnings[:3]:
        blocks.append({"type": "section", "text": _md(f"⚠️ {safe(warning, 600)}")})
    blocks.append({"type": "actions", "block_id": f"card:{view.id}", "elements": card_buttons(view)})
    return blocks


def card_buttons(view: CardView) -> list[dict[str, Any]]:
    value = str(view.id)
    elements: list[dict[str, Any]] = []
    if view.status == "triggered":
        elements.append(button("Acknowledge", "incident.ack", value, "primary"))
    if view.is_open:
        elements.append(button("Run action…", "incident.run_action", value))
        elements.append(button("Resolve", "incident.resolve", value, "danger"))
        elements.append(severity_select(view.id, view.severity))
    elif view.status == "resolved":
        elements.append(button("Reopen", "incident.reopen", value))
    if view.thread_only and view.is_open:
        elements.append(button("Promote to channel", "incident.promote", value))
    return elements


def card_text(view: CardView) -> str:
    return escape(f"{headline(view)} — {view.status}, {view.firing} alert(s) firing")


def _merged_into(view: CardView) -> str:
    where = f" in <#{view.merged_into_channel}>" if view.merged_into_channel else ""
    return f"Merged into incident #{view.merged_into}{where}"


def announcement(view: CardView) -> list[dict[str, Any]]:
    where = f" in <#{view.channel_id}>" if view.channel_id else ""
    if view.merged_into is not None:  # its own channel is archived: point at where the work goes on
        where = f" · {_merged_into(view)}"
    text = f"*{escape(headline(view))}*{where}\n{safe(view.service or '', 100)} · status *{view.status}*"
    if view.acknowledged_by:
        text += f" · acknowledged by <@{view.acknowledged_by}>"
    if view.storm_groups is not None:  # live counts: the announcement is edited with every refresh
        text += f"\n🌪️ Storm: {view.storm_groups} alert group(s), {view.firing} alert(s) firing"
    elif view.other_groups:
        text += f"\n{len(view.other_groups) + 1} alert groups firing"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _md(text)}]
    for warning in view.warnings[:3]:
        blocks.append({"type": "context", "elements": [_md(f"⚠️ {safe(warning, 600)}")]})
    if view.status == "triggered":
        blocks.append({"type": "actions", "block_id": f"announce:{view.id}",
                       "elements": [button("Acknowledge", "incident.ack", str(view.id), "primary")]})
    return blocks


_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.M)


def markdown_to_mrkdwn(body: str) -> str:
    text = escape(body)
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = _BOLD.sub(r"*\1*", text)
    return _HEADING.sub(r"*\1*", text)


def runbook(incident_id: int, title: str, body: str, actions: list[str]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(f"Runbook: {title}")}]
    text = markdown_to_mrkdwn(body)
    chunks, current = [], ""
    for paragraph in text.split("\n\n"):
        if len(current) + len(paragraph) + 2 > SECTION_TEXT_LIMIT - 10:
            chunks.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    chunks.append(current)
    for chunk in chunks[: MAX_BLOCKS - 3]:
        if chunk.strip():
            blocks.append({"type": "section", "text": _md(cut(chunk, SECTION_TEXT_LIMIT))})
    if actions:
        elements = [button(f"Run {name}", "incident.playbook", f"{incident_id}:{name}") for name in actions[:5]]
        blocks.append({"type": "actions", "block_id": f"runbook:{incident_id}", "elements": elements})
    return blocks[:MAX_BLOCKS]


def line(text: str) -> list[dict[str, Any]]:
    """A timeline line: people's text is escaped, warroom's own <@U…>/<#C…> references kept."""
    return [{"type": "context", "elements": [_md(cut(escape_keep_mentions(text), SECTION_TEXT_LIMIT))]}]


def failing_traces(total: int, window_minutes: int, examples: list[dict[str, Any]],
                   heading: str | None = None) -> list[dict[str, Any]]:
    """"N failing traces in the last 15 min — top 3" (or ``heading``), each with a Label button
    (texts already redacted)."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _md(heading or (
        f"*{total} failing trace(s)* of this service from {window_minutes} min before the alert"
        f" — top {len(examples)}"))}]
    for example in examples:
        text = (f"`{safe(example['request_id'], 60)}` · {safe(', '.join(example['failure_types']), 80)} · "
                f"bundle {safe(example.get('bundle') or '–', 30)}\n*Q:* {safe(example['question'], 300)}\n"
                f"*A:* {safe(example['output'] or '(no output)', 600)}")
        blocks.append({"type": "section", "text": _md(text),
                       "accessory": button("Label", "trace.label", example["request_id"])})
    return blocks


def markdown_document(title: str, markdown: str) -> list[dict[str, Any]]:
    """A long Markdown text as consecutive sections (Slack has no Markdown file preview here)."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(title)}]
    chunk = ""
    for line in markdown_to_mrkdwn(markdown).splitlines():
        if len(chunk) + len(line) + 1 > SECTION_TEXT_LIMIT - 50:
            blocks.append({"type": "section", "text": _md(chunk)})
            chunk = ""
        chunk += line + "\n"
    if chunk.strip():
        blocks.append({"type": "section", "text": _md(chunk)})
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[: MAX_BLOCKS - 1], {"type": "context", "elements": [_md("… the rest is on the page")]}]
    return blocks
