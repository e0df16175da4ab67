"""Writing notifications to the database from the event loop: group commit, in a few lanes.

One transaction per notification spends most of its time on things that do not depend on the
notification: a thread hand-off, BEGIN, COMMIT with its fsync, a pool checkout and ping, and a
dozen threads taking turns on the GIL and (SQLite) on the one database lock. So notifications
queue here, in arrival order, and whatever queued while a lane was writing goes into that lane's
next transaction, up to `MAX_BATCH`. A lone notification is written at once: no added delay.
Every caller is answered only after the commit that holds its alerts (or with the error that
kept them out). A batch costs about the same statements as one notification
(`bot.alerts.intake.ingest_many`): its groups are locked and read together, and its alert,
incident, timeline and outbox rows go in at its end, one statement for each kind.

SQLite has one lane, since it takes one writer at a time anyway. PostgreSQL has `POSTGRES_LANES`,
writing concurrently; a group always maps to the same lane, so one group's notifications are
written in the order they arrived, and each batch takes its group locks in ``group_key_hash``
order, so two processes' batches cannot deadlock on them.

Processes (``uvicorn --workers``): the intake is safe across processes (group row locks, unique
constraints), but on SQLite run one: writers of different processes meet in SQLite's busy
handler, which sleeps and polls (2 workers halved the throughput on 2 cores). On PostgreSQL a
process per core or two scales the Python side; each holds up to `POSTGRES_LANES` intake
connections. On a 2-core machine shared with the database the cores are already busy: 2 workers
gave no gain.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from bot.alerts.intake import IngestResult, ingest, ingest_many
from bot.alerts.normalize import Notification
from bot.db import is_database_unavailable, is_postgres, transaction
from bot.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BATCH = 32  # notifications in one transaction at most: bounds how long a batch holds its locks
# Concurrent intake transactions per process on PostgreSQL. More lanes split the same load into
# smaller batches, and a batch's fixed costs (thread hand-off, about ten round trips, the commit)
# add up: with 4 lanes the bench's notifications took ~40 % more server CPU each than with 2, on
# 2 cores; with 1 the lane waits on the database and throughput fell by a third.
POSTGRES_LANES = 2

Answer = IngestResult | Exception  # what a notification's caller gets: its result or its error


def ingest_notification(runtime: Runtime, note: Notification) -> IngestResult:
    """One notification in its own transaction."""
    with transaction(runtime.engine) as session:
        result = ingest(session, note, runtime.intake_rules)
    runtime.wake.set()  # the worker performs what the commit queued
    return result


def ingest_batch(runtime: Runtime, notes: list[Notification]) -> list[Answer]:
    """Each notification's result, or the exception that fails it; all written in one transaction.

    Nothing of a failed batch is committed. A database that is unavailable (or locked) fails the
    whole batch, which the senders retry after a 503; any other error is retried one notification
    per transaction, so one notification that breaks the intake cannot fail its batch-mates.
    """
    if len(notes) > 1:
        try:
            with transaction(runtime.engine) as session:
                results: list[Answer] = list(ingest_many(session, notes, runtime.intake_rules))
            runtime.wake.set()
            return results
        except Exception as exc:
            if is_database_unavailable(exc):
                return [exc] * len(notes)
            log.warning("a batch of %d notifications failed; writing them one by one", len(notes), exc_info=True)
    outcomes: list[Answer] = []
    for note in notes:
        try:
            outcomes.append(ingest_notification(runtime, note))
        except Exception as exc:  # it becomes this notification's answer (see error_response)
            outcomes.append(exc)
    return outcomes


class _Lane:
    """Notifications waiting for one writing thread; whatever waits when it is free is one batch."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._waiting: list[tuple[Notification, asyncio.Future[IngestResult]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def ingest(self, note: Notification) -> IngestResult:
        answer: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((note, answer))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_while_waiting())
        return await answer

    async def _write_while_waiting(self) -> None:
        batch: list[tuple[Notification, asyncio.Future[IngestResult]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                batch.sort(key=lambda item: item[0].group_key_hash)  # stable: a group keeps its order
                outcomes = await run_in_threadpool(ingest_batch, self._runtime, [note for note, _ in batch])
                for (_, answer), outcome in zip(batch, outcomes, strict=True):
                    _settle(answer, outcome)
                batch = []
        except BaseException as exc:
            # Cancelled as the app stops, or a bug here: no 2xx for anything not known to be written
            # (the sender retries; a copy that was committed after all is then a duplicate).
            for _, answer in batch + self._waiting:
                _settle(answer, exc)
            self._waiting = []
            raise
        finally:
            self._writing = None


def _settle(answer: asyncio.Future[IngestResult], outcome: IngestResult | BaseException) -> None:
    if answer.done():
        return  # its request was cancelled meanwhile
    if isinstance(outcome, Exception):
        answer.set_exception(outcome)
    elif isinstance(outcome, BaseException):
        answer.cancel()
    else:
        answer.set_result(outcome)


class IntakeWriter:
    """The lanes of one app. Make it inside the app's event loop: its futures belong to that loop."""

    def __init__(self, runtime: Runtime) -> None:
        lanes = POSTGRES_LANES if is_postgres(runtime.engine) else 1
        self._lanes = [_Lane(runtime) for _ in range(lanes)]

    async def ingest(self, note: Notification) -> IngestResult:
        lane = self._lanes[int(note.group_key_hash[:8], 16) % len(self._lanes)]
        return await lane.ingest(note)
