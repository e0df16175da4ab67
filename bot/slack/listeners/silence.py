"""``/incident silence <duration>``: mute the incident's alert group in Alertmanager.

Silencing hides pages from everyone, so like acknowledging it is for people in the incident
channel; `bot.incidents.silences` talks to Alertmanager and writes the timeline.
"""

from __future__ import annotations

import httpx
from slack_bolt import App

from bot.errors import UserError
from bot.incidents.silences import parse_duration, silence_incident
from bot.slack.command_table import CommandTable, command
from bot.slack.context import SlackContext
from bot.slack.invocation import Invocation
from bot.slack.listeners.commands import incident_id_for

USAGE = "Usage: `/incident silence <duration>`, e.g. `/incident silence 30m` (at most 7 days)."
NO_ALERTMANAGER = ("Silencing needs to know where Alertmanager is: set WARROOM_ALERTMANAGER_URL "
                   "(e.g. http://alertmanager:9093) and restart warroom.")
ALERTMANAGER_TIMEOUT_SECONDS = 10


def register(app: App, ctx: SlackContext, table: CommandTable) -> None:
    _ = (app, ctx)
    table.add(command("silence", help="`silence <duration>`")(silence))


def silence(ctx: SlackContext, inv: Invocation) -> str:
    alertmanager_url = ctx.runtime.settings.alertmanager_url
    if not alertmanager_url:
        raise UserError(NO_ALERTMANAGER)
    if not inv.args:
        raise UserError(USAGE)
    duration = parse_duration(inv.args)
    incident_id = incident_id_for(ctx, inv)
    ctx.authorise_for_incident("silence", incident_id, inv.user)
    with httpx.Client(timeout=ALERTMANAGER_TIMEOUT_SECONDS) as client:
        result = silence_incident(ctx.engine, client, alertmanager_url, incident_id, duration=duration, actor=inv.user)
    ctx.runtime.wake.set()  # the timeline line goes to the channel through the outbox
    labels = ", ".join(f"`{k}={v}`" for k, v in sorted(result.matchers.items()))
    return (f"🔕 Silenced incident #{incident_id}'s alerts until {result.ends_at:%Y-%m-%d %H:%M} UTC "
            f"(silence `{result.id}`; matching {labels}).")
