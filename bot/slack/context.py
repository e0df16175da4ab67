"""What every listener needs: the runtime, the Slack gateway, and a pool for slow work."""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.incidents import operations, permissions
from bot.redact import Redactor
from bot.runtime import Runtime
from bot.slack.client import SlackGateway, redact_readable
from bot.slack.replies import for_user
from bot.slack.room import Room
from bot.slack.text import escape_placeholders

log = logging.getLogger(__name__)

ACK_BUDGET_SECONDS = 2.0  # Slack wants the HTTP answer within 3 s; keep a margin for the network


@dataclass
class SlackContext:
    runtime: Runtime
    gateway: SlackGateway
    room: Room
    pool: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="slack-work"))

    @property
    def engine(self):  # noqa: ANN201
        return self.runtime.engine

    def answer_within_budget(self, work: Callable[[], Any], ack: Callable[..., object],
                             respond: Callable[..., object]) -> None:
        """Run ``work``; its reply goes into the ack if it is quick, else via ``respond`` later.

        Whatever ``work`` costs, Slack gets its HTTP answer within the budget.
        """
        future = self.pool.submit(_safely, work)
        try:
            reply = future.result(timeout=ACK_BUDGET_SECONDS)
        except concurrent.futures.TimeoutError:
            ack(text="⏳ Working on it… the answer will follow here.")
            future.add_done_callback(lambda f: _respond(respond, f.result(), self.runtime.redactor))
            return
        ack(**_as_kwargs(reply, self.runtime.redactor))

    def background(self, work: Callable[[], Any], respond: Callable[..., object] | None) -> None:
        """After an ack: run ``work`` and show its reply (or its error) to the user."""
        def run() -> None:
            reply = _safely(work)
            if respond is not None and reply:
                _respond(respond, reply, self.runtime.redactor)
        self.pool.submit(run)

    def runbook_for_declared(self, service: str | None) -> str:
        """A declared incident has no alert labels: match on its service, else the default runbook."""
        return self.runtime.runbooks.match({"service": service} if service else {}).id

    def is_member(self, user_id: str, channel_id: str) -> bool:
        members = self.gateway.call("conversations.members", channel=channel_id, limit=1000)
        return user_id in members.get("members", [])

    def require_member(self, channel_id: str | None, user_id: str, what: str) -> None:
        """The channel rule of `bot.incidents.permissions` for an operation not in its table (prefer ``authorise``)."""
        members = set(self.gateway.call("conversations.members", channel=channel_id, limit=1000).get(
            "members", [])) if channel_id else None
        permissions.require_channel_member(permissions.Actor(user=user_id, channel_members=members), channel_id, what)

    def authorise(self, operation: str, channel_id: str | None, user_id: str) -> None:
        """The one permission check (`bot.incidents.permissions`) for an incident-level operation."""
        if permissions.rule_of(operation) is permissions.Rule.ANYONE:
            return
        members = None
        if channel_id:
            members = set(self.gateway.call("conversations.members", channel=channel_id, limit=1000).get("members", []))
        permissions.check(operation, permissions.Actor(user=user_id, channel_members=members), channel=channel_id)

    def authorise_for_incident(self, operation: str, incident_id: int, user_id: str) -> None:
        """`authorise` in the incident's channel (looked up; `NotFound` for no such incident)."""
        self.authorise(operation, operations.channel_of(self.engine, incident_id), user_id)

    def incident_for_channel(self, channel_id: str | None) -> int | None:
        return operations.in_channel(self.engine, channel_id)


def _safely(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except BaseException as exc:  # shown to the user; unexpected ones are logged with an id
        return for_user(exc)


def _as_kwargs(reply: Any, redactor: Redactor) -> dict[str, Any]:
    if reply is None:
        return {}
    # Replies go out through the ack or response_url, not the gateway: redacted here alike.
    kwargs = redact_readable(reply if isinstance(reply, dict) else {"text": str(reply)}, redactor)
    if isinstance(kwargs.get("text"), str):
        kwargs["text"] = escape_placeholders(kwargs["text"])
    return kwargs


def _respond(respond: Callable[..., object], reply: Any, redactor: Redactor) -> None:
    try:
        respond(**_as_kwargs(reply, redactor), replace_original=False)
    except Exception:
        log.exception("could not deliver a reply through response_url")
