"""``/incident``: parse, authorise, call the incident service, reply where the user is.

Every subcommand answers within Slack's 3 s (see `SlackContext.answer_within_budget`); the Slack
side effects of a change (card update, channel line) go through the outbox.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.db import transaction
from bot.errors import UserError
from bot.incidents import metrics, service, timeline
from bot.said import Person, Said, said
from bot.slack import modals
from bot.slack.context import SlackContext
from bot.slack.invocation import Invocation, mentions, strip_mentions
from bot.slack.replies import HELP, NOT_IN_INCIDENT
from bot.slack.text import mrkdwn

Reply = str | dict[str, Any]
Handler = Callable[[SlackContext, Invocation], Reply]
_SEV = re.compile(r"^sev([1-4])$", re.I)

COMMANDS: dict[str, Handler] = {}


def command(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            COMMANDS[name] = fn
        return fn
    return register


def register(app: App, ctx: SlackContext) -> None:
    @app.command("/incident")
    def incident_command(ack, command, respond, client) -> None:  # noqa: ANN001
        inv = Invocation.parse(command.get("text", ""), user=command["user_id"], channel=command.get("channel_id"),
                               trigger_id=command.get("trigger_id"))
        if inv.sub == "declare" and not _declare_title(inv.args)[1]:
            # The form must open with the trigger_id before anything slow (it expires in 3 s).
            ack()
            client.views_open(trigger_id=inv.trigger_id, view=modals.declare(inv.channel))
            return
        handler = COMMANDS.get(inv.sub)
        if handler is None:
            unknown = f"Unknown subcommand `{inv.sub}`.\n" if inv.sub else ""
            ack(text=unknown + HELP)
            return
        ctx.answer_within_budget(lambda: handler(ctx, inv), ack, respond)


def incident_id_for(ctx: SlackContext, inv: Invocation) -> int:
    if inv.bad_incident is not None:
        raise UserError(f"`{inv.bad_incident}` is not an incident number: name it like `/incident {inv.sub} 42`.")
    if inv.explicit_incident is not None:
        with transaction(ctx.engine) as session:  # a named incident must exist, whatever the command reads
            return service.get(session, inv.explicit_incident).id
    found = ctx.incident_for_channel(inv.channel)
    if found is None:
        raise UserError(NOT_IN_INCIDENT.format(sub=inv.sub))
    return found


def _declare_title(args: str) -> tuple[int, str]:
    first, _, rest = args.partition(" ")
    if match := _SEV.match(first):
        return int(match.group(1)), rest.strip()
    return 3, args.strip()


@command("help")
def _help(ctx: SlackContext, inv: Invocation) -> Reply:
    return HELP


@command("declare")
def _declare(ctx: SlackContext, inv: Invocation) -> Reply:
    severity, title = _declare_title(inv.args)
    with transaction(ctx.engine) as session:
        incident = service.declare(session, title=title, severity=severity, actor=inv.user,
                                   runbook_id=ctx.runbook_for_declared(None))
        number = incident.id
    ctx.runtime.wake.set()
    return f"Declared incident #{number} (SEV{severity}): {title}. Its channel is being set up."


def _mutate(ctx: SlackContext, inv: Invocation, operation: str, change: Callable[[Any, Any], str | None]) -> Reply:
    """Load the incident, check the user may do ``operation`` (`bot.permissions`), apply ``change``,
    commit, wake the worker."""
    incident_id = incident_id_for(ctx, inv)
    with transaction(ctx.engine) as session:
        incident = service.get(session, incident_id)
        channel = incident.channel_id
    ctx.authorise(operation, channel, inv.user)
    with transaction(ctx.engine) as session:
        incident = service.get_for_update(session, incident_id)
        reply = change(session, incident)
    ctx.runtime.wake.set()
    return reply or "Done."


@command("auto")
def _auto(ctx: SlackContext, inv: Invocation) -> Reply:
    """`/incident auto off|on`: whether warroom acts on its own (the runbook's `auto:`) for this incident."""
    from bot.automation.service import set_switch

    word = inv.args.strip().lower()
    if word not in ("on", "off"):
        raise UserError("Usage: `/incident auto off` (warroom stops acting on its own here) or `/incident auto on`.")
    return _mutate(ctx, inv, "automation",
                   lambda session, incident: set_switch(session, incident, on=word == "on", actor=inv.user))


@command("ack", "acknowledge")
def _ack(ctx: SlackContext, inv: Invocation) -> Reply:
    def change(session, incident):  # noqa: ANN001
        service.acknowledge(session, incident, actor=inv.user)
        return f"Acknowledged incident #{incident.id} (MTTA {metrics.human(metrics.mtta(incident))})."
    return _mutate(ctx, inv, "ack", change)


@command("sev", "severity")
def _sev(ctx: SlackContext, inv: Invocation) -> Reply:
    value = inv.args.lower().removeprefix("sev").strip()
    if value not in ("1", "2", "3", "4"):
        raise UserError("Usage: `/incident sev <1-4>` (1 is the worst).")
    def change(session, incident):  # noqa: ANN001
        service.set_severity(session, incident, int(value), actor=inv.user)
        return f"Severity is now SEV{value}."
    return _mutate(ctx, inv, "severity", change)


@command("status")
def _status(ctx: SlackContext, inv: Invocation) -> Reply:
    if not inv.args:
        incident_id = incident_id_for(ctx, inv)
        with transaction(ctx.engine) as session:
            incident = service.get(session, incident_id)
            counts = service.alert_counts(session, incident_id)
            return (f"*#{incident.id} {incident.title}*\nStatus *{incident.status}* · SEV{incident.severity} · "
                    f"{counts['firing']} firing, {counts['resolved']} resolved\n"
                    f"Last update: {incident.status_text or '–'}")
    def change(session, incident):  # noqa: ANN001
        service.post_status(session, incident, inv.args, actor=inv.user)
        return "Status update posted."
    return _mutate(ctx, inv, "status", change)


@command("note")
def _note(ctx: SlackContext, inv: Invocation) -> Reply:
    def change(session, incident):  # noqa: ANN001
        service.add_note(session, incident, inv.args, actor=inv.user)
        return "Added to the timeline."
    return _mutate(ctx, inv, "note", change)


@command("commander")
def _commander(ctx: SlackContext, inv: Invocation) -> Reply:
    people = mentions(inv.args)
    if len(people) != 1:
        raise UserError("Usage: `/incident commander @someone` (mention exactly one person).")
    def change(session, incident):  # noqa: ANN001
        service.set_commander(session, incident, people[0], actor=inv.user)
        return f"<@{people[0]}> is the incident commander."
    return _mutate(ctx, inv, "commander", change)


@command("followup")
def _followup(ctx: SlackContext, inv: Invocation) -> Reply:
    people = mentions(inv.args)
    def change(session, incident):  # noqa: ANN001
        service.add_followup(session, incident, strip_mentions(inv.args), actor=inv.user,
                             owner=people[0] if people else None)
        return "Follow-up recorded; it will be in the postmortem."
    return _mutate(ctx, inv, "followup", change)


@command("followups")
def _followups(ctx: SlackContext, inv: Invocation) -> Reply:
    incident_id = incident_id_for(ctx, inv)
    with transaction(ctx.engine) as session:
        items = service.followups(session, incident_id)
        if not items:
            return "No follow-ups yet: `/incident followup <text> [@owner]`."
        return "\n".join(f"{'☑' if f.done else '☐'} {f.text}" + (f" — <@{f.owner}>" if f.owner else "") for f in items)


@command("resolve")
def _resolve(ctx: SlackContext, inv: Invocation) -> Reply:
    from bot.slack.listeners import resolve
    incident_id = incident_id_for(ctx, inv)
    if firing := resolve.firing_alerts(ctx, incident_id):  # ask first (buttons), say how many
        resolve.require_member(ctx, incident_id, inv.user)
        return resolve.confirmation(incident_id, firing, inv.args)
    def change(session, incident):  # noqa: ANN001
        service.resolve(session, incident, actor=inv.user, summary=inv.args or None)
        return f"Resolved incident #{incident.id} (MTTR {metrics.human(metrics.mttr(incident))})."
    return _mutate(ctx, inv, "resolve", change)


@command("reopen")
def _reopen(ctx: SlackContext, inv: Invocation) -> Reply:
    def change(session, incident):  # noqa: ANN001
        service.reopen(session, incident, actor=inv.user, reason=inv.args)
        return f"Reopened incident #{incident.id}."
    return _mutate(ctx, inv, "reopen", change)


@command("close")
def _close(ctx: SlackContext, inv: Invocation) -> Reply:
    def change(session, incident):  # noqa: ANN001
        service.close(session, incident, actor=inv.user)
        return f"Closed incident #{incident.id}; the channel will be archived."
    return _mutate(ctx, inv, "close", change)


@command("list")
def _list(ctx: SlackContext, inv: Invocation) -> Reply:
    with transaction(ctx.engine) as session:
        open_incidents = service.list_incidents(session, status="open", limit=20)
        if not open_incidents:
            return "No open incidents. 🎉"
        lines = [f"• #{i.id} SEV{i.severity} *{i.status}* {i.title}" + (f" <#{i.channel_id}>" if i.channel_id else "")
                 for i in open_incidents]
    return "*Open incidents*\n" + "\n".join(lines)


@command("timeline")
def _timeline(ctx: SlackContext, inv: Invocation) -> Reply:
    incident_id = incident_id_for(ctx, inv)
    with transaction(ctx.engine) as session:
        events = list(reversed(timeline.events(session, incident_id, limit=15, newest_first=True)))
        lines = [f"`{e.at:%H:%M:%S}` {e.kind}: {mrkdwn(Said.from_row(e.text, e.data))}" for e in events]
    return "*Timeline (last 15)*\n" + "\n".join(lines) if lines else "The timeline is empty."


@command("postmortem")
def _postmortem(ctx: SlackContext, inv: Invocation) -> Reply:
    from bot import outbox
    from bot.postmortem.store import current_text, generate
    from bot.slack.blocks import markdown_document

    from bot.eval_suite import collect_incident

    incident_id = incident_id_for(ctx, inv)
    with transaction(ctx.engine) as session:
        collect_incident(session, incident_id)  # the draft counts the eval cases this incident added
        text = current_text(generate(session, incident_id, templates_dir=ctx.runtime.settings.templates_dir,
                                     names=ctx.runtime.services.get("people"), slos=ctx.runtime.slos))
        url = f"{ctx.runtime.settings.public_url}/incidents/{incident_id}/postmortem"
        outbox.enqueue(session, "slack.message", {
            "incident_id": incident_id, "text": f"Postmortem draft for incident #{incident_id}",
            "blocks": markdown_document(f"Postmortem draft — edit it at {url}", text)}, incident_id=incident_id)
        timeline.record(session, service.get(session, incident_id), "postmortem",
                        said(Person(inv.user), " drafted the postmortem"), actor=inv.user)
    ctx.runtime.wake.set()
    return f"Postmortem draft posted in the channel; edit it at {url}"


@command("web")
def _web(ctx: SlackContext, inv: Invocation) -> Reply:
    """A one-time sign-in link for warroom's pages; the ack is ephemeral, so only the asker sees it."""
    from datetime import timedelta

    from bot import signin

    settings = ctx.runtime.settings
    with transaction(ctx.engine) as session:
        token = signin.issue_link(session, inv.user, valid_for=timedelta(minutes=settings.signin_link_minutes))
    return (f"Your sign-in link for warroom's pages — it works once, for {settings.signin_link_minutes} minutes; "
            f"don't share it: {settings.public_url.rstrip('/')}/signin/{token}")
