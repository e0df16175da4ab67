"""``/incident evals``: this incident's eval cases (collected from its failing traces on the spot)."""

from __future__ import annotations

from slack_bolt import App

from bot.incidents import operations
from bot.slack.command_table import CommandTable, Reply, command
from bot.slack.context import SlackContext
from bot.slack.eval_blocks import incident_cases
from bot.slack.invocation import Invocation
from bot.slack.listeners.commands import incident_id_for


@command("evals", help="`evals` — this incident's eval cases, to label")
def _evals(ctx: SlackContext, inv: Invocation) -> Reply:
    incident_id = incident_id_for(ctx, inv)
    cases, counts = operations.eval_cases(ctx.engine, incident_id, redactor=ctx.runtime.redactor)
    if not cases:
        return f"Incident #{incident_id} has no failing traces yet, so no eval cases."
    return incident_cases(incident_id, cases, counts)


def register(app: App, ctx: SlackContext, table: CommandTable) -> None:
    """Only a subcommand of `/incident`: no listener of its own."""
    _ = (app, ctx)
    table.add(_evals)
