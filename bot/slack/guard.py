"""One error path for every Bolt listener: whatever fails, the person who acted is told.

Bolt leaves a listener's exception to its error handler, and when the listener had already
acked, Bolt then *clears* the ack it was about to send: the request ends in a silent timeout
("unhandled") instead of the answer. So every listener is registered through `GuardedApp`, which
catches the exception inside the listener, acks if it had not, and tells the person what
happened, by the first way that works:

1. an ephemeral message in the channel where they acted (``chat.postEphemeral``),
2. the request's ``response_url`` (works where the bot is not a member),
3. a direct message from the bot (``conversations.open`` + ``chat.postMessage``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond, Say
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import new_error_id
from bot.slack.client import SlackCallError, SlackGateway
from bot.slack.replies import for_user

log = logging.getLogger(__name__)

# Slack's answers when a modal's trigger_id cannot be used; the person can simply try again.
TRIGGER_ERRORS = {
    "expired_trigger_id": "Slack's 3-second window to open it had passed",
    "invalid_trigger_id": "Slack did not recognise the request that should open it",
    "exchanged_trigger_id": "that request had already opened a form",
}

# Every argument a listener may ask for; the guard asks Bolt for all and passes on what the
# listener named (Bolt injects arguments by parameter name).
_ARGS = ("ack", "body", "respond", "client", "context", "payload", "command", "action", "view", "event",
         "say", "logger", "options", "shortcut", "message")


def slack_error(exc: BaseException) -> tuple[str, str] | None:
    """(method, error code) of a failed Slack call, from our gateway or from Bolt's own client."""
    if isinstance(exc, SlackCallError):
        return exc.method, exc.error
    if isinstance(exc, SlackApiError) and exc.response is not None:
        method = str(getattr(exc.response, "api_url", "")).rsplit("/", 1)[-1]
        return method, str(exc.response.get("error", "unknown_error"))
    return None


def explain(exc: BaseException) -> str:
    """The text the person sees for a listener that failed with ``exc``."""
    failed = slack_error(exc)
    if failed is not None:
        method, error = failed
        if error in TRIGGER_ERRORS:
            return (f"⚠️ The form could not open: {TRIGGER_ERRORS[error]} (`{error}`). Nothing was changed; "
                    "click the button or run the command again.")
        if isinstance(exc, SlackApiError):  # Bolt's client: not logged by the gateway
            error_id = new_error_id()
            log.warning("slack %s failed in a listener: %s", method, error, extra={"error_id": error_id})
            return f"⚠️ Slack refused `{method}` (`{error}`, error {error_id}). Nothing was changed; try again."
        assert isinstance(exc, SlackCallError)  # slack_error knows only these two
        return f"⚠️ Slack refused `{method}` (`{error}`, error {exc.error_id}). Nothing was changed; try again."
    return for_user(exc)


def where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(user, channel) of a command, interaction or event body."""
    user = body.get("user_id") or (body.get("user") or {}).get("id") or (body.get("event") or {}).get("user")
    channel = (body.get("channel_id") or (body.get("channel") or {}).get("id")
               or ((body.get("event") or {}).get("item") or {}).get("channel")
               or (body.get("event") or {}).get("channel"))
    if not channel and isinstance(body.get("view"), dict):
        channel = _view_channel(body["view"])
    return user, channel


def _view_channel(view: dict[str, Any]) -> str | None:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return None
    return meta.get("channel") if isinstance(meta, dict) else None


class Notifier:
    """Tells one person something, falling back until a way works."""

    def __init__(self, gateway: SlackGateway) -> None:
        self.gateway = gateway

    def tell(self, user: str | None, channel: str | None, text: str,
             respond: Callable[..., Any] | None = None, blocks: list[dict] | None = None) -> str | None:
        """Deliver ``text``; returns how ("ephemeral", "response_url", "dm") or None if nothing worked."""
        if user and channel:
            try:
                self.gateway.ephemeral(channel, user, text, blocks)
                return "ephemeral"
            except SlackCallError as exc:
                log.info("ephemeral to %s in %s failed (%s); trying the response_url", user, channel, exc.error)
        if respond is not None:
            try:
                answer = respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
                if _delivered(answer):
                    return "response_url"
                log.info("response_url answered HTTP %s; trying a direct message", answer.status_code)
            except Exception as exc:  # an unreachable response_url
                log.info("response_url failed (%s); trying a direct message", exc)
        if user:
            try:
                opened = self.gateway.call("conversations.open", users=user)
                self.gateway.post(opened["channel"]["id"], text, blocks)
                return "dm"
            except SlackCallError as exc:
                log.error("could not tell %s: %s (every way failed)", user, text, extra={"error_id": exc.error_id})
        return None


def _delivered(answer: Any) -> bool:
    """Bolt's ``respond`` returns the HTTP answer instead of raising: an expired url is a 404."""
    status = getattr(answer, "status_code", 200)
    return isinstance(status, int) and status < 300


class RespondOrTell:
    """Bolt's ``respond`` for a listener: when the response_url refuses (expired, used up), the
    reply goes to the person another way (ephemeral, else a DM) instead of being lost."""

    def __init__(self, respond: Callable[..., Any], notifier: Notifier, user: str | None, channel: str | None) -> None:
        self.respond, self.notifier, self.user, self.channel = respond, notifier, user, channel

    def __call__(self, text: str = "", blocks: list[dict] | None = None, **kwargs: Any) -> Any:
        try:
            answer = self.respond(text=text, blocks=blocks, **kwargs)
            if _delivered(answer):
                return answer
            log.info("response_url answered HTTP %s; telling the person another way", answer.status_code)
        except Exception as exc:
            log.info("response_url failed (%s); telling the person another way", exc)
        if kwargs.get("delete_original"):
            return None  # nothing to say
        return self.notifier.tell(self.user, self.channel, text, None, blocks)


class GuardedApp:
    """Registers listeners on a Bolt ``App`` with the guard around each (same decorators)."""

    def __init__(self, app: App, notifier: Notifier) -> None:
        self.app, self.notifier = app, notifier

    def __getattr__(self, name: str) -> Any:  # anything not a listener decorator: the App's own
        return getattr(self.app, name)

    def command(self, *args: Any, **kwargs: Any) -> Callable:
        return self._wrap(self.app.command(*args, **kwargs))

    def action(self, *args: Any, **kwargs: Any) -> Callable:
        return self._wrap(self.app.action(*args, **kwargs))

    def view(self, *args: Any, **kwargs: Any) -> Callable:
        return self._wrap(self.app.view(*args, **kwargs))

    def event(self, *args: Any, **kwargs: Any) -> Callable:
        return self._wrap(self.app.event(*args, **kwargs))

    def shortcut(self, *args: Any, **kwargs: Any) -> Callable:
        return self._wrap(self.app.shortcut(*args, **kwargs))

    def options(self, *args: Any, **kwargs: Any) -> Callable:
        return self._wrap(self.app.options(*args, **kwargs))

    def _wrap(self, register: Callable[[Callable], Any]) -> Callable[[Callable], Callable]:
        def decorator(fn: Callable) -> Callable:
            register(guarded(fn, self.notifier))
            return fn
        return decorator


def guarded(fn: Callable, notifier: Notifier) -> Callable:
    """``fn`` as a Bolt listener that never lets an exception reach Bolt (see the module doc)."""
    from slack_bolt.util.utils import get_arg_names_of_callable

    wanted = get_arg_names_of_callable(fn)

    # Bolt passes each argument by its name; the guard takes them all and hands on those fn names.
    def listener(ack: Ack, body: dict[str, Any], respond: Respond | None, client: WebClient, context: BoltContext,
                 payload: dict[str, Any], command: dict[str, Any] | None, action: dict[str, Any] | None,
                 view: dict[str, Any] | None, event: dict[str, Any] | None, say: Say, logger: logging.Logger,
                 options: dict[str, Any] | None, shortcut: dict[str, Any] | None,
                 message: dict[str, Any] | None) -> None:
        user, channel = where(body or {})
        replies = RespondOrTell(respond, notifier, user, channel) if respond is not None else None
        given = dict(zip(_ARGS, (ack, body, replies, client, context, payload, command, action, view, event,
                                 say, logger, options, shortcut, message), strict=True))
        try:
            fn(**{name: given[name] for name in wanted})
        except Exception as exc:  # the point: nothing is silent
            text = explain(exc)
            if ack.response is None:
                if command is not None:  # a slash command's ack is shown to the person: say it there
                    ack(text=text)
                    return
                ack()
            notifier.tell(user, channel, text, respond)  # Bolt gives None where there is no response_url

    listener.__name__ = getattr(fn, "__name__", "listener")
    return listener
