"""Block Kit for an action run: what will change, who decided, what happened."""

from __future__ import annotations

from typing import Any

from bot.incidents.permissions import is_automation
from bot.slack.blocks import button
from bot.slack.text import code, cut, safe
from bot.store.models import ActionRun

STATUS_WORDS = {
    "awaiting_confirmation": "⏸ waiting for confirmation",
                "awaiting_approval": "✋ waiting for a second person to approve",
    "queued": "⏳ queued", "running": "⚙️ running", "succeeded": "✅ succeeded", "failed": "❌ failed",
    "unknown": "❓ unknown — warroom stopped mid-run", "cancelled": "🚫 cancelled — nothing ran",
    "expired": "⌛ expired before it was confirmed and approved — nothing ran",
}
WAITING = ("awaiting_confirmation", "awaiting_approval", "queued", "running")


def action_card(run: ActionRun, *, description: str, change_line: str | None, preview: list[dict[str, Any]] | None,
                destructive: bool, restores: dict[str, Any] | None = None, live: str | None = None,
                expires_at: str | None = None) -> list[dict[str, Any]]:
    """``restores``: for an undo, the values the undone run saved (what the undo puts back);
    ``live``: what the control plane reported after the run; ``expires_at``: when a waiting run lapses."""
    title = f"undo of run #{run.undo_of} (`{run.playbook}`)" if run.undo_of else f"`{run.playbook}`"
    params = _pairs(run.params) or "no parameters"
    if run.undo_of:
        # The undo's own parameters are what it restores; the original's are context, not the target.
        params = f"restores {_pairs(restores or {}) or 'the state before run #' + str(run.undo_of)}" \
                 f" (run #{run.undo_of} had {_pairs(run.params) or 'no parameters'})"
    lines = [f"*Run #{run.id}: {title}* — {STATUS_WORDS.get(run.status, run.status)}",
             f"{safe(description, 300)}", f"Parameters: {params}",
             f"Requested by {_person(run.requested_by)}"
             + (f" · approved by <@{run.approved_by}>" if run.approved_by else "")]
    if is_automation(run.requested_by) and run.status == "succeeded" and not run.undo_of:
        lines.append("warroom ran this on its own (the runbook says so). Anyone who may run it can press Undo; "
                     "the undo then asks them to confirm.")
    if change_line:
        label = "Changed" if run.status == "succeeded" else "Will change" if run.status in WAITING else "Was to change"
        lines.append(f"*{label}:* {safe(change_line, 500)}")
    if live:
        lines.append(f"*Live now (verified):* {safe(live, 300)}")
    if expires_at and run.status in ("awaiting_confirmation", "awaiting_approval"):
        lines.append(f"Expires at {expires_at} if not confirmed and approved by then.")
    if destructive and run.status in ("awaiting_confirmation", "awaiting_approval"):
        lines.append("⚠️ This action is destructive.")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": cut("\n".join(lines),
                                                                                               2900)}}]
    if preview and run.status in ("awaiting_confirmation", "awaiting_approval"):
        requests = "\n".join(f"{p.get('method')} {p.get('url')}" + (f"  {p['json']}" if p.get("json") else "")
                             for p in preview)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                                                        "text": "Requests (secrets masked):\n" + code(requests,
                                                                                                      2000)}]})
    result = run.result or {}
    if result.get("steps"):
        steps = "\n".join(f"{'✓' if s.get('ok') else '✗'} {safe(s.get('name', ''), 80)} — HTTP {s.get('status_code')}"
                          f" in {s.get('duration_s', 0):.2f} s"
                          + (f": {safe(s['error'], 300)}" if s.get("error") else "")
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


def _person(user: str) -> str:
    return "warroom (automatic)" if is_automation(user) else f"<@{user}>"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}=`{safe(str(v), 100)}`" for k, v in sorted(values.items()))


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
