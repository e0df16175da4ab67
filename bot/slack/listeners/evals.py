"""``/incident evals``: this incident's eval cases (collected from its failing traces on the spot)."""

from __future__ import annotations

from slack_bolt import App

from bot.db import transaction
from bot.eval_suite import collect_incident, incident_case_counts, suite_cases
from bot.incidents import service
from bot.slack.context import SlackContext
from bot.slack.eval_blocks import incident_cases
from bot.slack.invocation import Invocation
from bot.slack.listeners.commands import Reply, command, incident_id_for


@command("evals")
def _evals(ctx: SlackContext, inv: Invocation) -> Reply:
    incident_id = incident_id_for(ctx, inv)
    with transaction(ctx.engine) as session:
        incident = service.get(session, incident_id)
        # Collecting is idempotent: new failures (and labels) since the last look join the suite now.
        collect_incident(session, incident_id, redactor=ctx.runtime.redactor)
        cases = suite_cases(session, incident.service or "unknown", incident_id=incident_id)
        counts = incident_case_counts(session, incident_id)
    if not cases:
        return f"Incident #{incident_id} has no failing traces yet, so no eval cases."
    return incident_cases(incident_id, cases, counts)


def register(app: App, ctx: SlackContext) -> None:
    """Nothing to wire: the subcommand registers itself with `/incident` on import."""
    _ = (app, ctx)
