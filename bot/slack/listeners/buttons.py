"""Buttons and selects on the incident card and the announcement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from bot.incidents import operations
from bot.slack.context import SlackContext
from bot.slack.guard import RespondOrTell


def register(app: App, ctx: SlackContext) -> None:
    def _change(body, respond, operation: str, change: Callable[[int, str, str], Any]) -> None:  # noqa: ANN001
        """Ack first (the listener wrapper already did), then apply; errors go to the clicker."""
        user = body["user"]["id"]
        value = body["actions"][0].get("value") or body["actions"][0].get("selected_option", {}).get("value", "")
        incident_id = int(value.split(":")[0])

        def work() -> None:
            ctx.authorise_for_incident(operation, incident_id, user)
            change(incident_id, user, value)
            ctx.runtime.wake.set()

        ctx.background(work, respond)  # errors go to the clicker through response_url, member or not

    @app.action("incident.ack")
    def ack_button(ack: Ack, body: dict[str, Any], respond: RespondOrTell) -> None:
        ack()
        _change(body, respond, "ack", lambda i, u, v: operations.acknowledge(ctx.engine, i, actor=u))

    @app.action("incident.resolve")
    def resolve_button(ack: Ack, body: dict[str, Any], respond: RespondOrTell) -> None:
        ack()
        from bot.slack.listeners.resolve import resolve_or_ask  # asks first while alerts fire
        incident_id, user = int(body["actions"][0]["value"]), body["user"]["id"]
        ctx.background(lambda: resolve_or_ask(ctx, incident_id, user), respond)

    @app.action("incident.reopen")
    def reopen_button(ack: Ack, body: dict[str, Any], respond: RespondOrTell) -> None:
        ack()
        _change(body, respond, "reopen", lambda i, u, v: operations.reopen(ctx.engine, i, actor=u))

    @app.action("incident.promote")
    def promote_button(ack: Ack, body: dict[str, Any], respond: RespondOrTell) -> None:
        ack()
        incident_id, user = int(body["actions"][0]["value"]), body["user"]["id"]

        def work() -> None:
            ctx.room.promote(incident_id)  # the channel first: the record says it exists
            operations.promote(ctx.engine, incident_id, actor=user)
            ctx.runtime.wake.set()
        ctx.background(work, respond)

    @app.action("incident.severity")
    def severity_select(ack: Ack, body: dict[str, Any], respond: RespondOrTell) -> None:
        ack()
        _change(body, respond, "severity",
                lambda i, u, v: operations.set_severity(ctx.engine, i, int(v.split(":")[1]), actor=u))
