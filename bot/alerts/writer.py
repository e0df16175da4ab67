"""Writing notifications to the database from the event loop: group commit, by a few writers.

One transaction per notification spends most of its time on things that do not depend on the
notification: a thread hand-off, BEGIN, COMMIT with its fsync, a pool checkout and ping, and a
dozen threads taking turns on the GIL and (SQLite) on the one database lock. So notifications
queue here, in arrival order, and a free writer takes whatever queued, up to `MAX_BATCH`, as one
transaction. A lone notification is written at once: no added delay. Every caller is answered
only after the commit that holds its alerts (or with the error that kept them out). A batch
costs about the same statements as one notification (`bot.alerts.intake.ingest_many`): its
groups are locked and read together, and its alert, incident, timeline and outbox rows go in at
its end, one statement for each kind.

SQLite has one writer, since it takes one at a time anyway. PostgreSQL has `POSTGRES_WRITERS`,
writing concurrently; a group being written by one writer stays out of the others' batches until
that one commits, so one group's notifications are written in the order they arrived, and each
batch takes its group locks in ``group_key_hash`` order, so two batches (of one process or two)
cannot deadlock on them.

Processes (``uvicorn --workers``): the intake is safe across processes (group row locks, unique
constraints), but on SQLite run one: writers of different processes meet in SQLite's busy
handler, which sleeps and polls (2 workers halved the throughput on 2 cores). On PostgreSQL a
process per core or two scales the Python side; each holds up to `POSTGRES_WRITERS` intake
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
# Concurrent intake transactions per process on PostgreSQL. More writers split the same load into
# smaller batches, and a batch's fixed costs (thread hand-off, about ten round trips, the commit)
# add up: with 4 the bench's notifications took ~40 % more server CPU each than with 2, on 2
# cores; with 1 the writer waits on the database and throughput fell by a third.
POSTGRES_WRITERS = 2

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


def _settle(answer: asyncio.Future[IngestResult], outcome: IngestResult | BaseException) -> None:
    if answer.done():
        return  # its request was cancelled meanwhile
    if isinstance(outcome, Exception):
        answer.set_exception(outcome)
    elif isinstance(outcome, BaseException):
        answer.cancel()
    else:
        answer.set_result(outcome)


Waiting = tuple[Notification, "asyncio.Future[IngestResult]"]


class IntakeWriter:
    """Notifications waiting to be written, and the writers (threads) writing them.

    A notification goes to the first free writer: whatever waits when a writer is free is that
    writer's batch, in arrival order, except that a group another writer is writing stays behind
    (with every later notification of its group) until that batch is committed, so one group's
    notifications are written in the order they arrived. Make it inside the app's event loop: its
    futures belong to that loop.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._writers = POSTGRES_WRITERS if is_postgres(runtime.engine) else 1
        self._busy = 0
        self._waiting: list[Waiting] = []
        self._groups_being_written: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def ingest(self, note: Notification) -> IngestResult:
        answer: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((note, answer))
        self._start_writers()
        return await answer

    def _start_writers(self) -> None:
        while self._busy < self._writers:
            batch = self._take_batch()
            if not batch:
                return
            self._busy += 1
            task = asyncio.create_task(self._write(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_batch(self) -> list[Waiting]:
        batch: list[Waiting] = []
        staying: list[Waiting] = []
        held = set(self._groups_being_written)
        for item in self._waiting:
            group = item[0].group_key_hash
            if group in held or len(batch) >= MAX_BATCH:
                held.add(group)  # its later notifications stay behind it
                staying.append(item)
            else:
                batch.append(item)
        self._waiting = staying
        self._groups_being_written.update(note.group_key_hash for note, _ in batch)
        return batch

    async def _write(self, batch: list[Waiting]) -> None:
        try:
            outcomes = await run_in_threadpool(ingest_batch, self._runtime, [note for note, _ in batch])
        except BaseException as exc:
            # Cancelled as the app stops, or a bug here: no 2xx for anything not known to be written
            # (the sender retries; a copy that was committed after all is then a duplicate).
            for _, answer in batch + self._waiting:
                _settle(answer, exc)
            self._waiting = []
            raise
        finally:
            self._busy -= 1
            self._groups_being_written.difference_update(note.group_key_hash for note, _ in batch)
        for (_, answer), outcome in zip(batch, outcomes, strict=True):
            _settle(answer, outcome)
        self._start_writers()
