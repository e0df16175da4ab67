"""The Bolt app and the Slack side of a warroom process, built from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_bolt import App

from bot.runtime import Runtime
from bot.slack.client import SlackGateway, make_web_client
from bot.slack.context import SlackContext
from bot.slack.effects import SlackEffects
from bot.slack.listeners import actions as action_listeners
from bot.slack.listeners import buttons, commands, evals, events, labels, silence, views
from bot.slack.room import Room

log = logging.getLogger(__name__)


@dataclass
class SlackSide:
    app: App
    context: SlackContext
    effects: SlackEffects
    handlers: dict  # outbox kind -> handler, for the worker


def build_slack(runtime: Runtime) -> SlackSide:
    settings = runtime.settings
    gateway = SlackGateway(make_web_client(settings.slack_bot_token, settings.slack_api_url), runtime.metrics)
    app = App(
        client=gateway.client,
        signing_secret=settings.slack_signing_secret,
        token_verification_enabled=False,  # auth.test happens on the first request, not at import
        raise_error_for_unhandled_request=False,
    )
    room = Room(gateway=gateway, engine=runtime.engine, settings=settings, runbooks=runtime.runbooks)
    context = SlackContext(runtime=runtime, gateway=gateway, room=room)
    for listeners in (commands, evals, buttons, views, events, labels, silence):
        listeners.register(app, context)
    effects = SlackEffects(room)
    handlers = effects.handlers()
    actions = runtime.services.get("actions")
    if actions is not None:
        action_listeners.register(app, context, actions)
        handlers.update(action_listeners.ActionEffects(context, actions).handlers())
    return SlackSide(app=app, context=context, effects=effects, handlers=handlers)
