"""Writing notifications to the database from the event loop: group commit, by one writer.

One transaction per notification spends most of its time on things that do not depend on the
notification: a thread hand-off, BEGIN, COMMIT with its fsync, a pool checkout and ping, and a
dozen threads taking turns on the GIL and (SQLite) on the one database lock. So notifications
queue here, in arrival order, and while the writer writes one batch, whatever arrives waits to be
its next, up to `MAX_BATCH`, as one transaction. A lone notification is written at once: no added
delay. Every caller is answered only after the commit that holds its alerts (or with the error
that kept them out). A batch costs about the same statements as one notification
(`bot.alerts.intake.ingest_many`): its groups are locked and read together, and its alert,
incident, timeline and outbox rows go in at its end, one statement for each kind, and on
PostgreSQL in two round trips (`bot.store.statements`).

One writer, on both databases, so one group's notifications are written in the order they
arrived. SQLite takes one writer at a time anyway. On PostgreSQL two writers split the same load
into batches half the size, and a batch's fixed costs (the thread hand-off, its round trips, the
commit) add up: in the intake benchmark two writers reached less of the bare baseline's
closed-loop throughput than one, with a higher p99 at a fixed rate (figures in bench/README.md).
A database further away makes each batch take longer, and so bigger, not more numerous. Each batch
takes its group locks in ``group_key_hash`` order, so batches of two processes cannot deadlock.

Processes (``uvicorn --workers``): the intake is safe across processes (group row locks, unique
constraints), but on SQLite run one: writers of different processes meet in SQLite's busy
handler, which sleeps and polls (2 workers halved the throughput on 2 cores). On PostgreSQL a
process per core or two scales the Python side, each with its own writer. On a 2-core machine
shared with the database the cores are already busy: 2 workers gave no gain.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from bot.alerts.intake import IngestResult, ingest_many
from bot.alerts.normalize import Notification
from bot.runtime import Runtime
from bot.store.db import is_database_unavailable, transaction

log = logging.getLogger(__name__)

MAX_BATCH = 32  # notifications in one transaction at most: bounds how long a batch holds its locks

Answer = IngestResult | Exception  # what a notification's caller gets: its result or its error


def write(runtime: Runtime, notes: list[Notification]) -> list[IngestResult]:
    """The notifications in one transaction, committed with its last writes (on PostgreSQL in
    their round trip); each one's result."""
    with transaction(runtime.engine) as session:
        results = ingest_many(session, notes, runtime.intake_rules, commit=True)
    runtime.wake.set()  # the worker performs what the commit queued
    return results


def ingest_batch(runtime: Runtime, notes: list[Notification]) -> list[Answer]:
    """Each notification's result, or the exception that fails it; all written in one transaction.

    Nothing of a failed batch is committed. A database that is unavailable (or locked) fails the
    whole batch, which the senders retry after a 503; any other error is retried one notification
    per transaction, so one notification that breaks the intake cannot fail its batch-mates.
    """
    try:
        return list(write(runtime, notes))
    except Exception as exc:  # it becomes the notifications' answer (see error_response)
        if len(notes) == 1 or is_database_unavailable(exc):
            return [exc] * len(notes)
        log.warning("a batch of %d notifications failed; writing them one by one", len(notes), exc_info=True)
    outcomes: list[Answer] = []
    for note in notes:
        try:
            outcomes.append(write(runtime, [note])[0])
        except Exception as exc:
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
    """Notifications waiting to be written, and the writer (a thread of the pool) writing them.

    Whatever waits when the writer is free is its next batch, in arrival order. Make it inside
    the app's event loop: its futures belong to that loop.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._waiting: list[Waiting] = []
        self._writing = False
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def ingest(self, note: Notification) -> IngestResult:
        answer: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((note, answer))
        self._start_writing()
        return await answer

    def _start_writing(self) -> None:
        if self._writing or not self._waiting:
            return
        batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        self._writing = True
        task = asyncio.create_task(self._write(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            self._writing = False
        for (_, answer), outcome in zip(batch, outcomes, strict=True):
            _settle(answer, outcome)
        self._start_writing()
