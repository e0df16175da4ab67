"""Periodic jobs (reminders, set-up retries, trace pruning, the SLO watcher) on APScheduler 3.

Jobs live in warroom's own database (table ``apscheduler_jobs``) under fixed ids, registered with
``replace_existing`` at every start, so restarts and replicas never pile up copies. Every replica
runs its own scheduler against that one table, and APScheduler 3 does not coordinate schedulers
sharing a store: a tick may run in several processes. That is by design here: every job body
takes its lease inside its own transaction (``bot.incidents.reminders.leased``) and its effects carry
outbox dedupe keys, so the second run of a tick changes nothing.

A stored job is pickled as a reference to ``tick`` plus its id (a database cannot hold an engine);
each scheduler runs its jobs through its own executor, which calls ``run_job`` with the warroom
that started it. Two warrooms in one process each run their own jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot.alerts.reconcile import reconcile_truncated
from bot.clock import utcnow
from bot.incidents import reminders
from bot.sensors.burn_rate import evaluate_slos

if TYPE_CHECKING:
    from bot.compose import Warroom

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

JobBody = Callable[["Warroom", datetime], int]


@dataclass(frozen=True)
class ScheduledJob:
    id: str
    body: JobBody
    every: timedelta


def _reminder(job: Callable[..., int]) -> JobBody:
    return lambda warroom, now: job(warroom.engine, warroom.settings, now)


def _escalate(warroom: Warroom, now: datetime) -> int:
    # The runbooks say who would be paged, so incidents with the same owners share one digest.
    return reminders.escalate_unacknowledged(warroom.engine, warroom.settings, now, runbooks=warroom.runbooks)


def _watch_slos(warroom: Warroom, now: datetime) -> int:
    runtime, slos, sensors = warroom.runtime, warroom.watch.slos, warroom.watch.sensors
    if not slos and not sensors:
        return 0  # no SLO file configured in this process
    results = evaluate_slos(runtime.engine, runtime.settings, slos, now,
                            windows=warroom.watch.windows, rules=runtime.intake_rules)
    if sensors:
        from bot.sensors.watch import evaluate_sensors
        results += evaluate_sensors(runtime.engine, runtime.settings, sensors, now, rules=runtime.intake_rules)
    return sum(1 for r in results if r.outcome in ("opened", "joined", "updated"))


def _end_stale_actions(warroom: Warroom, now: datetime) -> int:
    """Expire runs left waiting past WARROOM_APPROVAL_TIMEOUT_MINUTES, cancel those of ended
    incidents (their cards say so); a late click is refused the same way (`Actions.decide`)."""
    with reminders.leased(warroom.engine, "end-stale-actions") as session:
        return warroom.actions.end_stale(session, now) if session is not None else 0


def _reconcile_truncated(warroom: Warroom, now: datetime) -> int:
    url = warroom.settings.alertmanager_url
    if not url:
        return 0  # such incidents say on their card that they cannot resolve by themselves
    with httpx.Client(timeout=ALERTMANAGER_TIMEOUT) as client:
        return reconcile_truncated(warroom.engine, client, url, now)


JOBS: tuple[ScheduledJob, ...] = (
    ScheduledJob("escalate-unacknowledged", _escalate, ESCALATE_EVERY),
    ScheduledJob("nudge-status-updates", _reminder(reminders.nudge_status_updates), NUDGE_EVERY),
    ScheduledJob("postmortem-due", _reminder(reminders.postmortem_due), POSTMORTEM_DUE_EVERY),
    ScheduledJob("retry-setup", _reminder(reminders.retry_setup), RETRY_SETUP_EVERY),
    ScheduledJob("prune-traces", _reminder(reminders.prune_traces), PRUNE_TRACES_EVERY),
    ScheduledJob("close-resolved", _reminder(reminders.close_resolved), CLOSE_RESOLVED_EVERY),
    ScheduledJob("watch-slos", _watch_slos, WATCH_SLOS_EVERY),
    ScheduledJob("end-stale-actions", _end_stale_actions, END_STALE_ACTIONS_EVERY),
    ScheduledJob("reconcile-truncated", _reconcile_truncated, RECONCILE_TRUNCATED_EVERY),
)
JOBS_BY_ID: Mapping[str, ScheduledJob] = MappingProxyType({job.id: job for job in JOBS})


def tick(job_id: str) -> int:
    """What a stored job names. A warroom scheduler's executor calls ``run_job`` in its place, with
    its warroom; called any other way there is no warroom to run against, so nothing runs."""
    log.warning("scheduler job %r ran outside a warroom scheduler; skipped", job_id)
    return 0


def run_job(warroom: Warroom, job_id: str, now: datetime | None = None) -> int:
    """Run one job body for ``warroom``; wake its worker if it queued anything. Errors are logged
    and the next tick tries again."""
    job = JOBS_BY_ID.get(job_id)
    if job is None:
        log.warning("scheduler job %r is unknown here; skipped", job_id)
        return 0
    try:
        done = job.body(warroom, now or utcnow())
    except Exception:
        log.exception("scheduler job %s failed; it runs again at its next tick", job_id)
        return 0
    if done:
        warroom.runtime.wake.set()
    return done


class _Bound:
    """A stored job as the executor runs it: ``run_job`` for one warroom in place of ``tick``."""

    def __init__(self, job: Any, warroom: Warroom) -> None:
        self._job = job
        self.func = partial(run_job, warroom)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)


class _WarroomExecutor(ThreadPoolExecutor):
    """The scheduler's threads, running every job against the warroom that started the scheduler."""

    def __init__(self, warroom: Warroom, threads: int) -> None:
        super().__init__(threads)
        self._warroom = warroom

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        super()._do_submit_job(_Bound(job, self._warroom), run_times)


class _SharedEngineJobStore(SQLAlchemyJobStore):
    """The job store on warroom's engine; its shutdown must not dispose an engine it does not own."""

    def shutdown(self) -> None:
        pass


def start_scheduler(warroom: Warroom) -> BackgroundScheduler:
    """Register the jobs (fixed ids, replacing stored ones) and start ticking in background threads.

    The watch job evaluates ``warroom.watch`` (the SLO file's SLOs and sensors; none: it no-ops).
    """
    store = _SharedEngineJobStore(engine=warroom.engine, tablename=JOB_TABLE)
    # The job table comes from the Alembic migrations (0002), not from the store.
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": _WarroomExecutor(warroom, EXECUTOR_THREADS)},
        # A process that was down runs a missed tick once, not once per missed interval.
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=timezone.utc,
    )
    for job in JOBS:
        seconds = job.every.total_seconds()
        scheduler.add_job(tick, "interval", seconds=seconds, args=[job.id], id=job.id, name=job.id,
                          replace_existing=True, misfire_grace_time=int(seconds))
    scheduler.start()
    log.info("scheduler started: %s", ", ".join(f"{j.id} every {j.every}" for j in JOBS))
    return scheduler


def stop(scheduler: BackgroundScheduler, *, wait: bool = True) -> None:
    """Stop ticking; with ``wait`` a job that is running finishes first."""
    if scheduler.running:
        scheduler.shutdown(wait=wait)

