"""The Bolt app and the Slack side of a warroom process, built from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_bolt import App

from bot.actions.service import Actions
from bot.effects import Handlers
from bot.runtime import Runtime
from bot.slack.action_effects import ActionEffects
from bot.slack.budgets import Budgets
from bot.slack.card_sync import CardSync
from bot.slack.client import SlackGateway, make_web_client
from bot.slack.command_table import CommandTable
from bot.slack.context import SlackContext
from bot.slack.effects import SlackEffects
from bot.slack.guard import GuardedApp, Notifier
from bot.slack.late_traces import TracePoster
from bot.slack.listeners import actions as action_listeners
from bot.slack.listeners import buttons, commands, evals, events, labels, resolve, silence, views
from bot.slack.room import Room

log = logging.getLogger(__name__)


@dataclass
class SlackSide:
    app: App
    context: SlackContext
    effects: SlackEffects
    handlers: Handlers  # the outbox effects performed in Slack, for the worker
    commands: CommandTable  # this app's `/incident` subcommands


def build_slack(runtime: Runtime, actions: Actions | None = None) -> SlackSide:
    """The Bolt app with every listener registered, and the Slack outbox handlers; with ``actions``,
    also the action buttons and the action effects."""
    settings = runtime.settings
    gateway = SlackGateway(make_web_client(settings.slack_bot_token, settings.slack_api_url,
                                           timeout=settings.slack_timeout_seconds), runtime.metrics,
                           runtime.redactor, Budgets(settings.slack_budget_scale))
    app = App(
        client=gateway.client,
        signing_secret=settings.slack_signing_secret,
        token_verification_enabled=False,  # auth.test happens on the first request, not at import
        raise_error_for_unhandled_request=False,
    )
    room = Room(gateway=gateway, engine=runtime.engine, settings=settings, runbooks=runtime.runbooks,
                budget=runtime.budget)
    context = SlackContext(runtime=runtime, gateway=gateway, room=room)
    # Every listener is registered through the guard: a failure after the ack still reaches the person.
    guarded = GuardedApp(app, Notifier(gateway))
    table = CommandTable()  # this app's own: a second app in the process builds its own
    for with_commands in (commands, evals, silence):
        with_commands.register(guarded, context, table)
    for listeners in (buttons, views, events, labels, resolve):
        listeners.register(guarded, context)
    effects = SlackEffects(room)
    handlers = Handlers(effects.handlers(), TracePoster(room).handlers())
    action_card = None
    if actions is not None:
        action_listeners.register(guarded, context, table, actions)  # type: ignore[arg-type]
        action_effects = ActionEffects(context, actions)
        handlers.include(action_effects.handlers())
        action_card = action_effects.card
    handlers.include(CardSync(effects).handlers(action_card))  # card and topic follow the incident
    return SlackSide(app=app, context=context, effects=effects, handlers=handlers, commands=table)
