"""Buttons and selects on the incident card and the announcement."""

from __future__ import annotations

from slack_bolt import App

from bot.db import transaction
from bot import outbox
from bot.incidents import service, timeline
from bot.said import Person, said
from bot.slack.context import SlackContext


def register(app: App, ctx: SlackContext) -> None:
    def _change(body, respond, operation: str, change) -> None:  # noqa: ANN001
        """Ack first (the listener wrapper already did), then apply; errors go to the clicker."""
        user = body["user"]["id"]
        value = body["actions"][0].get("value") or body["actions"][0].get("selected_option", {}).get("value", "")
        incident_id = int(value.split(":")[0])

        def work() -> str | None:
            with transaction(ctx.engine) as session:
                channel = service.get(session, incident_id).channel_id
            ctx.authorise(operation, channel, user)
            with transaction(ctx.engine) as session:
                incident = service.get_for_update(session, incident_id)
                reply = change(session, incident, user, value)
            ctx.runtime.wake.set()
            return reply

        ctx.background(work, respond)  # errors go to the clicker through response_url, member or not

    @app.action("incident.ack")
    def ack_button(ack, body, respond) -> None:  # noqa: ANN001
        ack()
        _change(body, respond, "ack", lambda s, i, u, v: service.acknowledge(s, i, actor=u))

    @app.action("incident.resolve")
    def resolve_button(ack, body, respond) -> None:  # noqa: ANN001
        ack()
        from bot.slack.listeners.resolve import resolve_or_ask  # asks first while alerts fire
        incident_id, user = int(body["actions"][0]["value"]), body["user"]["id"]
        ctx.background(lambda: resolve_or_ask(ctx, incident_id, user), respond)

    @app.action("incident.reopen")
    def reopen_button(ack, body, respond) -> None:  # noqa: ANN001
        ack()
        _change(body, respond, "reopen", lambda s, i, u, v: service.reopen(s, i, actor=u))

    @app.action("incident.promote")
    def promote_button(ack, body, respond) -> None:  # noqa: ANN001
        ack()
        incident_id = int(body["actions"][0]["value"])

        def work() -> None:
            ctx.room.promote(incident_id)
            with transaction(ctx.engine) as session:
                incident = service.get(session, incident_id)
                timeline.record(session, incident, "promoted", said(Person(body["user"]["id"]), " promoted the incident "
                                                                "to its own channel"), actor=body["user"]["id"])
                outbox.enqueue(session, "slack.room", {"incident_id": incident_id}, key=f"room:{incident_id}:promoted",
                               incident_id=incident_id)
                service.refresh_card(session, incident)  # the thread card loses its Promote button
            ctx.runtime.wake.set()
        ctx.background(work, respond)

    @app.action("incident.severity")
    def severity_select(ack, body, respond) -> None:  # noqa: ANN001
        ack()
        _change(body, respond, "severity",
                lambda s, i, u, v: service.set_severity(s, i, int(v.split(":")[1]), actor=u))


