"""The scheduler's jobs: reminders people need and housekeeping nobody should have to remember.

Each job is ``(engine, settings, now) -> int`` (how many effects it queued or rows it changed;
the escalation job also takes the runbooks, to know who owns what), reads everything it decides
on from the database and is safe to run any number of times, from any number of processes at once:

* the job's transaction first takes a lease (``leased``): on PostgreSQL a transaction-scoped
  advisory lock, skipped when another process holds it; on SQLite the ``BEGIN IMMEDIATE`` writer
  lock, which queues the second process behind the first;
* each reminder has a key naming the incident and the period it belongs to, so a second run of
  the same period finds the key taken and does nothing (the timeline event is written only by
  the run that queued the reminder).

Reminders are outbox kind ``slack.reminder`` with ``{"incident_id", "text", "mention", "level"}``;
the worker posts the text in the incident channel and resolves ``mention`` ("owners" from the
runbook, at escalation ``level``; "commander"; "none"). Escalations and status nudges due in one
run for the same people are one ``slack.reminder_digest`` instead (`bot.incidents.reminder_groups`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.clock import as_utc
from bot.config import Settings
from bot.effects import OpenRoom
from bot.incidents import lifecycle, reminder_groups, service
from bot.incidents.reminder_groups import Digest, Due, Target, remind
from bot.runbooks import RunbookSet
from bot.store.db import affected_rows, is_postgres, transaction
from bot.store.models import Incident, OutboxItem, Postmortem, TimelineEvent, Trace

log = logging.getLogger(__name__)

ACTOR = reminder_groups.ACTOR

# Level 1 re-pings the runbook owners, each further period goes one group up the chain; past the
# last level people have been told three times and more pings are noise, not escalation.
MAX_ESCALATION_LEVEL = 3
# Minutes without a status update before the channel is nudged, by severity (sev3/4: never).
STATUS_UPDATE_MINUTES: dict[int, int] = {1: 15, 2: 30}
STATUS_KINDS = ("status",)
POSTMORTEM_DUE_AFTER = timedelta(hours=48)
# Incidents resolved longer ago than this are history: turning the job on must not flood
# every old channel with a postmortem reminder.
POSTMORTEM_LOOKBACK = timedelta(days=14)
# A failed room set-up goes back in the queue no sooner than this after its last failure, so a
# Slack outage costs one attempt per period, whatever the job interval and the process count.
RETRY_SETUP_AFTER = timedelta(minutes=5)
# Rows deleted per tick: a long backlog drains over several ticks instead of one long lock.
PRUNE_BATCH = 10_000
# Incidents closed per tick: turning auto-close on over a long history archives channels in
# steps that stay inside Slack's rate limits (the worker spaces the calls).
CLOSE_BATCH = 50


def lease_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_xact_lock`` (Python's ``hash`` is salted)."""
    digest = hashlib.sha256(f"warroom:job:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def take_lease(session: Session, name: str) -> bool:
    """Hold ``name`` until this transaction ends; ``False`` when another transaction holds it."""
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lease_key(name)}).scalar())
    # SQLite: the first statement runs BEGIN IMMEDIATE (bot.store.db), taking the single writer lock now
    # rather than at the first write, so the whole read-decide-write runs alone.
    session.execute(text("SELECT 1"))
    return True


@contextmanager
def leased(engine: Engine, name: str) -> Iterator[Session | None]:
    """A transaction holding the job's lease, or ``None`` when this tick belongs to another process."""
    with transaction(engine) as session:
        if not take_lease(session, name):
            log.debug("job %s: lease held elsewhere, skipping this tick", name)
            yield None
            return
        yield session


def _escalation_digest_text(due: Sequence[Due]) -> str:
    level = max(d.level for d in due)
    doing = "Paging the owners again" if level == 1 else f"Escalating to the next group (up to level {level})"
    return f"{doing}. Acknowledge each with `/incident ack` in its channel."


ESCALATION_DIGEST = Digest(rule="escalate", mention="owners", label="unacknowledged incidents",
                           text=_escalation_digest_text)
STATUS_DIGEST = Digest(rule="nudge", mention="commander", label="incidents without a status update",
                       text=lambda due: ("Post one in each with "
                                         "`/incident status <what we know, what we are doing, next update>`."))


def escalate_unacknowledged(engine: Engine, settings: Settings, now: datetime,
                            runbooks: RunbookSet | None = None) -> int:
    """Incidents still ``triggered`` after each ack period: level 1 re-pings the owners, level n
    pages the next group. Only the current level is sent (after downtime, not every missed one).

    Incidents due for the same owners go out as one digest (`bot.incidents.reminder_groups`);
    ``runbooks`` tells who the owners are. Without it (a job called outside a warroom) incidents of
    the same runbook are the same owners."""
    period = timedelta(minutes=settings.ack_escalation_minutes)
    with leased(engine, "escalate-unacknowledged") as session:
        if session is None:
            return 0
        stmt = select(Incident).where(col(Incident.status) == lifecycle.TRIGGERED,
                                      col(Incident.opened_at) <= now - period)
        due = []
        for incident in session.execute(stmt).scalars():
            waited = now - _utc(incident.opened_at)
            level = min(int(waited / period), MAX_ESCALATION_LEVEL)
            minutes = int(waited.total_seconds() // 60)
            if level == 1:
                text_ = (f"Not acknowledged after {minutes} min: paging the owners again. "
                         "Acknowledge with `/incident ack`.")
            else:
                text_ = (f"Still not acknowledged after {minutes} min: escalating to the next group (level {level}). "
                         "Acknowledge with `/incident ack`.")
            due.append(Due(incident, key=f"escalate:{incident.id}:{level}", text=text_, level=level, minutes=minutes,
                           target=_owners(incident, runbooks)))
        return reminder_groups.send(session, settings, due, ESCALATION_DIGEST, now)


def nudge_status_updates(engine: Engine, settings: Settings, now: datetime) -> int:
    """Open SEV1/SEV2 incidents with no status update in their period get one nudge per period;
    incidents due with the same commander, one digest for them all (`bot.incidents.reminder_groups`)."""
    with leased(engine, "nudge-status-updates") as session:
        if session is None:
            return 0
        stmt = select(Incident).where(col(Incident.status).in_(lifecycle.OPEN_STATUSES),
                                      col(Incident.severity).in_(tuple(STATUS_UPDATE_MINUTES)))
        incidents = list(session.execute(stmt).scalars())
        last_update = _last_status_updates(session, [i.id for i in incidents if i.id is not None])
        due = []
        for incident in incidents:
            period = timedelta(minutes=STATUS_UPDATE_MINUTES[incident.severity])
            bucket = int((now - _utc(incident.opened_at)) / period)
            latest = last_update.get(incident.id)
            if bucket < 1 or (latest is not None and latest >= now - period):
                continue
            minutes = int(period.total_seconds() // 60)
            text_ = (f"No status update for {minutes} min on this SEV{incident.severity} incident. "
                     "Post one with `/incident status <what we know, what we are doing, next update>`.")
            silent = now - (latest or _utc(incident.opened_at))
            due.append(Due(incident, key=f"nudge:{incident.id}:{bucket}", text=text_, level=bucket,
                           minutes=int(silent.total_seconds() // 60),
                           target=(incident.commander,) if incident.commander else ()))
        return reminder_groups.send(session, settings, due, STATUS_DIGEST, now)


def postmortem_due(engine: Engine, settings: Settings, now: datetime) -> int:
    """One reminder for an incident resolved two days ago that still has no postmortem."""
    with leased(engine, "postmortem-due") as session:
        if session is None:
            return 0
        has_postmortem = exists().where(col(Postmortem.incident_id) == col(Incident.id))
        stmt = select(Incident).where(
            col(Incident.status).in_((lifecycle.RESOLVED, lifecycle.CLOSED)),
            col(Incident.resolved_at) <= now - POSTMORTEM_DUE_AFTER,
            col(Incident.resolved_at) > now - POSTMORTEM_LOOKBACK,
            ~has_postmortem,
        )
        queued = 0
        for incident in session.execute(stmt).scalars():
            hours = int((now - _utc(incident.resolved_at)).total_seconds() // 3600)
            text_ = (f"This incident was resolved {hours} h ago and has no postmortem yet. "
                     "Start the draft with `/incident postmortem`.")
            queued += remind(session, incident, key=f"pm-reminder:{incident.id}", text_=text_,
                              mention="commander", level=1, rule="postmortem", now=now)
        return queued


def retry_setup(engine: Engine, settings: Settings, now: datetime) -> int:
    """Put failed incident-room set-up rows back in the queue (the steps themselves are resumable).

    ``outbox.retry_failed`` takes every failed row of an incident; a failed reminder must not be
    re-sent just because the room failed too, so this filters on the set-up kinds.
    """
    with leased(engine, "retry-setup") as session:
        if session is None:
            return 0
        stmt = (update(OutboxItem)
                .where(col(OutboxItem.status) == "failed",
                       col(OutboxItem.kind) == OpenRoom.kind,
                       # next_attempt_at is stamped at failure time plus the back-off, so this
                       # holds only once the row has been failed for at least RETRY_SETUP_AFTER.
                       col(OutboxItem.next_attempt_at) <= now - RETRY_SETUP_AFTER)
                .values(status="pending", attempts=0, next_attempt_at=now)
                .execution_options(synchronize_session=False))
        count = affected_rows(session.execute(stmt))
        if count:
            log.info("re-queued %d failed incident-room set-up step(s)", count)
        return count


def prune_traces(engine: Engine, settings: Settings, now: datetime) -> int:
    """Delete traces past retention that no incident points at (those are the incident's evidence)."""
    cutoff = now - timedelta(days=settings.trace_retention_days)
    with leased(engine, "prune-traces") as session:
        if session is None:
            return 0
        batch = (select(col(Trace.id)).where(col(Trace.timestamp) < cutoff, col(Trace.incident_id).is_(None))
                 .order_by(col(Trace.id)).limit(PRUNE_BATCH))
        stmt = delete(Trace).where(col(Trace.id).in_(batch)).execution_options(synchronize_session=False)
        count = affected_rows(session.execute(stmt))
        if count:
            log.info("pruned %d trace(s) older than %d days", count, settings.trace_retention_days)
        return count


def close_resolved(engine: Engine, settings: Settings, now: datetime) -> int:
    """Close incidents resolved ``WARROOM_AUTO_CLOSE_DAYS`` ago or more that nobody closed or
    reopened: the channel is archived and the incident leaves every open list."""
    if not settings.auto_close_days:
        return 0
    cutoff = now - timedelta(days=settings.auto_close_days)
    with leased(engine, "close-resolved") as session:
        if session is None:
            return 0
        stmt = (select(Incident).where(col(Incident.status) == lifecycle.RESOLVED, col(Incident.resolved_at) <= cutoff)
                .order_by(col(Incident.resolved_at)).limit(CLOSE_BATCH))
        incidents = list(session.execute(stmt).scalars())
        for incident in incidents:
            service.close(session, incident, actor=ACTOR,
                          reason=f"resolved {settings.auto_close_days} days ago (WARROOM_AUTO_CLOSE_DAYS)")
        return len(incidents)


def _owners(incident: Incident, runbooks: RunbookSet | None) -> Target:
    """Whom the incident's escalation pings: its runbook's owners, as the worker resolves them."""
    if runbooks is None:
        return (f"runbook:{incident.runbook_id}",) if incident.runbook_id else ()
    runbook = runbooks.get(incident.runbook_id) if incident.runbook_id else None
    return tuple(sorted(set(runbook.owners))) if runbook else ()


def _last_status_updates(session: Session, incident_ids: list[int]) -> dict[int, datetime]:
    if not incident_ids:
        return {}
    stmt = (select(col(TimelineEvent.incident_id), func.max(col(TimelineEvent.at)))
            .where(col(TimelineEvent.incident_id).in_(incident_ids), col(TimelineEvent.kind).in_(STATUS_KINDS))
            .group_by(col(TimelineEvent.incident_id)))
    return {incident_id: _utc(at) for incident_id, at in session.execute(stmt).all()}


def _utc(value: datetime | None) -> datetime:
    moment = as_utc(value)
    assert moment is not None, "a timestamp the query filtered on is set"
    return moment
