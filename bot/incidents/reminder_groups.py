"""Reminders that would ping the same people in one run go out as one (storm mode).

A reminder job hands over every incident whose reminder is due, each with whom the reminder
would mention (its ``target``: the runbook's owners as a set, so two runbooks owned by
``@ml-oncall`` are one group; or the commander). Incidents due for the same target are one group:

* a group of one gets its reminder as it always has: a `PostReminder` in its own channel;
* a larger group gets one `PostReminderDigest`: one post in the incidents channel, one mention,
  the incidents listed. Each incident still gets its timeline line (the postmortem shows the
  escalation), and nothing in its channel: its owners are members of every one of those channels,
  so even a line without a mention in each would be one unread channel per incident for the same
  people, the noise the digest is there to remove.

Without an incidents channel (``WARROOM_INCIDENTS_CHANNEL``) there is nowhere to post the one
message, and every incident keeps its own reminder.

An incident's period is claimed by its timeline line's dedupe key (the key its own reminder has
always had, e.g. ``escalate:<id>:<level>``): the job holds its lease while it reads which claims
are taken, so a second run of the same period finds them all taken and queues nothing. A digest's
outbox key names its group and the periods it covers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlmodel import Session, col

from bot.config import Settings
from bot.effects import DigestItem, PostReminder, PostReminderDigest
from bot.incidents import timeline
from bot.store import outbox
from bot.store.models import Incident, TimelineEvent, saved_id

Mention = Literal["owners", "commander", "none"]
Target = tuple[str, ...]  # whom a reminder would mention, sorted: the same people are the same group

ACTOR = "scheduler"  # an automated actor for the postmortem timeline's noise filter


@dataclass(frozen=True)
class Due:
    """One incident's reminder for one period, as the job decided it."""

    incident: Incident
    key: str  # the period's claim: the incident's reminder key
    text: str  # the incident's own reminder text (its channel line, or its timeline line in a digest)
    level: int
    minutes: int  # how long it has waited, for the digest's list
    target: Target


@dataclass(frozen=True)
class Digest:
    """How a job words its digest: ``label`` after the count, ``text`` after the list."""

    rule: str  # the timeline data's "rule", and the digest key's prefix
    mention: Mention
    label: str
    text: Callable[[Sequence[Due]], str]


def send(session: Session, settings: Settings, due: Sequence[Due], digest: Digest, now: datetime) -> int:
    """Queue this run's reminders for ``due``: one per incident, or one per group of incidents due
    for the same target. How many effects were queued."""
    taken = _claimed(session, [d.key for d in due])
    groups: dict[Target, list[Due]] = {}
    for item in due:
        if item.key not in taken:
            groups.setdefault(item.target, []).append(item)
    queued = 0
    for members in groups.values():
        if len(members) == 1 or not settings.incidents_channel:
            for item in members:
                queued += remind(session, item.incident, key=item.key, text_=item.text, mention=digest.mention,
                                 level=item.level, rule=digest.rule, now=now)
        else:
            queued += _send_digest(session, members, digest, now)
    return queued


def remind(session: Session, incident: Incident, *, key: str, text_: str, mention: Mention, level: int,
           rule: str, now: datetime) -> int:
    """One incident's reminder in its own channel, and its timeline line; 0 when the period's was queued before."""
    reminder = PostReminder(incident_id=saved_id(incident), text=text_, mention=mention, level=level)
    if not outbox.enqueue(session, reminder, key=key, incident_id=incident.id).new():
        return 0  # this period's reminder was queued before (by this process or another)
    timeline.record(session, incident, "reminder", text_, actor=ACTOR, at=now,
                    data={"rule": rule, "level": level, "mention": mention}, dedupe_key=key)
    return 1


def _send_digest(session: Session, members: list[Due], digest: Digest, now: datetime) -> int:
    # Most urgent first: the list is cut after a few, and those are the ones to open.
    members = sorted(members, key=lambda d: (d.incident.severity, -d.minutes, saved_id(d.incident)))
    effect = PostReminderDigest(label=digest.label, text=digest.text(members), mention=digest.mention,
                                incidents=[DigestItem(incident_id=saved_id(d.incident), minutes=d.minutes)
                                           for d in members])
    if not outbox.enqueue(session, effect, key=_digest_key(digest.rule, members)).new():
        return 0
    others = len(members) - 1
    for item in members:
        line = f"{item.text} (One reminder in the incidents channel for this and {others} other incident(s).)"
        timeline.record(session, item.incident, "reminder", line, actor=ACTOR, at=now,
                        data={"rule": digest.rule, "level": item.level, "mention": digest.mention,
                              "digest": len(members)},
                        dedupe_key=item.key)
    return 1


def _digest_key(rule: str, members: Sequence[Due]) -> str:
    """The group (whom it mentions) and the periods it covers (its incidents' keys), in 200 characters."""
    group = _digest("\n".join(members[0].target))
    periods = _digest("\n".join(sorted(d.key for d in members)))
    return f"{rule}:group:{group}:{periods}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _claimed(session: Session, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    stmt = select(col(TimelineEvent.dedupe_key)).where(col(TimelineEvent.dedupe_key).in_(keys))
    return {key for key in session.execute(stmt).scalars() if key is not None}
