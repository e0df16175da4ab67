"""The in-process worker that performs queued side effects (see `bot.store.outbox`).

It sleeps on an event the request handlers set after a commit, so effects start within
milliseconds, and wakes every second anyway to pick up retries and rows queued by other
processes. `drain()` runs the queue to empty in the caller's thread (tests and the CLI).

Each row is read back as its typed effect (`bot.effects`) and given to the one handler of its
kind; the worker is not built unless every kind has one. A row that cannot be read back (a kind
no type has, a payload that does not fit its type) fails at once, without retries: trying it
again cannot help.

Several threads (``threads``), each claiming one row at a time, most urgent first
(`bot.effects.Priority`); the claim never hands out a row while another row of its incident is
being performed, so one incident's rows run one after another, in order, while a slow Slack call
for one room holds up no other room. Each claim is under the worker's name, a heartbeat renews
the lease while the handler runs, and long handlers (the room's set-up) call `check_lease()`
before each step, so a row whose lease was lost (this process stalled; another took the row)
stops before it does anything twice. A database blip is not the effect's failure: the outcome is
recorded as soon as the database answers again and the row is due again within a second.

Nothing waits in the worker: a handler that may not go on now (Slack's rate limit,
`bot.slack.budgets`) raises `Deferred`, and the row is put back for then, without counting as a
failed attempt. Rows queued to merge (a card refresh after an alert) run at most once per their
effect's ``coalesce_seconds`` per incident: one claimed sooner is put back the same way.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from bot.effects import ALL, Effect, EffectError, Handlers
from bot.errors import ExternalError, UserError, WarroomError, new_error_id
from bot.logs import incident_id as incident_ctx
from bot.store import outbox
from bot.store.db import transaction
from bot.store.models import saved_id

log = logging.getLogger(__name__)

R = TypeVar("R")
GiveUp = Callable[[str, int | None, str], None]  # (kind, the incident it was for, the error)

RECORD_RETRY_SECONDS = 0.5  # how often an outcome is retried while the database is away


class Retry(WarroomError):
    """Not yet: try again later (e.g. the room is not set up yet)."""


class Deferred(WarroomError):
    """Not now, and not a failure (Slack's rate limit): the row is due again in ``delay`` seconds
    and this attempt does not count towards giving up."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = max(0.0, delay)


class LeaseLost(WarroomError):
    """Another worker holds this row now (ours ran out): stop without touching anything."""


@dataclass
class Lease:
    """The row a handler is performing, as the handler sees it (through `current_lease`)."""

    engine: Engine
    item_id: int
    owner: str
    attempts: int
    retried: bool  # an earlier attempt ran (and may have done part of the work)
    lost: threading.Event = field(default_factory=threading.Event)

    def renew(self) -> bool:
        with transaction(self.engine) as session:
            held = outbox.renew(session, self.item_id, self.owner)
        if not held:
            self.lost.set()
        return held

    def check(self) -> None:
        """Renew now; raise `LeaseLost` when the row is no longer ours."""
        if self.lost.is_set() or not self.renew():
            raise LeaseLost(f"outbox #{self.item_id} is no longer held by {self.owner}")


current_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("outbox_lease", default=None)


def check_lease() -> None:
    """Before a step with an effect in Slack: is the row being performed still ours? (No-op
    outside the worker.)"""
    lease = current_lease.get()
    if lease is not None:
        lease.check()


def performing() -> bool:
    """Is this thread performing an outbox row (where nothing may wait: raise `Deferred`)?"""
    return current_lease.get() is not None


def is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError)


class Worker:
    def __init__(self, engine: Engine, handlers: Handlers, *, wake: threading.Event | None = None,
                 on_give_up: GiveUp | None = None, poll_seconds: float = 1.0, threads: int = 1,
                 coalesce_seconds: Mapping[str, float] | None = None) -> None:
        """Refuses (`bot.effects.HandlerSetError`) handlers that leave an effect kind without one.
        ``coalesce_seconds`` replaces an effect kind's own `Effect.coalesce_seconds`."""
        handlers.check()
        if threads < 1:
            raise ValueError("a worker needs at least one thread")
        self.engine = engine
        self.handlers = handlers
        self.wake = wake or threading.Event()
        self.on_give_up = on_give_up
        self.poll_seconds = poll_seconds
        self.threads = threads
        self.coalesce_seconds = {t.kind: t.coalesce_seconds for t in ALL if t.coalesce_seconds is not None}
        self.coalesce_seconds.update(coalesce_seconds or {})
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._loop, name=f"warroom-worker-{n}", daemon=True)
                         for n in range(1, self.threads + 1)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        deadline = time.monotonic() + 15
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker loop failed; retrying")
                worked = 0
            if not worked:
                # Every idle thread wakes on the event; the first to find nothing clears it.
                self.wake.wait(self.poll_seconds)
                self.wake.clear()

    def run_once(self, limit: int = 10) -> int:
        """Claim and perform up to ``limit`` rows, one at a time (a claim never waits behind
        another row's Slack calls)."""
        done = 0
        while done < limit and not self._stop.is_set():
            with transaction(self.engine) as session:
                rows = outbox.claim(session, limit=1, owner=self.owner)
                items = [_Claimed(saved_id(i), i.kind, dict(i.payload), i.incident_id, i.attempts,
                                  i.last_error is not None, i.dedupe_key) for i in rows]
            if not items:
                break
            item = items[0]
            lease = Lease(self.engine, item.id, self.owner, item.attempts,
                          retried=item.attempts > 1 or item.had_error)
            if not self._too_soon(lease, item):
                self._perform(lease, item.kind, item.payload, item.incident_id)
            done += 1
        return done

    def _too_soon(self, lease: Lease, item: _Claimed) -> bool:
        """A merge row claimed before its kind's spacing has passed is put back until it has (and
        keeps gathering copies); otherwise its key is freed, so what changes from now on queues a
        new row. True when it was put back."""
        every = self.coalesce_seconds.get(item.kind)
        if every is None or not outbox.is_merge_key(item.dedupe_key):
            return False
        wait = self._record(lease, lambda s: outbox.release_merged(s, item.id, every, owner=lease.owner))
        if wait:
            log.debug("outbox %s #%s merges copies for %.1f s more", item.kind, item.id, wait)
        return bool(wait)

    def drain(self, *, timeout: float = 30.0) -> None:
        """Perform everything due now, including effects queued by effects."""
        deadline = time.monotonic() + timeout
        while self.run_once():
            if time.monotonic() > deadline:
                raise TimeoutError("outbox did not drain in time")

    def _perform(self, lease: Lease, kind: str, payload: Any, incident: int | None) -> None:
        token = incident_ctx.set(incident)
        lease_token = current_lease.set(lease)
        heartbeat = _Heartbeat(lease)
        heartbeat.start()
        item_id = lease.item_id
        effect: Effect | None = None
        try:
            effect = self.handlers.decode(kind, payload)
            lease.check()
            self.handlers.perform(effect)
        except EffectError as exc:
            failure = f"outbox #{item_id} ({kind}) cannot be performed: {exc}"
            log.error(failure)
            self._record(lease, lambda s: outbox.fail(s, item_id, failure, retry=False, owner=lease.owner))
            self._give_up(kind, _incident_of(None, payload, incident), failure)
        except LeaseLost as exc:
            log.warning("outbox %s #%s: %s; left to its new holder", kind, item_id, exc)
        except Deferred as exc:
            log.info("outbox %s #%s deferred: %s", kind, item_id, exc)
            delay, why = exc.delay, f"deferred: {exc}"
            self._record(lease, lambda s: outbox.defer(s, item_id, delay, why, owner=lease.owner))
        except Retry as exc:
            reason = f"retry: {exc}"
            self._record(lease, lambda s: outbox.fail(s, item_id, reason, owner=lease.owner))
        except Exception as exc:
            error_id = getattr(exc, "error_id", None) or new_error_id()
            database = is_database_error(exc)
            expected = database or isinstance(exc, (ExternalError, UserError))
            log.log(logging.WARNING if expected else logging.ERROR, "outbox %s #%s failed: %s", kind, item_id, exc,
                    exc_info=not expected, extra={"error_id": error_id})
            failure = f"{error_id}: {exc}"
            gave_up = self._record(lease, lambda s: outbox.fail(s, item_id, failure, owner=lease.owner, soon=database))
            if gave_up:
                self._give_up(kind, _incident_of(effect, payload, incident), f"{exc} (error {error_id})")
        else:
            self._record(lease, lambda s: outbox.complete(s, item_id, owner=lease.owner))
        finally:
            heartbeat.stop()
            current_lease.reset(lease_token)
            incident_ctx.reset(token)

    def _give_up(self, kind: str, incident_id: int | None, error: str) -> None:
        if self.on_give_up is None:
            return
        try:
            self.on_give_up(kind, incident_id, error)
        except Exception:
            log.exception("could not report a failed %s", kind)

    def _record(self, lease: Lease, write: Callable[[Any], R]) -> R | bool:
        """Write the row's outcome, waiting out a database blip for as long as the lease could
        still be ours (after that the row is someone else's, or due again anyway)."""
        deadline = time.monotonic() + outbox.CLAIM_SECONDS
        while True:
            try:
                with transaction(self.engine) as session:
                    return write(session)
            except DBAPIError as exc:
                if time.monotonic() > deadline or self._stop.is_set():
                    log.error("could not record the outcome of outbox #%s: %s", lease.item_id, exc)
                    return False
                log.warning("database unavailable while recording outbox #%s; retrying", lease.item_id)
                time.sleep(RECORD_RETRY_SECONDS)


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    incident_id: int | None
    attempts: int
    had_error: bool
    dedupe_key: str


def _incident_of(effect: Effect | None, payload: Any, row_incident: int | None) -> int | None:
    """The incident a failed row was for: its effect's, else its payload's (when it is a number),
    else the row's (rows that wait for no other row of their incident carry it only in the
    payload)."""
    stored = payload.get("incident_id") if isinstance(payload, dict) else None
    found = getattr(effect, "incident_id", None) if effect is not None else stored
    if isinstance(found, int) and not isinstance(found, bool):
        return found
    return row_incident


class _Heartbeat:
    """Renews a lease every third of its length while its row runs."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.item_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._done.wait(outbox.CLAIM_SECONDS / 3):
            try:
                if not self.lease.renew():
                    return
            except Exception:  # the database is away: try again at the next beat
                log.warning("could not renew the lease on outbox #%s", self.lease.item_id)
