"""Periodic jobs (reminders, set-up retries, trace pruning, the SLO watcher) on APScheduler 3.

Jobs live in warroom's own database (table ``apscheduler_jobs``) under fixed ids, registered with
``replace_existing`` at every start, so restarts and replicas never pile up copies. Every replica
runs its own scheduler against that one table, and APScheduler 3 does not coordinate schedulers
sharing a store: a tick may run in several processes. That is by design here: every job body
takes its lease inside its own transaction (``bot.reminders.leased``) and its effects carry
outbox dedupe keys, so the second run of a tick changes nothing.

A stored job is pickled as a reference to ``run_job`` plus its id; the runtime it works with is
this process's, registered by ``start_scheduler`` (a database cannot hold an engine).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot import reminders
from bot.alerts.reconcile import reconcile_truncated
from bot.clock import utcnow
from bot.runtime import Runtime
from bot.slo.spec import SLO
from bot.slo.windows import WindowSet
from bot.watcher import evaluate_slos

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"
EXECUTOR_THREADS = 2
# How often each job ticks. Each job decides from the database what is due, so a longer interval
# only makes a reminder later, never lost or doubled.
ESCALATE_EVERY = timedelta(minutes=1)
NUDGE_EVERY = timedelta(minutes=1)
POSTMORTEM_DUE_EVERY = timedelta(minutes=15)
RETRY_SETUP_EVERY = timedelta(minutes=5)
PRUNE_TRACES_EVERY = timedelta(hours=1)
CLOSE_RESOLVED_EVERY = timedelta(hours=1)
WATCH_SLOS_EVERY = timedelta(seconds=30)
END_STALE_ACTIONS_EVERY = timedelta(minutes=1)
RECONCILE_TRUNCATED_EVERY = timedelta(minutes=1)
ALERTMANAGER_TIMEOUT = 10.0  # seconds, per API call of the reconcile job

SLOS_SERVICE = "slos"  # Runtime.services keys the watcher job reads
SLO_WINDOWS_SERVICE = "slo_windows"
SENSORS_SERVICE = "sensors"  # the SLO file's quality sensors (bot.sensors), run with the SLO watcher

JobBody = Callable[[Runtime, datetime], int]


@dataclass(frozen=True)
class ScheduledJob:
    id: str
    body: JobBody
    every: timedelta


def _reminder(job: Callable[..., int]) -> JobBody:
    return lambda runtime, now: job(runtime.engine, runtime.settings, now)


def _watch_slos(runtime: Runtime, now: datetime) -> int:
    slos: Sequence[SLO] = runtime.services.get(SLOS_SERVICE) or ()
    sensors = runtime.services.get(SENSORS_SERVICE) or ()
    if not slos and not sensors:
        return 0  # no SLO file configured in this process
    results = evaluate_slos(runtime.engine, runtime.settings, slos, now,
                            windows=runtime.services.get(SLO_WINDOWS_SERVICE), rules=runtime.intake_rules)
    if sensors:
        from bot.sensors.watch import evaluate_sensors
        results += evaluate_sensors(runtime.engine, runtime.settings, sensors, now, rules=runtime.intake_rules)
    return sum(1 for r in results if r.outcome in ("opened", "updated"))


def _end_stale_actions(runtime: Runtime, now: datetime) -> int:
    """Expire runs left waiting past WARROOM_APPROVAL_TIMEOUT_MINUTES, cancel those of ended
    incidents (their cards say so); a late click is refused the same way (`Actions.decide`)."""
    actions = runtime.services.get("actions")
    if actions is None:
        return 0
    with reminders.leased(runtime.engine, "end-stale-actions") as session:
        return actions.end_stale(session, now) if session is not None else 0
def _reconcile_truncated(runtime: Runtime, now: datetime) -> int:
    url = runtime.settings.alertmanager_url
    if not url:
        return 0  # such incidents say on their card that they cannot resolve by themselves
    with httpx.Client(timeout=ALERTMANAGER_TIMEOUT) as client:
        return reconcile_truncated(runtime.engine, client, url, now)


JOBS: tuple[ScheduledJob, ...] = (
    ScheduledJob("escalate-unacknowledged", _reminder(reminders.escalate_unacknowledged), ESCALATE_EVERY),
    ScheduledJob("nudge-status-updates", _reminder(reminders.nudge_status_updates), NUDGE_EVERY),
    ScheduledJob("postmortem-due", _reminder(reminders.postmortem_due), POSTMORTEM_DUE_EVERY),
    ScheduledJob("retry-setup", _reminder(reminders.retry_setup), RETRY_SETUP_EVERY),
    ScheduledJob("prune-traces", _reminder(reminders.prune_traces), PRUNE_TRACES_EVERY),
    ScheduledJob("close-resolved", _reminder(reminders.close_resolved), CLOSE_RESOLVED_EVERY),
    ScheduledJob("watch-slos", _watch_slos, WATCH_SLOS_EVERY),
    ScheduledJob("end-stale-actions", _end_stale_actions, END_STALE_ACTIONS_EVERY),
    ScheduledJob("reconcile-truncated", _reconcile_truncated, RECONCILE_TRUNCATED_EVERY),
)
JOBS_BY_ID = {job.id: job for job in JOBS}

_runtime: Runtime | None = None  # this process's, set by start_scheduler (see module docstring)


def run_job(job_id: str, now: datetime | None = None) -> int:
    """What a stored job calls: run one job body for this process's runtime; wake the worker if
    it queued anything. Errors are logged and the next tick tries again."""
    runtime = _runtime
    job = JOBS_BY_ID.get(job_id)
    if runtime is None or job is None:
        log.warning("scheduler job %r has no runtime or is unknown here; skipped", job_id)
        return 0
    try:
        done = job.body(runtime, now or utcnow())
    except Exception:
        log.exception("scheduler job %s failed; it runs again at its next tick", job_id)
        return 0
    if done:
        runtime.wake.set()
    return done


class _SharedEngineJobStore(SQLAlchemyJobStore):
    """The job store on warroom's engine; its shutdown must not dispose an engine it does not own."""

    def shutdown(self) -> None:
        pass


def start_scheduler(runtime: Runtime, *, slos: Sequence[SLO] | None = None,
                    windows: WindowSet | None = None) -> BackgroundScheduler:
    """Register the jobs (fixed ids, replacing stored ones) and start ticking in background threads.

    ``slos``: the SLOs the built-in watcher evaluates from traces (none: the watch job no-ops).
    """
    global _runtime
    if _runtime is not None and _runtime is not runtime:
        raise RuntimeError("a scheduler is already running in this process for another runtime")
    if slos is not None:
        runtime.services[SLOS_SERVICE] = list(slos)
    if windows is not None:
        runtime.services[SLO_WINDOWS_SERVICE] = windows
    store = _SharedEngineJobStore(engine=runtime.engine, tablename=JOB_TABLE)
    # The job table comes from the Alembic migrations (0002), not from the store.
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(EXECUTOR_THREADS)},
        # A process that was down runs a missed tick once, not once per missed interval.
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=timezone.utc,
    )
    for job in JOBS:
        seconds = job.every.total_seconds()
        scheduler.add_job(run_job, "interval", seconds=seconds, args=[job.id], id=job.id, name=job.id,
                          replace_existing=True, misfire_grace_time=int(seconds))
    _runtime = runtime
    scheduler.start()
    log.info("scheduler started: %s", ", ".join(f"{j.id} every {j.every}" for j in JOBS))
    return scheduler


def stop(scheduler: BackgroundScheduler, *, wait: bool = True) -> None:
    """Stop ticking; with ``wait`` a job that is running finishes first."""
    global _runtime
    if scheduler.running:
        scheduler.shutdown(wait=wait)
    _runtime = None

