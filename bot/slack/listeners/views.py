"""Modal submissions: declare."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.errors import UserError
from bot.incidents import operations
from bot.slack import modals
from bot.slack.context import SlackContext


def register(app: App, ctx: SlackContext) -> None:
    @app.view("declare")
    def declare_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = modals.values(view)
        title = (values.get("title") or "").strip()
        if not title:
            ack(response_action="errors", errors={"title": "Give the incident a title."})
            return
        severity = int(values.get("severity") or 3)
        user = body["user"]["id"]
        # Declaring is one quick insert: done before the ack so a problem shows in the form itself.
        try:
            operations.declare(ctx.engine, title=title, severity=severity, actor=user,
                               service_name=values.get("service") or None,
                               description=values.get("description") or None,
                               runbook_id=ctx.runbook_for_declared(values.get("service")))
        except UserError as exc:
            ack(response_action="errors", errors={"title": str(exc)})
            return
        ack()
        ctx.runtime.wake.set()
