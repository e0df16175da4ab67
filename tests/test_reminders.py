"""Reminder and housekeeping jobs: each fires once per period and stops when the incident moves on.

Time is injected (``now``); rows are written directly, as the incident service would leave them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.config import Settings
from bot.incidents import reminders, service, timeline
from bot.store.db import make_engine, transaction
from bot.store.models import Incident, OutboxItem, Postmortem, TimelineEvent, Trace

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def add_incident(engine: Engine, *, status: str = "triggered", severity: int = 2, opened_at: datetime = T0,
                 **fields: Any) -> int:
    with transaction(engine) as session:
        incident = Incident(title="Hallucination rate spike", status=status, severity=severity, service="llm-gateway",
                            opened_at=opened_at, **fields)
        session.add(incident)
        session.flush()
        assert incident.id is not None
        return incident.id


def reminder_rows(engine: Engine, incident_id: int) -> list[OutboxItem]:
    with transaction(engine) as session:
        stmt = (select(OutboxItem).where(OutboxItem.kind == "slack.reminder", OutboxItem.incident_id == incident_id)
                .order_by(OutboxItem.id))
        return list(session.execute(stmt).scalars())


def reminder_events(engine: Engine, incident_id: int) -> list[TimelineEvent]:
    with transaction(engine) as session:
        stmt = (select(TimelineEvent).where(TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "reminder")
                .order_by(TimelineEvent.id))
        return list(session.execute(stmt).scalars())


# --- escalation of unacknowledged incidents -------------------------------------------------

def test_unacknowledged_incident_escalates_once_per_period(engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine)
    period = settings.ack_escalation_minutes

    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(period - 1)) == 0
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(period)) == 1
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(period + 5)) == 0
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(2 * period)) == 1
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(2 * period)) == 0

    first, second = reminder_rows(engine, incident_id)
    assert first.dedupe_key == f"escalate:{incident_id}:1"
    assert first.payload == {"incident_id": incident_id, "mention": "owners", "level": 1,
                             "text": first.payload["text"]}
    assert "paging the owners again" in first.payload["text"]
    assert second.dedupe_key == f"escalate:{incident_id}:2"
    assert second.payload["level"] == 2 and "next group" in second.payload["text"]
    events = reminder_events(engine, incident_id)
    assert [e.data["level"] for e in events] == [1, 2]
    assert {e.actor for e in events} == {"scheduler"}


def test_escalation_stops_once_acknowledged(engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine)
    period = settings.ack_escalation_minutes
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(period)) == 1
    with transaction(engine) as session:
        service.acknowledge(session, service.get(session, incident_id), actor="U0ONCALL",
                            at=T0 + minutes(period + 1))

    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(2 * period)) == 0
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(5 * period)) == 0
    assert len(reminder_rows(engine, incident_id)) == 1


def test_escalation_after_downtime_sends_only_the_current_level_and_stops_at_the_last(
        engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine)
    period = settings.ack_escalation_minutes

    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(2 * period + 3)) == 1
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(30 * period)) == 1
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(60 * period)) == 0

    levels = [row.payload["level"] for row in reminder_rows(engine, incident_id)]
    assert levels == [2, reminders.MAX_ESCALATION_LEVEL]


def digest_rows(engine: Engine) -> list[OutboxItem]:
    with transaction(engine) as session:
        stmt = select(OutboxItem).where(OutboxItem.kind == "slack.reminder_digest").order_by(OutboxItem.id)
        return list(session.execute(stmt).scalars())


def test_incidents_due_for_the_same_owners_share_one_digest_and_keep_their_timeline_lines(
        engine: Engine, settings: Settings) -> None:
    with_channel = settings.model_copy(update={"incidents_channel": "C0INCIDENTS"})
    period = settings.ack_escalation_minutes
    spike = [add_incident(engine, runbook_id="hallucination-spike", severity=s, opened_at=T0 - minutes(m))
             for s, m in ((2, 0), (1, 0), (2, 3))]
    other = add_incident(engine, runbook_id="latency-p99")

    assert reminders.escalate_unacknowledged(engine, with_channel, T0 + minutes(period)) == 2
    assert reminders.escalate_unacknowledged(engine, with_channel, T0 + minutes(period)) == 0

    (digest,) = digest_rows(engine)
    assert digest.incident_id is None and digest.payload["mention"] == "owners"
    # most urgent first: SEV1, then the one waiting longest
    assert digest.payload["incidents"] == [{"incident_id": spike[1], "minutes": period},
                                           {"incident_id": spike[2], "minutes": period + 3},
                                           {"incident_id": spike[0], "minutes": period}]
    assert all(reminder_rows(engine, i) == [] for i in spike)
    assert [r.dedupe_key for r in reminder_rows(engine, other)] == [f"escalate:{other}:1"]  # alone: as before
    for incident_id in spike:
        (event,) = reminder_events(engine, incident_id)
        assert event.dedupe_key == f"escalate:{incident_id}:1" and event.data["digest"] == 3


def test_without_an_incidents_channel_each_incident_keeps_its_own_reminder(
        engine: Engine, settings: Settings) -> None:
    assert not settings.incidents_channel
    ids = [add_incident(engine, runbook_id="hallucination-spike") for _ in range(3)]
    assert reminders.escalate_unacknowledged(engine, settings, T0 + minutes(settings.ack_escalation_minutes)) == 3
    assert digest_rows(engine) == []
    assert all(len(reminder_rows(engine, i)) == 1 for i in ids)


# --- status-update nudges -------------------------------------------------------------------

def test_sev1_without_status_update_is_nudged_once_each_period(engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine, status="acknowledged", severity=1, acknowledged_at=T0 + minutes(2))
    period = reminders.STATUS_UPDATE_MINUTES[1]

    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(period - 1)) == 0
    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(period)) == 1
    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(period + 7)) == 0
    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(2 * period)) == 1

    rows = reminder_rows(engine, incident_id)
    assert [r.dedupe_key for r in rows] == [f"nudge:{incident_id}:1", f"nudge:{incident_id}:2"]
    assert {r.payload["mention"] for r in rows} == {"commander"}
    assert "/incident status" in rows[0].payload["text"]
    assert len(reminder_events(engine, incident_id)) == 2


def test_a_recent_status_update_holds_the_nudge_back(engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine, severity=2)
    period = reminders.STATUS_UPDATE_MINUTES[2]
    with transaction(engine) as session:
        timeline.record(session, service.get(session, incident_id), "status", "Rolled back the prompt; watching",
                        actor="U0IC", at=T0 + minutes(period - 5))

    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(period)) == 0
    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(2 * period - 5)) == 0
    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(2 * period - 4)) == 1
    assert [r.dedupe_key for r in reminder_rows(engine, incident_id)] == [f"nudge:{incident_id}:1"]


def test_nudges_stop_when_resolved_and_never_start_for_sev3(engine: Engine, settings: Settings) -> None:
    sev1 = add_incident(engine, severity=1)
    sev3 = add_incident(engine, severity=3)
    period = reminders.STATUS_UPDATE_MINUTES[1]
    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(period)) == 1
    with transaction(engine) as session:
        service.resolve(session, service.get(session, sev1), actor="U0IC", at=T0 + minutes(period + 1))

    assert reminders.nudge_status_updates(engine, settings, T0 + minutes(3 * period)) == 0
    assert len(reminder_rows(engine, sev1)) == 1
    assert reminder_rows(engine, sev3) == []


# --- postmortem reminders -------------------------------------------------------------------

def test_postmortem_reminder_once_two_days_after_resolve(engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine, status="resolved", resolved_at=T0)

    assert reminders.postmortem_due(engine, settings, T0 + timedelta(hours=47, minutes=59)) == 0
    assert reminders.postmortem_due(engine, settings, T0 + timedelta(hours=48)) == 1
    assert reminders.postmortem_due(engine, settings, T0 + timedelta(hours=60)) == 0

    (row,) = reminder_rows(engine, incident_id)
    assert row.dedupe_key == f"pm-reminder:{incident_id}"
    assert "no postmortem" in row.payload["text"] and "/incident postmortem" in row.payload["text"]
    assert len(reminder_events(engine, incident_id)) == 1


def test_no_postmortem_reminder_when_one_exists_or_the_incident_is_open(engine: Engine, settings: Settings) -> None:
    written = add_incident(engine, status="resolved", resolved_at=T0)
    reopened = add_incident(engine, status="acknowledged")
    with transaction(engine) as session:
        session.add(Postmortem(incident_id=written, draft="# Postmortem", generated_at=T0 + timedelta(hours=3)))

    assert reminders.postmortem_due(engine, settings, T0 + timedelta(hours=50)) == 0
    assert reminder_rows(engine, written) == [] and reminder_rows(engine, reopened) == []


def test_old_incidents_get_no_postmortem_reminder_when_the_job_is_first_turned_on(
        engine: Engine, settings: Settings) -> None:
    add_incident(engine, status="closed", resolved_at=T0 - reminders.POSTMORTEM_LOOKBACK - timedelta(days=1))
    assert reminders.postmortem_due(engine, settings, T0) == 0


# --- auto-close -----------------------------------------------------------------------------

def test_resolved_incidents_close_after_the_configured_days_and_their_channel_is_archived(
        engine: Engine, settings: Settings) -> None:
    stale = add_incident(engine, status="resolved", resolved_at=T0)
    reopened = add_incident(engine, status="acknowledged", resolved_at=None)
    days = timedelta(days=settings.auto_close_days)

    assert reminders.close_resolved(engine, settings, T0 + days - minutes(1)) == 0
    assert reminders.close_resolved(engine, settings, T0 + days) == 1
    assert reminders.close_resolved(engine, settings, T0 + days + minutes(60)) == 0  # closed once

    with transaction(engine) as session:
        assert session.get(Incident, stale).status == "closed"
        assert session.get(Incident, reopened).status == "acknowledged"
        archive = session.execute(select(OutboxItem).where(OutboxItem.kind == "slack.archive")).scalars().all()
        closed = session.execute(select(TimelineEvent).where(TimelineEvent.incident_id == stale,
                                                             TimelineEvent.kind == "closed")).scalar_one()
    assert [row.incident_id for row in archive] == [stale]
    assert closed.text == (f"Closed by scheduler: resolved {settings.auto_close_days} days ago "
                           "(WARROOM_AUTO_CLOSE_DAYS); the channel will be archived")


def test_auto_close_off_leaves_resolved_incidents_alone(engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine, status="resolved", resolved_at=T0)
    never = settings.model_copy(update={"auto_close_days": 0})
    assert reminders.close_resolved(engine, never, T0 + timedelta(days=365)) == 0
    with transaction(engine) as session:
        assert session.get(Incident, incident_id).status == "resolved"


# --- set-up retries -------------------------------------------------------------------------

def add_outbox(engine: Engine, *, kind: str, key: str, status: str, failed_at: datetime,
               incident_id: int | None = None) -> None:
    with transaction(engine) as session:
        session.add(OutboxItem(kind=kind, dedupe_key=key, incident_id=incident_id, status=status, attempts=8,
                               next_attempt_at=failed_at, created_at=failed_at, last_error="channel_not_found"))


def outbox_row(engine: Engine, key: str) -> OutboxItem:
    with transaction(engine) as session:
        return session.execute(select(OutboxItem).where(OutboxItem.dedupe_key == key)).scalar_one()


def test_failed_room_setup_is_requeued_after_five_minutes_other_failures_stay(
        engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine)
    add_outbox(engine, kind="slack.room", key="room:x", status="failed", failed_at=T0, incident_id=incident_id)
    add_outbox(engine, kind="slack.reminder", key="escalate:x:1", status="failed", failed_at=T0,
               incident_id=incident_id)
    add_outbox(engine, kind="slack.room", key="room:y", status="pending", failed_at=T0)

    assert reminders.retry_setup(engine, settings, T0 + minutes(4)) == 0
    assert reminders.retry_setup(engine, settings, T0 + reminders.RETRY_SETUP_AFTER) == 1
    assert reminders.retry_setup(engine, settings, T0 + minutes(6)) == 0

    room = outbox_row(engine, "room:x")
    assert (room.status, room.attempts) == ("pending", 0)
    assert outbox_row(engine, "escalate:x:1").status == "failed"
    assert outbox_row(engine, "room:y").attempts == 8


# --- trace pruning --------------------------------------------------------------------------

def add_trace(engine: Engine, request_id: str, at: datetime, incident_id: int | None = None) -> None:
    with transaction(engine) as session:
        session.add(Trace(request_id=request_id, service="llm-gateway", timestamp=at, received_at=at,
                          incident_id=incident_id, data={"request_id": request_id, "hallucination_score": 0.1}))


def test_prune_deletes_old_unlinked_traces_only(engine: Engine, settings: Settings) -> None:
    incident_id = add_incident(engine)
    old = T0 - timedelta(days=settings.trace_retention_days, minutes=1)
    add_trace(engine, "old-unlinked", old)
    add_trace(engine, "old-evidence", old, incident_id=incident_id)
    add_trace(engine, "recent", T0 - timedelta(days=1))

    assert reminders.prune_traces(engine, settings, T0) == 1
    assert reminders.prune_traces(engine, settings, T0) == 0
    with transaction(engine) as session:
        left = set(session.execute(select(Trace.request_id)).scalars())
        assert left == {"old-evidence", "recent"}
        assert session.execute(select(func.count()).select_from(OutboxItem)
                               .where(OutboxItem.kind == "slack.reminder")).scalar_one() == 0
