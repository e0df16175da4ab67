"""``/incident``: parse, authorise, call the incident service, reply where the user is.

Every subcommand answers within Slack's 3 s (see `SlackContext.answer_within_budget`); the Slack
side effects of a change (card update, channel line) go through the outbox. The subcommands are
definitions (`bot.slack.command_table.command`, with their help line); `register` puts them in
the app's own table, which `/incident help` is generated from.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import signin
from bot.errors import UserError
from bot.incidents import metrics, operations
from bot.incidents.merge import groups_text
from bot.said import Said
from bot.slack import modals
from bot.slack.blocks import markdown_document
from bot.slack.command_table import Command, CommandTable, Reply, command
from bot.slack.context import SlackContext
from bot.slack.guard import RespondOrTell
from bot.slack.invocation import Invocation, mentions, strip_mentions
from bot.slack.replies import NOT_IN_INCIDENT
from bot.slack.text import mrkdwn

_SEV = re.compile(r"^sev([1-4])$", re.I)


def register(app: App, ctx: SlackContext, table: CommandTable) -> None:
    @command("help")
    def _help(ctx: SlackContext, inv: Invocation) -> Reply:
        return table.help()

    table.add(_help, *INCIDENT_COMMANDS)

    @app.command("/incident")
    def incident_command(ack: Ack, command: dict[str, Any], respond: RespondOrTell, client: WebClient) -> None:
        inv = Invocation.parse(command.get("text", ""), user=command["user_id"], channel=command.get("channel_id"),
                               trigger_id=command.get("trigger_id"))
        if inv.sub == "declare" and not _declare_title(inv.args)[1]:
            # The form must open with the trigger_id before anything slow (it expires in 3 s).
            ack()
            client.views_open(trigger_id=inv.trigger_id, view=modals.declare(inv.channel))
            return
        found = table.get(inv.sub)
        if found is None:
            unknown = f"Unknown subcommand `{inv.sub}`.\n" if inv.sub else ""
            ack(text=unknown + table.help())
            return
        ctx.answer_within_budget(lambda: found.run(ctx, inv), ack, respond)


def incident_id_for(ctx: SlackContext, inv: Invocation) -> int:
    if inv.bad_incident is not None:
        raise UserError(f"`{inv.bad_incident}` is not an incident number: name it like `/incident {inv.sub} 42`.")
    if inv.explicit_incident is not None:  # a named incident must exist, whatever the command reads
        return operations.existing(ctx.engine, inv.explicit_incident).id  # type: ignore[return-value]
    found = ctx.incident_for_channel(inv.channel)
    if found is None:
        raise UserError(NOT_IN_INCIDENT.format(sub=inv.sub))
    return found


def _declare_title(args: str) -> tuple[int, str]:
    first, _, rest = args.partition(" ")
    if match := _SEV.match(first):
        return int(match.group(1)), rest.strip()
    return 3, args.strip()


def _authorised(ctx: SlackContext, inv: Invocation, operation: str) -> int:
    """The incident the command is about, once the user may do ``operation`` on it (`bot.incidents.permissions`)."""
    incident_id = incident_id_for(ctx, inv)
    ctx.authorise_for_incident(operation, incident_id, inv.user)
    return incident_id


def _changed(ctx: SlackContext, reply: str) -> str:
    """A change was committed: the worker performs its Slack effects now."""
    ctx.runtime.wake.set()
    return reply


@command("declare", help="`declare [sev1-4] <title>` — open an incident (no title: a form)")
def _declare(ctx: SlackContext, inv: Invocation) -> Reply:
    severity, title = _declare_title(inv.args)
    number = operations.declare(ctx.engine, title=title, severity=severity, actor=inv.user,
                                runbook_id=ctx.runbook_for_declared(None))
    return _changed(ctx, f"Declared incident #{number} (SEV{severity}): {title}. Its channel is being set up.")


@command("auto", help="`auto off` · `auto on` — stop (or let) warroom run its runbook's automatic actions here")
def _auto(ctx: SlackContext, inv: Invocation) -> Reply:
    """`/incident auto off|on`: whether warroom acts on its own (the runbook's `auto:`) for this incident."""
    word = inv.args.strip().lower()
    if word not in ("on", "off"):
        raise UserError("Usage: `/incident auto off` (warroom stops acting on its own here) or `/incident auto on`.")
    incident_id = _authorised(ctx, inv, "automation")
    return _changed(ctx, operations.set_automation(ctx.engine, incident_id, on=word == "on", actor=inv.user))


@command("ack", "acknowledge", help="`ack` — acknowledge")
def _ack(ctx: SlackContext, inv: Invocation) -> Reply:
    incident = operations.acknowledge(ctx.engine, _authorised(ctx, inv, "ack"), actor=inv.user)
    return _changed(ctx, f"Acknowledged incident #{incident.id} (MTTA {metrics.human(metrics.mtta(incident))}).")


@command("sev", "severity", help="`sev <1-4>` — change severity")
def _sev(ctx: SlackContext, inv: Invocation) -> Reply:
    value = inv.args.lower().removeprefix("sev").strip()
    if value not in ("1", "2", "3", "4"):
        raise UserError("Usage: `/incident sev <1-4>` (1 is the worst).")
    operations.set_severity(ctx.engine, _authorised(ctx, inv, "severity"), int(value), actor=inv.user)
    return _changed(ctx, f"Severity is now SEV{value}.")


@command("status", help="`status [text]` — show or post a status update")
def _status(ctx: SlackContext, inv: Invocation) -> Reply:
    if not inv.args:
        incident, counts = operations.with_alert_counts(ctx.engine, incident_id_for(ctx, inv))
        return (f"*#{incident.id} {incident.title}*\nStatus *{incident.status}* · SEV{incident.severity} · "
                f"{counts['firing']} firing, {counts['resolved']} resolved\n"
                f"Last update: {incident.status_text or '–'}")
    operations.post_status(ctx.engine, _authorised(ctx, inv, "status"), inv.args, actor=inv.user)
    return _changed(ctx, "Status update posted.")


@command("note", help="`note <text>` — add to the timeline")
def _note(ctx: SlackContext, inv: Invocation) -> Reply:
    operations.add_note(ctx.engine, _authorised(ctx, inv, "note"), inv.args, actor=inv.user)
    return _changed(ctx, "Added to the timeline.")


@command("cause", help="`cause <change>` — name the cause: a change on the card (`v42`, `change 12`) or your words")
def _cause(ctx: SlackContext, inv: Invocation) -> Reply:
    named = operations.name_cause(ctx.engine, _authorised(ctx, inv, "cause"), inv.args, actor=inv.user)
    if named.at is None:
        return _changed(ctx, f"Cause recorded: {named.summary} (your words: no change time, so the postmortem "
                             "leaves time to detect open).")
    return _changed(ctx, f"Cause recorded: {named.summary}, {named.kind or 'change'} at {named.at:%H:%M} UTC; "
                         "the postmortem counts time to detect and the duration from it.")


@command("commander", help="`commander @user`")
def _commander(ctx: SlackContext, inv: Invocation) -> Reply:
    people = mentions(inv.args)
    if len(people) != 1:
        raise UserError("Usage: `/incident commander @someone` (mention exactly one person).")
    operations.set_commander(ctx.engine, _authorised(ctx, inv, "commander"), people[0], actor=inv.user)
    return _changed(ctx, f"<@{people[0]}> is the incident commander.")


@command("followup", help="`followup <text> [@owner]`")
def _followup(ctx: SlackContext, inv: Invocation) -> Reply:
    people = mentions(inv.args)
    operations.add_followup(ctx.engine, _authorised(ctx, inv, "followup"), strip_mentions(inv.args), actor=inv.user,
                            owner=people[0] if people else None)
    return _changed(ctx, "Follow-up recorded; it will be in the postmortem.")


@command("followups", help="`followups` — follow-up items for the postmortem")
def _followups(ctx: SlackContext, inv: Invocation) -> Reply:
    items = operations.followups(ctx.engine, incident_id_for(ctx, inv))
    if not items:
        return "No follow-ups yet: `/incident followup <text> [@owner]`."
    return "\n".join(f"{'☑' if f.done else '☐'} {f.text}" + (f" — <@{f.owner}>" if f.owner else "") for f in items)


@command("resolve", help="`resolve [summary]`")
def _resolve(ctx: SlackContext, inv: Invocation) -> Reply:
    from bot.slack.listeners import resolve
    incident_id = _authorised(ctx, inv, "resolve")
    if firing := operations.firing_alerts(ctx.engine, incident_id):  # ask first (buttons), say how many
        return resolve.confirmation(incident_id, firing, inv.args)
    incident, _ = operations.resolve(ctx.engine, incident_id, actor=inv.user, summary=inv.args or None)
    return _changed(ctx, f"Resolved incident #{incident.id} (MTTR {metrics.human(metrics.mttr(incident))}).")


@command("reopen", help="`reopen`")
def _reopen(ctx: SlackContext, inv: Invocation) -> Reply:
    incident = operations.reopen(ctx.engine, _authorised(ctx, inv, "reopen"), actor=inv.user, reason=inv.args)
    return _changed(ctx, f"Reopened incident #{incident.id}.")


@command("close", help="`close` (after the postmortem; archives the channel)")
def _close(ctx: SlackContext, inv: Invocation) -> Reply:
    incident = operations.close(ctx.engine, _authorised(ctx, inv, "close"), actor=inv.user)
    return _changed(ctx, f"Closed incident #{incident.id}; the channel will be archived.")


@command("merge", help="`merge <id>… [into <id>]` — merge incidents into this one")
def _merge(ctx: SlackContext, inv: Invocation) -> Reply:
    ids, into = _merge_args(inv)
    if into is None:
        into = ctx.incident_for_channel(inv.channel)
        if into is None:
            raise UserError("Run `/incident merge <ids…>` in the channel of the incident that takes the others in, "
                            "or name it: `/incident merge 42 43 into 41`.")
    # A merge changes every incident it names: the person must be one of each one's responders.
    for incident_id in [into, *ids]:
        ctx.authorise_for_incident("merge", incident_id, inv.user)
    result = operations.merge(ctx.engine, into, ids, actor=inv.user)
    numbers = ", ".join(f"#{i}" for i in result.merged)
    moved = groups_text(result.groups, "alert groups", "no alert groups")
    return _changed(ctx, f"Merged {numbers} into incident #{result.into} ({moved} moved; SEV{result.severity}). "
                         f"{'Its channel' if len(result.merged) == 1 else 'Their channels'} will be archived; "
                         f"`/incident split <group>` here takes a group out again.")


def _merge_args(inv: Invocation) -> tuple[list[int], int | None]:
    """``41 42 [into 40]`` (``#`` optional): the incidents to merge, and the one they go into if named."""
    words = inv.args.replace(",", " ").split()
    into: int | None = None
    if len(words) >= 2 and words[-2].lower() == "into":
        into, words = _number(words[-1]), words[:-2]
    ids = ([inv.explicit_incident] if inv.explicit_incident is not None else []) + [_number(w) for w in words]
    if not ids:
        raise UserError("Usage: `/incident merge 42 43` in the incident that takes them in "
                        "(or `/incident merge 42 43 into 41` anywhere).")
    return ids, into


def _number(word: str) -> int:
    digits = word.removeprefix("#")
    if not digits.isdigit():
        raise UserError(f"`{word}` is not an incident number: `/incident merge 42 43 [into 41]`.")
    return int(digits)


@command("split", help="`split <group>` — give an alert group its own incident")
def _split(ctx: SlackContext, inv: Invocation) -> Reply:
    incident_id = _authorised(ctx, inv, "split")
    rules = ctx.runtime.intake_rules
    result = operations.split(ctx.engine, incident_id, inv.args, actor=inv.user, choose_runbook=rules.choose_runbook,
                              default_severity=rules.default_severity)
    rest = (f"Incident #{result.source} resolved: that was its last firing group." if result.source_resolved
            else f"Incident #{result.source} keeps its other groups.")
    return _changed(ctx, f"Split {result.group} out into incident #{result.new_incident}; its channel is being set "
                         f"up. {rest} `/incident merge {result.new_incident}` here takes it back.")


@command("list", help="`list` — open incidents")
def _list(ctx: SlackContext, inv: Invocation) -> Reply:
    open_incidents = operations.open_incidents(ctx.engine, limit=20)
    if not open_incidents:
        return "No open incidents. 🎉"
    lines = [f"• #{i.id} SEV{i.severity} *{i.status}* {i.title}" + (f" <#{i.channel_id}>" if i.channel_id else "")
             for i in open_incidents]
    return "*Open incidents*\n" + "\n".join(lines)


@command("timeline", help="`timeline` — last events")
def _timeline(ctx: SlackContext, inv: Invocation) -> Reply:
    events = operations.recent_timeline(ctx.engine, incident_id_for(ctx, inv), limit=15)
    lines = [f"`{e.at:%H:%M:%S}` {e.kind}: {mrkdwn(Said.from_row(e.text, e.data))}" for e in events]
    return "*Timeline (last 15)*\n" + "\n".join(lines) if lines else "The timeline is empty."


@command("postmortem", help="`postmortem` — draft the postmortem from the timeline")
def _postmortem(ctx: SlackContext, inv: Invocation) -> Reply:
    incident_id = incident_id_for(ctx, inv)
    url = f"{ctx.runtime.settings.public_url}/incidents/{incident_id}/postmortem"
    operations.draft_postmortem(
        ctx.engine, incident_id, actor=inv.user, title=f"Postmortem draft for incident #{incident_id}",
        blocks=lambda text: markdown_document(f"Postmortem draft — edit it at {url}", text),
        templates_dir=ctx.runtime.settings.templates_dir, names=ctx.runtime.people,
        slos=ctx.runtime.slos, redactor=ctx.runtime.redactor, budget=ctx.runtime.budget)
    return _changed(ctx, f"Postmortem draft posted in the channel; edit it at {url}")


@command("web", help="`web` — a one-time sign-in link for warroom's pages (only you see it)")
def _web(ctx: SlackContext, inv: Invocation) -> Reply:
    """A one-time sign-in link for warroom's pages; the ack is ephemeral, so only the asker sees it."""
    settings = ctx.runtime.settings
    token = signin.new_link(ctx.engine, inv.user, valid_for=timedelta(minutes=settings.signin_link_minutes))
    return (f"Your sign-in link for warroom's pages — it works once, for {settings.signin_link_minutes} minutes; "
            f"don't share it: {settings.public_url.rstrip('/')}/signin/{token}")


# The incident's own subcommands (the actions, `silence` and `evals` are defined with their listeners).
INCIDENT_COMMANDS: tuple[Command, ...] = (_declare, _auto, _ack, _sev, _status, _note, _cause, _commander, _followup,
                                          _followups, _resolve, _reopen, _close, _merge, _split, _list, _timeline,
                                          _postmortem, _web)
