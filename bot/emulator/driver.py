"""Slack -> bot: signed HTTP requests exactly as Slack sends them, and the bot's answers.

Signature: ``X-Slack-Signature: v0=hex(HMAC_SHA256(secret, "v0:" + ts + ":" + raw_body))`` with
``X-Slack-Request-Timestamp: ts``. Interactivity is a form with one ``payload`` field; events
are JSON with ``X-Slack-Retry-Num``/``X-Slack-Retry-Reason`` on retries.

When the app holds a Socket Mode connection (``bot.emulator.socket_mode``), the same payloads go
over it as envelopes instead, as Slack does for an app with Socket Mode on; the ack's payload is
then the reply's body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.emulator import payloads
from bot.emulator.methods.views import view_to_api
from bot.emulator.responses import deliver
from bot.emulator.socket_mode import SocketModeHub
from bot.emulator.state import ResponseUrl, View, Workspace


@dataclass
class BotReply:
    """The bot's HTTP answer to one delivery."""

    status: int
    headers: dict[str, str]
    body: str
    elapsed_s: float
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class Driver:
    def __init__(self, ws: Workspace, signing_secret: str, base_url: Callable[[], str]) -> None:
        self.ws = ws
        self.signing_secret = signing_secret
        self._base_url = base_url
        self.bot_url: str | None = None
        self.socket: SocketModeHub | None = None
        self.replies: list[BotReply] = []
        self.timeout_s = 10.0

    # transport -----------------------------------------------------------------------------
    def _send(self, body: bytes, content_type: str, extra: dict[str, str] | None = None,
              timestamp: int | None = None, envelope: tuple[str, dict[str, Any]] | None = None) -> BotReply:
        """POST ``body`` to the bot's URL, or, with a Socket Mode connection open, send ``envelope``
        (its type and payload) over it."""
        if envelope is not None and self.socket is not None and self.socket.connections:
            return self._send_over_socket(*envelope, extra or {})
        if not self.bot_url:
            raise RuntimeError("no bot connected: give the emulator the bot URL (.../slack/events)")
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": sign(self.signing_secret, ts, body),
                   "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)", **(extra or {})}
        started = time.perf_counter()
        resp = httpx.post(self.bot_url, content=body, headers=headers, timeout=self.timeout_s)
        reply = BotReply(resp.status_code, dict(resp.headers), resp.text, time.perf_counter() - started)
        with self.ws.lock:
            self.replies.append(reply)
        return reply

    def _send_over_socket(self, kind: str, payload: dict[str, Any], extra: dict[str, str]) -> BotReply:
        assert self.socket is not None
        ack, elapsed = self.socket.deliver(kind, payload, retry_attempt=int(extra.get("X-Slack-Retry-Num", 0)),
                                           retry_reason=extra.get("X-Slack-Retry-Reason", ""))
        body = ack.get("payload") if ack is not None else None
        # No ack within 3 s is what a timed-out HTTP request is: the user sees the request fail.
        reply = BotReply(200 if ack is not None else 504, {"content-type": "application/json"},
                         json.dumps(body) if body is not None else "", elapsed)
        with self.ws.lock:
            self.replies.append(reply)
        return reply

    def _send_payload(self, payload: dict[str, Any]) -> BotReply:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        reply = self._send(body, "application/x-www-form-urlencoded", envelope=("interactive", payload))
        reply.request = payload
        return reply

    def _response_url(self, user: str, channel: str, message_ts: str | None) -> tuple[ResponseUrl, str]:
        rid = self.ws.new_response_url(user, channel, message_ts)
        return self.ws.response_urls[rid], f"{self._base_url()}/response/{rid}"

    # slash commands ------------------------------------------------------------------------
    def command(self, line: str, user: str, channel: str) -> BotReply:
        hook, url = self._response_url(user, channel, None)
        form = payloads.slash_command(self.ws, line, user, channel, url, self.ws.new_trigger(user))
        reply = self._send(urlencode(form).encode(), "application/x-www-form-urlencoded",
                           envelope=("slash_commands", form))
        reply.request = form
        # An immediate answer is shown like a response_url message (ephemeral by default).
        # Slack accepts JSON or plain text here; Bolt sends a bare ack("text") as text/plain.
        body = reply.json if reply.json is not None else ({"text": reply.body} if reply.body.strip() else None)
        if reply.status == 200 and isinstance(body, dict) and (body.get("text") or body.get("blocks")):
            deliver(self.ws, hook, body)
        return reply

    # interactivity -------------------------------------------------------------------------
    def _message(self, channel: str, ts: str, user: str):  # noqa: ANN202
        with self.ws.lock:
            ch = self.ws.channels.get(channel)
            msg = next((m for m in ch.messages if m.ts == ts and m.ephemeral_to in (None, user)), None) if ch else None
        if msg is None:
            raise LookupError(f"no message {ts} in channel {channel}")
        return msg

    def click(self, channel: str, message_ts: str, action_id: str, value: str | None, user: str) -> BotReply:
        msg = self._message(channel, message_ts, user)
        block, element = payloads.find_element(msg.blocks or [], action_id)
        action = {"type": element.get("type", "button"), "action_id": action_id,
                  "block_id": block.get("block_id", ""), "text": element.get("text"),
                  "value": value if value is not None else element.get("value")}
        if element.get("style"):
            action["style"] = element["style"]
        _, url = self._response_url(user, channel, message_ts)
        return self._send_payload(payloads.block_actions(self.ws, msg, user, action, url, self.ws.new_trigger(user)))

    def select(self, channel: str, message_ts: str, action_id: str, option_value: str, user: str) -> BotReply:
        msg = self._message(channel, message_ts, user)
        block, element = payloads.find_element(msg.blocks or [], action_id)
        option = payloads.find_option(element, option_value)
        action = {"type": element.get("type", "static_select"), "action_id": action_id,
                  "block_id": block.get("block_id", ""), "selected_option": option,
                  "placeholder": element.get("placeholder")}
        state = {block.get("block_id", ""): {action_id: {"type": action["type"], "selected_option": option}}}
        _, url = self._response_url(user, channel, message_ts)
        return self._send_payload(
            payloads.block_actions(self.ws, msg, user, action, url, self.ws.new_trigger(user), state))

    def submit_view(self, view_id: str, values: dict[str, Any], user: str | None = None) -> BotReply:
        """Send view_submission, then apply the bot's ``response_action`` like Slack's client does."""
        with self.ws.lock:
            view = self.ws.views.get(view_id)
            if view is None or view.closed:
                raise LookupError(f"no open view {view_id}")
            api = view_to_api(self.ws, view)
        who = user or view.user
        payload = payloads.view_submission(self.ws, view, who, values, self.ws.new_trigger(who), api)
        reply = self._send_payload(payload)
        self._apply_view_answer(view, reply)
        return reply

    def _apply_view_answer(self, view: View, reply: BotReply) -> None:
        body: dict[str, Any] = reply.json if reply.status == 200 and isinstance(reply.json, dict) else {}
        action = body.get("response_action")
        with self.ws.lock:
            if reply.status != 200:
                return  # Slack shows "We had some trouble connecting" and keeps the modal open
            if action == "errors":
                view.errors = dict(body.get("errors") or {})
            elif action == "update":
                view.view, view.errors = body["view"], {}
            elif action == "push":
                vid = self.ws.new_id("V")
                self.ws.views[vid] = View(vid, view.user, body["view"], view.root_view_id, view.id)
            elif action == "clear":
                for v in self.ws.open_views(view.user):
                    v.closed = True
            else:
                view.closed = True

    # events --------------------------------------------------------------------------------
    def event(self, event: dict[str, Any], event_id: str | None = None, retry_num: int | None = None,
              retry_reason: str = "http_timeout") -> BotReply:
        envelope = payloads.event_callback(self.ws, event, event_id or f"Ev{secrets.token_hex(5).upper()}")
        extra = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason} if retry_num else {}
        reply = self._send(json.dumps(envelope).encode(), "application/json", extra, envelope=("events_api", envelope))
        reply.request = envelope
        return reply

    def url_verification(self, challenge: str | None = None) -> BotReply:
        body = {"token": payloads.VERIFICATION_TOKEN, "challenge": challenge or secrets.token_urlsafe(24),
                "type": "url_verification"}
        reply = self._send(json.dumps(body).encode(), "application/json")
        reply.request = body
        return reply

    def react(self, channel: str, ts: str, name: str, user: str, removed: bool = False,
              event_id: str | None = None, retry_num: int | None = None) -> BotReply:
        """A user adds (or removes) a reaction; the workspace changes first, then Slack tells the app."""
        msg = self._message(channel, ts, user)
        with self.ws.lock:
            users = msg.reactions.setdefault(name, [])
            if removed and user in users:
                users.remove(user)
            elif not removed and user not in users:
                users.append(user)
            if not users:
                msg.reactions.pop(name, None)
        return self.event(payloads.reaction_event(self.ws, msg, name, user, removed), event_id, retry_num)
