"""Label a failing trace: the Label button opens a form; the answer becomes part of the eval case."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.errors import UserError
from bot.incidents import operations
from bot.slack import modals
from bot.slack.context import SlackContext


def register(app: App, ctx: SlackContext) -> None:
    @app.action("trace.label")
    def label_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        request_id = body["actions"][0]["value"]
        incident_id = ctx.incident_for_channel((body.get("channel") or {}).get("id"))
        client.views_open(trigger_id=body["trigger_id"], view=modals.label_trace(request_id, incident_id, None))

    @app.view("label_trace")
    def label_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values, meta = modals.values(view), modals.metadata(view)
        user = body["user"]["id"]
        incident_id = int(meta["incident_id"]) if meta.get("incident_id") else None
        try:
            if incident_id is not None:  # a label becomes an eval case: the incident's responders decide
                ctx.authorise_for_incident("label", incident_id, user)
            operations.label_trace(ctx.engine, meta["request_id"], incident_id=incident_id,
                                   failure_type=values.get("failure_type"), expected=values.get("expected"),
                                   claim=values.get("claim"), notes=values.get("notes"), actor=user,
                                   redactor=ctx.runtime.redactor)
        except UserError as exc:
            ack(response_action="errors", errors={"failure_type": str(exc)[:150]})
            return
        ack()
