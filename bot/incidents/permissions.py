"""Who may do what to an incident: one table, one check.

Every command and button names an operation here; the Slack edge gathers the facts (who asks,
their user groups, the incident channel's members) and calls ``check``. The README's
"Who may do what" table is this table in words; keep the two in step.

Rules, chosen the way PagerDuty Runbook Automation and StackStorm inquiries behave: the people
responding to an incident are the people in its channel; an action's own ``allowed`` list
(empty: the channel's members) governs running it *and* every decision on it (confirm, approve,
cancel, undo); the requester confirms their own run and can always withdraw it; the approver is
a second person.

Automation is a user (``Actor.automated``): warroom itself may *run* a playbook that says
``unattended: true``, *propose* any playbook (a person then approves it), and *undo* its own
unattended runs; it never confirms, approves or cancels. Anyone who may run a playbook may
request the undo of warroom's run of it; that undo then follows the normal confirm/approve flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bot.actions.playbook import Playbook
from bot.actions.policy import check_approver, check_requester
from bot.errors import PermissionDenied
from bot.said import Person, said

AUTOMATION = "warroom (auto)"  # how automatic requests are recorded (requested_by, timeline actor)
NOT_A_MEMBER = "Only people in the incident channel <#{channel}> can {what}. Join the channel first."


class Rule(str, Enum):  # noqa: UP042 - a StrEnum would change how a member prints
    ANYONE = "anyone in the workspace"
    CHANNEL = "members of the incident channel"
    PLAYBOOK = "the action's `allowed` (empty: members of the incident channel)"


@dataclass(frozen=True)
class Operation:
    rule: Rule
    what: str  # completes "Only … can {what}"


OPERATIONS: dict[str, Operation] = {
    # Talking about the incident is open to everyone who can see it.
    "status": Operation(Rule.ANYONE, "post a status update"),
    "note": Operation(Rule.ANYONE, "add a note"),
    "followup": Operation(Rule.ANYONE, "add a follow-up"),
    "postmortem": Operation(Rule.ANYONE, "draft the postmortem"),
    "promote": Operation(Rule.ANYONE, "promote the incident to its own channel"),
    # Changing the incident is for its responders.
    "ack": Operation(Rule.CHANNEL, "acknowledge it"),
    "severity": Operation(Rule.CHANNEL, "change its severity"),
    "commander": Operation(Rule.CHANNEL, "change its commander"),
    "resolve": Operation(Rule.CHANNEL, "resolve it"),
    "reopen": Operation(Rule.CHANNEL, "reopen it"),
    "close": Operation(Rule.CHANNEL, "close it"),
    "cause": Operation(Rule.CHANNEL, "name its cause"),
    "label": Operation(Rule.CHANNEL, "label its traces (a label becomes an eval case)"),
    "silence": Operation(Rule.CHANNEL, "silence its alerts"),
    # Both incidents' responders: a merge ends the merged incident and archives its channel.
    "merge": Operation(Rule.CHANNEL, "merge it with another incident"),
    "split": Operation(Rule.CHANNEL, "split its alert groups into incidents of their own"),
    # Acting on production follows the playbook.
    "automation": Operation(Rule.CHANNEL, "switch automatic actions on or off"),
    "run": Operation(Rule.PLAYBOOK, "run it"),
    "propose": Operation(Rule.PLAYBOOK, "propose it"),
    "confirm": Operation(Rule.PLAYBOOK, "confirm it"),
    "approve": Operation(Rule.PLAYBOOK, "approve it"),
    "cancel": Operation(Rule.PLAYBOOK, "cancel it"),
    "undo": Operation(Rule.PLAYBOOK, "undo it"),
}


@dataclass
class Actor:
    """Who asks, as the Slack edge verified it. ``channel_members`` is None when the incident has
    no channel of its own (nothing to be a member of)."""

    user: str
    groups: set[str] = field(default_factory=set)
    channel_members: set[str] | None = None
    automated: bool = False

    @classmethod
    def automation(cls) -> Actor:
        return cls(user=AUTOMATION, automated=True)


def check(operation: str, who: Actor, *, channel: str | None = None, playbook: Playbook | None = None,
          requested_by: str | None = None) -> None:
    """Raise PermissionDenied, with the reason, when ``who`` may not do ``operation``.

    For run decisions, ``requested_by`` is the person who asked for the run."""
    op = OPERATIONS[operation]
    if who.automated:
        _check_automation(operation, playbook, requested_by)
        return
    if op.rule is Rule.ANYONE:
        return
    if op.rule is Rule.CHANNEL:
        require_channel_member(who, channel, op.what)
        return
    assert playbook is not None, f"{operation} is checked against a playbook"
    members = who.channel_members or set()
    if operation == "confirm" and requested_by is not None and who.user != requested_by:
        raise PermissionDenied(
            said("Only ", Person(requested_by), f", who requested it, can confirm this {playbook.name} run.")
        )
    if operation == "cancel" and who.user == requested_by:
        return  # withdrawing your own request is always allowed: it changes nothing
    if operation == "approve":
        decision = check_approver(playbook, requested_by or "", who.user, who.groups, members)
        if playbook.approval == "none":  # nothing to approve; still only people who may run it
            decision = check_requester(playbook, who.user, who.groups, members)
    else:
        decision = check_requester(playbook, who.user, who.groups, members)
        if not decision.allowed and operation != "run":
            decision = decision.model_copy(update={"reason": decision.reason.replace_words(
                f"may not run {playbook.name}", f"may not {operation} a {playbook.name} run")})
    if not decision.allowed:
        raise PermissionDenied(decision.reason)


def _check_automation(operation: str, playbook: Playbook | None, requested_by: str | None) -> None:
    name = playbook.name if playbook else "this"
    if operation == "propose" and playbook is not None:
        return
    if operation == "run" and playbook is not None and playbook.unattended:
        return
    if operation == "undo" and playbook is not None and playbook.unattended and requested_by == AUTOMATION:
        return
    if operation in ("run", "undo"):
        raise PermissionDenied(f"warroom may not {operation} {name} on its own: the playbook does not say "
                               "`unattended: true` (a person can run it, or a runbook can `propose` it)")
    raise PermissionDenied(f"warroom may not {OPERATIONS[operation].what} on its own; a person must")


def is_automation(user: str | None) -> bool:
    return user == AUTOMATION


def require_channel_member(who: Actor, channel: str | None, what: str) -> None:
    if who.channel_members is not None and who.user not in who.channel_members:
        raise PermissionDenied(NOT_A_MEMBER.format(channel=channel, what=what))


def rule_of(operation: str) -> Rule:
    return OPERATIONS[operation].rule
