"""Build the automation and the guard for one warroom process and hook them to the actions."""

from __future__ import annotations

from sqlmodel import Session

from bot.actions.runner import RunResult
from bot.actions.service import Actions
from bot.automation.guard import Guard, GuardSettings, PrometheusSLI
from bot.automation.service import Automation, Limits
from bot.effects import Handlers
from bot.models import ActionRun, Incident
from bot.runtime import Runtime

GUARD_SLOS_SERVICE = "guard_slos"  # Runtime.services: SLOs the guard reads when no SLO file is set


def install(runtime: Runtime, actions: Actions) -> Handlers:
    """The outbox handlers of the automation and the guard; ``actions`` reports finished runs to them."""
    settings = runtime.settings
    slos = runtime.slos  # the SLO file's, or those registered under GUARD_SLOS_SERVICE
    automation = Automation(runtime.engine, runtime.runbooks, actions, Limits.from_settings(settings), runtime.metrics)
    guard = Guard(runtime.engine, slos or [], GuardSettings.from_settings(settings), runtime.runbooks, actions,
                  runtime.metrics, PrometheusSLI(settings.prometheus_url) if settings.prometheus_url else None)

    def after_finish(session: Session, run: ActionRun, incident: Incident, result: RunResult) -> bool:
        automation.after_finish(session, run, incident, result)
        return guard.watch(session, run, incident, result)

    actions.after_finish = after_finish
    runtime.services.update(automation=automation, guard=guard)
    return Handlers(automation.handlers(), guard.handlers())
