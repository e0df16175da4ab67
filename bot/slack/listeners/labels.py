"""Label a failing trace: the Label button opens a form; the answer becomes part of the eval case."""

from __future__ import annotations

from slack_bolt import App

from bot import traces
from bot.db import transaction
from bot.errors import UserError
from bot.incidents import service, timeline
from bot.said import Person, said
from bot.slack import modals
from bot.slack.context import SlackContext


def register(app: App, ctx: SlackContext) -> None:
    @app.action("trace.label")
    def label_button(ack, body, client) -> None:  # noqa: ANN001
        ack()
        request_id = body["actions"][0]["value"]
        incident_id = ctx.incident_for_channel((body.get("channel") or {}).get("id"))
        client.views_open(trigger_id=body["trigger_id"], view=modals.label_trace(request_id, incident_id, None))

    @app.view("label_trace")
    def label_submitted(ack, body, view) -> None:  # noqa: ANN001
        values, meta = modals.values(view), modals.metadata(view)
        user = body["user"]["id"]
        try:
            if meta.get("incident_id"):  # a label becomes an eval case: the incident's responders decide
                with transaction(ctx.engine) as session:
                    channel = service.get(session, int(meta["incident_id"])).channel_id
                ctx.authorise("label", channel, user)
            with transaction(ctx.engine) as session:
                traces.label_trace(session, meta["request_id"], failure_type=values.get("failure_type"),
                                   expected=values.get("expected"), unsupported_claim=values.get("claim"),
                                   notes=values.get("notes"), actor=user)
                if meta.get("incident_id"):
                    incident = service.get(session, int(meta["incident_id"]))
                    timeline.record(session, incident, "trace_labelled",
                                    said(Person(user), f" labelled trace {meta['request_id']} as {values.get('failure_type')}",
                                         f"; expected: {values['expected']}" if values.get("expected") else None),
                                    actor=user, data={"request_id": meta["request_id"]})
                    from bot.eval_suite import collect_incident
                    collect_incident(session, incident.id)  # the label reaches the service's suite now
        except UserError as exc:
            ack(response_action="errors", errors={"failure_type": str(exc)[:150]})
            return
        ack()
