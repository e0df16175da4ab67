"""The scheduler: jobs stored under fixed ids, job leases, and exactly-once effects across processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from bot import scheduler
from bot.clock import utcnow
from bot.compose import Warroom, Watch, compose
from bot.config import Settings
from bot.incidents import reminders
from bot.store.db import is_postgres, make_engine, transaction
from bot.store.models import Alert, Incident, OutboxItem, TimelineEvent, Trace
from tests.conftest import ROOT
from tests.support import wait_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
PROCESSES = ("a", "b")
SLO_FILE = """\
slos:
  - service: llm-gateway
    name: hallucination-rate
    sli: hallucination_rate
    objective: 99.5
    runbook: hallucination-spike
    trace: {field: hallucination_score, op: ">", value: 0.5}
"""


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def warroom(settings: Settings) -> Iterator[Warroom]:
    warroom = compose(settings)
    yield warroom
    warroom.engine.dispose()


def add_incident(engine: Engine, **fields: Any) -> int:
    values: dict[str, Any] = {"title": "Tool calls failing", "status": "triggered", "severity": 2,
                              "service": "llm-gateway", "opened_at": T0, **fields}
    with transaction(engine) as session:
        incident = Incident(**values)
        session.add(incident)
        session.flush()
        assert incident.id is not None
        return incident.id


def stored_job_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(text(f"SELECT id FROM {scheduler.JOB_TABLE}")).scalars())


# --- the APScheduler side -------------------------------------------------------------------

def test_jobs_are_stored_once_under_fixed_ids_across_restarts(warroom: Warroom) -> None:
    runtime = warroom.runtime
    first = warroom.start_scheduler()
    scheduler.stop(first)
    second = warroom.start_scheduler()
    try:
        assert stored_job_ids(runtime.engine) == sorted(job.id for job in scheduler.JOBS)
        job = second.get_job("escalate-unacknowledged")
        assert job is not None and job.func is scheduler.tick and job.args == ("escalate-unacknowledged",)
        assert job.trigger.interval == scheduler.ESCALATE_EVERY
    finally:
        scheduler.stop(second)
    assert not second.running


def test_a_due_job_runs_in_the_background_and_wakes_the_worker(warroom: Warroom) -> None:
    runtime = warroom.runtime
    period = timedelta(minutes=runtime.settings.ack_escalation_minutes)
    incident_id = add_incident(runtime.engine, opened_at=utcnow() - period - timedelta(minutes=1))
    running = warroom.start_scheduler()
    try:
        running.modify_job("escalate-unacknowledged", next_run_time=utcnow())

        def queued() -> bool:
            with transaction(runtime.engine) as session:
                return session.execute(select(OutboxItem).where(
                    OutboxItem.dedupe_key == f"escalate:{incident_id}:1")).scalar_one_or_none() is not None

        wait_for(queued, timeout=15, what="the escalation reminder")
        wait_for(runtime.wake.is_set, timeout=5, what="the worker to be woken")
    finally:
        scheduler.stop(running)


def test_two_warrooms_in_one_process_each_run_their_jobs_against_their_own_database(
        warroom: Warroom, tmp_path: Path) -> None:
    """Each scheduler runs the stored jobs with the warroom that started it, never another's."""
    from apscheduler.events import EVENT_JOB_EXECUTED

    from bot.store.db import upgrade

    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = compose(warroom.settings.model_copy(update={"database_url": other_url}))
    upgrade(other.engine)
    period = timedelta(minutes=warroom.settings.ack_escalation_minutes)
    incident_id = add_incident(other.engine, opened_at=utcnow() - period - timedelta(minutes=1))  # due in other only
    mine, theirs = warroom.start_scheduler(), other.start_scheduler()
    try:
        ran = threading.Event()
        mine.add_listener(lambda event: ran.set() if event.job_id == "escalate-unacknowledged" else None,
                          EVENT_JOB_EXECUTED)
        mine.modify_job("escalate-unacknowledged", next_run_time=utcnow())
        wait_for(ran.is_set, timeout=15, what="this warroom's escalation job to run")
        assert not warroom.runtime.wake.is_set() and escalations(other.engine, incident_id) == 0

        theirs.modify_job("escalate-unacknowledged", next_run_time=utcnow())
        wait_for(lambda: escalations(other.engine, incident_id), timeout=15, what="the other warroom's reminder")
        wait_for(other.runtime.wake.is_set, timeout=5, what="the other warroom's worker to be woken")
        assert not warroom.runtime.wake.is_set()
    finally:
        scheduler.stop(mine)
        scheduler.stop(theirs)
        other.engine.dispose()


def escalations(engine: Engine, incident_id: int) -> int:
    with transaction(engine) as session:
        return session.execute(select(func.count()).select_from(OutboxItem).where(
            OutboxItem.dedupe_key == f"escalate:{incident_id}:1")).scalar_one()


def test_the_watch_job_evaluates_the_slos_it_was_given(settings: Settings, tmp_path: Path) -> None:
    from bot.slo.spec import load_slos

    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(SLO_FILE, encoding="utf-8")
    warroom = compose(settings, watch=Watch(slos=tuple(load_slos(slo_file))))
    runtime = warroom.runtime
    now = utcnow()
    add_traces(runtime.engine, now - timedelta(minutes=3), now, 30, hallucination_score=0.9)
    assert scheduler.tick("watch-slos") == 0  # a stored job run outside a warroom's scheduler: nothing to run against
    running = warroom.start_scheduler()
    try:
        running.modify_job("watch-slos", next_run_time=utcnow())

        def opened() -> int:
            with transaction(runtime.engine) as session:
                return session.execute(select(func.count()).select_from(Incident)
                                       .where(Incident.source == "watcher")).scalar_one()

        assert wait_for(opened, timeout=15, what="the watcher to open incidents") == 2
    finally:
        scheduler.stop(running)
        warroom.engine.dispose()


# --- leases ---------------------------------------------------------------------------------

def test_a_job_lease_excludes_other_holders_until_its_transaction_ends(engine: Engine, database_url: str) -> None:
    with transaction(engine) as holder:
        assert reminders.take_lease(holder, "escalate-unacknowledged")
        if is_postgres(engine):
            with transaction(engine) as other:
                assert not reminders.take_lease(other, "escalate-unacknowledged")
                assert reminders.take_lease(other, "nudge-status-updates")  # leases are per job
        else:
            # SQLite: the lease is the database's single writer lock; a writer that will not wait fails.
            path = database_url.removeprefix("sqlite:///")
            other_conn = sqlite3.connect(path, timeout=0, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other_conn.execute("BEGIN IMMEDIATE")
            other_conn.close()
    with transaction(engine) as later:
        assert reminders.take_lease(later, "escalate-unacknowledged")


# --- exactly once across processes ----------------------------------------------------------

def add_traces(engine: Engine, start: datetime, end: datetime, count: int, **fields: Any) -> None:
    step = (end - start) / count
    with transaction(engine) as session:
        base = session.execute(select(func.count()).select_from(Trace)).scalar_one()
        for i in range(count):
            at = start + step * i
            request_id = f"req-{base + i:05d}"
            session.add(Trace(request_id=request_id, service="llm-gateway", timestamp=at, received_at=at,
                              data={"request_id": request_id, "model": "gpt-x", **fields}))


def seed(engine: Engine) -> dict[str, int]:
    """Incidents in every state a job cares about, a failed room set-up, old traces, a burst."""
    ids = {
        "late-ack": add_incident(engine, severity=3, opened_at=T0 - timedelta(minutes=25)),
        "silent-sev1": add_incident(engine, status="acknowledged", severity=1, opened_at=T0 - timedelta(minutes=40),
                                    acknowledged_at=T0 - timedelta(minutes=38)),
        "new-sev1": add_incident(engine, severity=1, opened_at=T0 - timedelta(minutes=5)),
        "no-postmortem": add_incident(engine, status="resolved", resolved_at=T0 - timedelta(hours=50)),
    }
    with transaction(engine) as session:
        session.add(OutboxItem(kind="slack.room", dedupe_key=f"room:{ids['late-ack']}", incident_id=ids["late-ack"],
                               status="failed", attempts=8, next_attempt_at=T0 - timedelta(minutes=10),
                               created_at=T0 - timedelta(minutes=25), last_error="ratelimited"))
    add_traces(engine, T0 - timedelta(days=31), T0 - timedelta(days=30, hours=1), 5, hallucination_score=0.1)
    add_traces(engine, T0 - timedelta(hours=1), T0 - timedelta(minutes=5), 100, hallucination_score=0.05)
    add_traces(engine, T0 - timedelta(minutes=4), T0, 40, hallucination_score=0.95)
    return ids


def run_processes(database_url: str, slo_file: Path, signals: Path, nows: list[datetime]) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "tests.scheduler_proc", database_url, str(slo_file), str(signals)]
    procs = {name: subprocess.Popen([*command, name, *(n.isoformat() for n in nows)], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in PROCESSES}
    try:
        for phase in range(len(nows)):
            def ready(phase: int = phase) -> bool:
                crashed = [n for n, p in procs.items() if p.poll() is not None]
                assert not crashed, f"process {crashed} exited early: {procs[crashed[0]].communicate()}"
                return all((signals / f"ready-{name}-{phase}").exists() for name in PROCESSES)

            wait_for(ready, timeout=90, what=f"both processes to reach phase {phase}")
            (signals / f"go-{phase}").touch()  # both start the phase together
        outputs = {name: proc.communicate(timeout=180) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    reports = []
    for name, (stdout, stderr) in outputs.items():
        assert procs[name].returncode == 0, f"process {name} failed:\n{stdout}\n{stderr}"
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    return reports


def test_two_processes_running_every_job_at_once_queue_each_effect_exactly_once(
        engine: Engine, settings: Settings, database_url: str, tmp_path: Path) -> None:
    ids = seed(engine)
    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(SLO_FILE, encoding="utf-8")
    signals = tmp_path / "signals"
    signals.mkdir()
    nows = [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)]

    reports = run_processes(database_url, slo_file, signals, nows)

    def total(key: str) -> int:
        return sum(r["totals"].get(key, 0) for r in reports)

    from tests.scheduler_proc import ROUNDS, THREADS
    print("ticks skipped on a lease held by another thread or process:", [r["lease_skips"] for r in reports])
    for report in reports:
        assert report["errors"] == []
        assert set(report["calls"].values()) == {THREADS * ROUNDS * len(nows)}  # every job, every round

    with transaction(engine) as session:
        watcher = {i.labels["sloth_severity"]: i.id for i in session.execute(
            select(Incident).where(Incident.source == "watcher")).scalars()}
        reminder_keys = list(session.execute(select(OutboxItem.dedupe_key)
                                             .where(OutboxItem.kind == "slack.reminder")).scalars())
        digests = list(session.execute(select(OutboxItem.payload)
                                       .where(OutboxItem.kind == "slack.reminder_digest")).scalars())
        event_keys = list(session.execute(select(TimelineEvent.dedupe_key)
                                          .where(TimelineEvent.kind == "reminder")).scalars())
        alerts = session.execute(select(func.count()).select_from(Alert)).scalar_one()
        rooms = list(session.execute(select(OutboxItem.dedupe_key).where(OutboxItem.kind == "slack.room")).scalars())
        room_retry = session.execute(select(OutboxItem).where(
            OutboxItem.dedupe_key == f"room:{ids['late-ack']}")).scalar_one()
        traces_left = session.execute(select(func.count()).select_from(Trace)).scalar_one()

    late, silent, new, done = ids["late-ack"], ids["silent-sev1"], ids["new-sev1"], ids["no-postmortem"]
    page, ticket = watcher["page"], watcher["ticket"]
    expected = {
        f"escalate:{late}:2", f"escalate:{late}:3",  # 25 min unacked at T0: level 2, then the last level
        f"nudge:{silent}:2", f"nudge:{silent}:3", f"nudge:{silent}:4",  # 40, 45/50, 60 min without an update
        f"escalate:{new}:1", f"escalate:{new}:2", f"nudge:{new}:1",
        f"pm-reminder:{done}",
        f"escalate:{page}:1", f"escalate:{page}:2", f"escalate:{ticket}:1", f"escalate:{ticket}:2",
    }
    # Due in the same run for the same people (no runbook; the watcher's runbook): one digest each.
    together = [{late, new}, {page, ticket}, {page, ticket}]
    digested = {f"escalate:{late}:3", f"escalate:{new}:1", f"escalate:{page}:1", f"escalate:{ticket}:1",
                f"escalate:{page}:2", f"escalate:{ticket}:2"}
    assert sorted(reminder_keys) == sorted(expected - digested)
    assert sorted(({i["incident_id"] for i in d["incidents"]} for d in digests), key=sorted) == together
    assert sorted(event_keys) == sorted(expected)  # one timeline line per incident and period, none twice
    # each queued by one call
    assert total("escalate") + total("nudge") + total("postmortem") == len(expected - digested) + len(together)
    assert total("retry") == 1 and room_retry.status == "pending"
    assert total("prune") == 5 and traces_left == 140
    assert total("watch.opened") == 2 and len(watcher) == 2 and alerts == 2
    assert sorted(rooms) == sorted([f"room:{late}", f"room:{page}", f"room:{ticket}"])
