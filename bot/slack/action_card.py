"""Block Kit for an action run: what will change, who decided, what happened."""

from __future__ import annotations

from typing import Any

from bot.models import ActionRun
from bot.slack.blocks import button
from bot.slack.text import code, cut, safe

STATUS_WORDS = {
    "awaiting_confirmation": "⏸ waiting for confirmation", "awaiting_approval": "✋ waiting for a second person to approve",
    "queued": "⏳ queued", "running": "⚙️ running", "succeeded": "✅ succeeded", "failed": "❌ failed",
    "unknown": "❓ unknown — warroom stopped mid-run", "cancelled": "🚫 cancelled",
}


def action_card(run: ActionRun, *, description: str, change_line: str | None, preview: list[dict[str, Any]] | None,
                destructive: bool) -> list[dict[str, Any]]:
    title = f"undo of run #{run.undo_of}" if run.undo_of else f"`{run.playbook}`"
    params = ", ".join(f"{k}=`{safe(str(v), 100)}`" for k, v in sorted(run.params.items())) or "no parameters"
    lines = [f"*Run #{run.id}: {title}* — {STATUS_WORDS.get(run.status, run.status)}",
             f"{safe(description, 300)}", f"Parameters: {params}",
             f"Requested by <@{run.requested_by}>" + (f" · approved by <@{run.approved_by}>" if run.approved_by else "")]
    if change_line:
        lines.append(f"*Will change:* {safe(change_line, 500)}")
    if destructive and run.status in ("awaiting_confirmation", "awaiting_approval"):
        lines.append("⚠️ This action is destructive.")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": cut("\n".join(lines), 2900)}}]
    if preview and run.status in ("awaiting_confirmation", "awaiting_approval"):
        requests = "\n".join(f"{p.get('method')} {p.get('url')}" + (f"  {p['json']}" if p.get("json") else "")
                             for p in preview)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "Requests (secrets masked):\n" + code(requests, 2000)}]})
    result = run.result or {}
    if result.get("steps"):
        steps = "\n".join(f"{'✓' if s.get('ok') else '✗'} {safe(s.get('name', ''), 80)} — HTTP {s.get('status_code')}"
                          f" in {s.get('duration_s', 0):.2f} s" + (f": {safe(s['error'], 300)}" if s.get("error") else "")
                          for s in result["steps"])
        verify = result.get("verify")
        if verify:
            steps += f"\n{'✓' if verify.get('ok') else '✗'} verify after {verify.get('attempts')} check(s): " \
                     f"{safe(verify.get('last_observation', ''), 300)}"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(steps, 2900)}]})
    buttons = _buttons(run)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"run:{run.id}", "elements": buttons})
    return blocks


def _buttons(run: ActionRun) -> list[dict[str, Any]]:
    value = str(run.id)
    if run.status == "awaiting_confirmation":
        return [button("Confirm", "action.confirm", value, "primary"), button("Dry run", "action.dry_run", value),
                button("Cancel", "action.cancel", value)]
    if run.status == "awaiting_approval":
        return [button("Approve", "action.approve", value, "primary"), button("Cancel", "action.cancel", value)]
    if run.status == "succeeded" and not run.undo_of:
        return [button("Undo", "action.undo", value)]
    return []
