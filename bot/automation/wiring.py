"""Build the automation and the guard for one warroom process and hook them to the actions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from bot.actions.runner import RunResult
from bot.actions.service import Actions
from bot.automation.guard import Guard, GuardSettings
from bot.automation.service import Automation, Limits
from bot.effects import Handlers
from bot.runtime import Runtime
from bot.store.models import ActionRun, Incident


@dataclass(frozen=True)
class Automatic:
    """The automation and the guard of one warroom process, and their outbox handlers."""

    automation: Automation
    guard: Guard
    handlers: Handlers


def install(runtime: Runtime, actions: Actions) -> Automatic:
    """Build the automation and the guard; ``actions`` reports finished runs to them."""
    settings = runtime.settings
    slos = runtime.slos  # the SLO file's, or those the runtime was built with
    automation = Automation(runtime.engine, runtime.runbooks, actions, Limits.from_settings(settings), runtime.metrics)
    guard = Guard(runtime.engine, slos or [], GuardSettings.from_settings(settings), runtime.runbooks, actions,
                  runtime.metrics, runtime.prometheus)

    def after_finish(session: Session, run: ActionRun, incident: Incident, result: RunResult) -> bool:
        automation.after_finish(session, run, incident, result)
        return guard.watch(session, run, incident, result)

    actions.after_finish = after_finish
    return Automatic(automation, guard, Handlers(automation.handlers(), guard.handlers()))
