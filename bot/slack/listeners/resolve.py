"""Resolving while alerts still fire: ask first, say how many, resolve only on "Resolve anyway".

`/incident resolve` and the card's Resolve button answer with this prompt (ephemeral, with
buttons) instead of resolving when the incident has firing alerts; a resolved incident whose
alerts still fire is usually a mistake, or a decision worth making on purpose.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.incidents import metrics, operations
from bot.slack.blocks import button
from bot.slack.context import SlackContext
from bot.slack.guard import RespondOrTell
from bot.slack.text import cut, escape

RESOLVE_ANYWAY, KEEP_OPEN = "incident.resolve_anyway", "incident.resolve_keep_open"
VALUE_LIMIT = 1900  # Slack allows 2000 characters in a button value: the summary rides along


def confirmation(incident_id: int, firing: int, summary: str = "") -> dict[str, Any]:
    """The ephemeral prompt: how many alerts fire, and the two buttons."""
    alerts = "1 alert is" if firing == 1 else f"{firing} alerts are"
    text = f"⚠️ {alerts} still firing for incident #{incident_id}. Resolve it anyway?"
    value = f"{incident_id}:{cut(summary, VALUE_LIMIT)}"
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}},
        {"type": "actions", "block_id": f"resolve-confirm:{incident_id}", "elements": [
            button("Resolve anyway", RESOLVE_ANYWAY, value, "danger"),
            button("Keep it open", KEEP_OPEN, str(incident_id))]},
    ]}


def resolve(ctx: SlackContext, incident_id: int, user: str, summary: str | None) -> str:
    """Resolve after the prompt (membership checked again: the prompt may be old)."""
    ctx.authorise_for_incident("resolve", incident_id, user)  # the one permission table (`bot.incidents.permissions`)
    incident, firing = operations.resolve(ctx.engine, incident_id, actor=user, summary=summary or None)
    ctx.runtime.wake.set()
    return (f"Resolved incident #{incident_id} (MTTR {metrics.human(metrics.mttr(incident))}) "
            f"with {firing} alert(s) still firing.")


def resolve_or_ask(ctx: SlackContext, incident_id: int, user: str) -> str | dict[str, Any]:
    """The card's Resolve button: the prompt while alerts fire, else resolve."""
    if firing := operations.firing_alerts(ctx.engine, incident_id):
        ctx.authorise_for_incident("resolve", incident_id, user)
        return confirmation(incident_id, firing)
    return resolve(ctx, incident_id, user, None)


def register(app: App, ctx: SlackContext) -> None:
    @app.action(RESOLVE_ANYWAY)
    def resolve_anyway(ack: Ack, body: dict[str, Any], respond: RespondOrTell) -> None:
        ack()
        incident_id, _, summary = body["actions"][0]["value"].partition(":")
        user = body["user"]["id"]
        ctx.background(lambda: resolve(ctx, int(incident_id), user, summary), respond)

    @app.action(KEEP_OPEN)
    def keep_open(ack: Ack, respond: RespondOrTell) -> None:
        ack()
        respond(text="OK, the incident stays open.", replace_original=True)
