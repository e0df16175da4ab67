"""The Bolt app and the Slack side of a warroom process, built from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_bolt import App

from bot.actions.service import Actions
from bot.runtime import Runtime
from bot.slack.client import SlackGateway, make_web_client
from bot.slack.context import SlackContext
from bot.slack.effects import SlackEffects
from bot.slack.card_sync import CardSync
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
    handlers: dict  # outbox kind -> handler, for the worker


def build_slack(runtime: Runtime, actions: Actions | None = None) -> SlackSide:
    """The Bolt app with every listener registered, and the Slack outbox handlers; with ``actions``,
    also the action buttons and the action effects."""
    settings = runtime.settings
    gateway = SlackGateway(make_web_client(settings.slack_bot_token, settings.slack_api_url,
                                           timeout=settings.slack_timeout_seconds), runtime.metrics,
                           runtime.redactor)
    app = App(
        client=gateway.client,
        signing_secret=settings.slack_signing_secret,
        token_verification_enabled=False,  # auth.test happens on the first request, not at import
        raise_error_for_unhandled_request=False,
    )
    room = Room(gateway=gateway, engine=runtime.engine, settings=settings, runbooks=runtime.runbooks)
    context = SlackContext(runtime=runtime, gateway=gateway, room=room)
    # Every listener is registered through the guard: a failure after the ack still reaches the person.
    guarded = GuardedApp(app, Notifier(gateway))
    for listeners in (commands, evals, buttons, views, events, labels, silence, resolve):
        listeners.register(guarded, context)  # type: ignore[arg-type]
    effects = SlackEffects(room)
    handlers = effects.handlers()
    handlers.update(TracePoster(room).handlers())  # replaces SlackEffects' "slack.traces"
    if actions is not None:
        action_listeners.register(guarded, context, actions)  # type: ignore[arg-type]
        handlers.update(action_listeners.ActionEffects(context, actions).handlers())
    handlers.update(CardSync(effects).handlers(handlers))  # card and topic follow the incident
    return SlackSide(app=app, context=context, effects=effects, handlers=handlers)
