"""Actions from Slack: `/incident fallback|rollback|disable-tool|enable-tool|run|undo|actions`,
the confirmation/approval card and its buttons, and the "Run action…" form.

Listeners only parse and authorise (who is in the channel, which user groups they are in);
`bot.actions.operations` applies `bot.actions.service.Actions`' rules, the worker performs the run
and `bot.slack.action_effects` keeps its card up to date.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.actions import operations
from bot.actions.service import Actions, Requester, describe
from bot.errors import UserError
from bot.incidents import operations as incidents
from bot.slack import modals
from bot.slack.command_table import CommandTable, command
from bot.slack.context import SlackContext
from bot.slack.guard import RespondOrTell
from bot.slack.invocation import Invocation
from bot.slack.listeners.commands import incident_id_for
from bot.slack.replies import for_user

SHORTCUTS = ("fallback", "rollback", "disable-tool", "enable-tool")


def requester(ctx: SlackContext, actions: Actions, user: str, channel_id: str | None, playbook: str) -> Requester:
    """The facts `bot.incidents.permissions` decides on: the incident channel's members, the user's groups
    among those the playbook names."""
    members = set(ctx.gateway.call("conversations.members", channel=channel_id, limit=1000).get("members", [])) \
        if channel_id else None
    handles = [h.lstrip("@") for h in actions.playbook(playbook).allowed if h.startswith("@")]
    groups: set[str] = set()
    if handles:
        listing = ctx.gateway.call("usergroups.list").get("usergroups", [])
        for group in listing:
            if group.get("handle") in handles:
                users = ctx.gateway.call("usergroups.users.list", usergroup=group["id"]).get("users", [])
                if user in users:
                    groups.add("@" + group["handle"])
    return Requester(user=user, groups=groups, channel_members=members)


def request_run(ctx: SlackContext, actions: Actions, incident_id: int, playbook: str, args: list[str] | dict,
                user: str) -> str:
    who = requester(ctx, actions, user, incidents.channel_of(ctx.engine, incident_id), playbook)
    run, new = operations.request(actions, incident_id, playbook, args, who)
    text, status = describe(run), run.status
    ctx.runtime.wake.set()
    if not new:
        return f"{text} is already {status.replace('_', ' ')}; see its card in the channel."
    return {"queued": f"{text} is starting; progress follows in the channel.",
            "awaiting_approval": f"{text} needs a second person to approve it (card in the channel)."}.get(
        status, f"Review {text} in the channel and press Confirm.")


# Their parts of `/incident help`; `run` is for any action and not listed (`actions` lists them).
SHORTCUT_HELP = {"fallback": "`fallback [route]`", "rollback": "`rollback [bundle]`",
                 "disable-tool": "`disable-tool <tool>`", "enable-tool": "`enable-tool <tool>`"}


def register_commands(table: CommandTable, actions: Actions) -> None:
    def shortcut(name: str):  # noqa: ANN202
        def handler(c: SlackContext, inv: Invocation) -> str:
            return request_run(c, actions, incident_id_for(c, inv), name, shlex.split(inv.args), inv.user)
        return handler

    table.add(*(command(name, help=SHORTCUT_HELP[name])(shortcut(name)) for name in SHORTCUTS))

    @command("run")
    def run_any(c: SlackContext, inv: Invocation) -> str:
        words = shlex.split(inv.args)
        if not words:
            raise UserError("Usage: `/incident run <action> [args]` — see `/incident actions`.")
        return request_run(c, actions, incident_id_for(c, inv), words[0], words[1:], inv.user)

    @command("undo", help="`undo <run>`")
    def undo(c: SlackContext, inv: Invocation) -> str:
        number = inv.args.lstrip("#")
        if not number.isdigit():
            raise UserError("Usage: `/incident undo <run>` (the run number from its card, e.g. `/incident undo 3`).")
        return undo_run(c, actions, int(number), inv.user)

    @command("actions", help="`actions` — what this incident's runbook offers")
    def list_actions(c: SlackContext, inv: Invocation) -> str:
        incident, runs = operations.incident_runs(actions, incident_id_for(c, inv))
        runbook = c.runtime.runbooks.get(incident.runbook_id) if incident.runbook_id else None
        offered = list(runbook.actions) if runbook else []
        run_lines = [f"• {describe(r)} — {r.status}" for r in runs[-10:]]
        lines = [f"*Actions the runbook offers:* {', '.join(f'`{a}`' for a in offered) or 'none'}",
                 f"*All actions:* {', '.join(f'`{n}`' for n in sorted(actions.playbooks))}"]
        for name in offered:
            pb = actions.playbooks.get(name)
            if pb:
                lines.append(f"• `{name}` — {pb.description}")
        if run_lines:
            lines += ["*Runs in this incident:*", *run_lines]
        return "\n".join(lines)

    table.add(run_any, undo, list_actions)


def undo_run(ctx: SlackContext, actions: Actions, run_id: int, user: str) -> str:
    run, channel = operations.run_and_channel(actions, run_id)
    who = requester(ctx, actions, user, channel, run.playbook)
    undo, new = operations.undo(actions, run_id, who)
    text, status = describe(undo), undo.status
    ctx.runtime.wake.set()
    if not new:
        return f"{text} is already {status.replace('_', ' ')}; see its card in the channel."
    return {"queued": f"Undoing run #{run_id} ({text}); progress follows in the channel.",
            "awaiting_approval": f"{text} needs a second person to approve it (card in the channel)."}.get(
        status, f"Review {text} in the channel and press Confirm.")


def register(app: App, ctx: SlackContext, table: CommandTable, actions: Actions) -> None:
    register_commands(table, actions)

    def on_run(body: dict[str, Any], respond: RespondOrTell, work: Callable[[int, str], str | None]) -> None:
        user = body["user"]["id"]
        run_id = int(body["actions"][0]["value"])
        ctx.background(lambda: work(run_id, user), respond)

    def decide(decision: str):  # noqa: ANN202
        def work(run_id: int, user: str) -> str | None:
            run, channel = operations.run_and_channel(actions, run_id)
            who = requester(ctx, actions, user, channel, run.playbook)
            refused = operations.decide(actions, run_id, decision, who)
            ctx.runtime.wake.set()
            return f"⚠️ {refused}" if refused else None
        return work

    for decision in ("confirm", "approve", "cancel"):
        app.action(f"action.{decision}")(_acked(lambda body, respond, d=decision: on_run(body, respond, decide(d))))

    def dry_run(run_id: int, user: str) -> str:
        result = operations.dry_run(actions, run_id)
        lines = [f"{s.request_preview_masked.get('method')} {s.request_preview_masked.get('url')} "
                 f"{s.request_preview_masked.get('json', '')}" for s in result.steps]
        return "Dry run (nothing was sent; secrets masked):\n```" + "\n".join(lines) + "```" if lines else \
            f"Dry run failed: {result.error}"

    app.action("action.dry_run")(_acked(lambda body, respond: on_run(body, respond, dry_run)))
    app.action("action.undo")(_acked(lambda body, respond: on_run(
        body, respond, lambda run_id, user: undo_run(ctx, actions, run_id, user))))

    @app.action("incident.playbook")
    def runbook_button(ack: Ack, body: dict[str, Any], respond: RespondOrTell) -> None:
        ack()
        incident_id, _, name = body["actions"][0]["value"].partition(":")
        user = body["user"]["id"]
        ctx.background(lambda: request_run(ctx, actions, int(incident_id), name, [], user), respond)

    @app.action("incident.run_action")
    def run_action_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        incident_id = int(body["actions"][0]["value"])
        options = [(f"{name} — {pb.description}", name) for name, pb in sorted(actions.playbooks.items())]
        client.views_open(trigger_id=body["trigger_id"], view=modals.run_action(incident_id, options))

    @app.view("run_action")
    def run_action_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values, meta = modals.values(view), modals.metadata(view)
        try:
            args = shlex.split(values.get("args") or "")
            message = request_run(ctx, actions, int(meta["incident_id"]), values.get("playbook") or "", args,
                                  body["user"]["id"])
        except UserError as exc:
            ack(response_action="errors", errors={"args": str(exc)[:150]})
            return
        except Exception as exc:
            ack(response_action="errors", errors={"playbook": for_user(exc)[:150]})
            return
        ack()
        _ = message


def _acked(handler):  # noqa: ANN001, ANN202
    def listener(ack: Ack, body: dict[str, Any], respond: RespondOrTell) -> None:
        ack()
        handler(body, respond)
    return listener
