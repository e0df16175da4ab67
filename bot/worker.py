"""The in-process worker that performs queued side effects (see `bot.outbox`).

It sleeps on an event the request handlers set after a commit, so effects start within
milliseconds, and wakes every second anyway to pick up retries and rows queued by other
processes. `drain()` runs the queue to empty in the caller's thread (tests and the CLI).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from bot import outbox
from bot.db import transaction
from bot.errors import ExternalError, UserError, new_error_id
from bot.logs import incident_id as incident_ctx

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
GiveUp = Callable[[str, dict[str, Any], str], None]


class Retry(Exception):
    """Not yet: try again later (e.g. the room is not set up yet)."""


class Worker:
    def __init__(self, engine: Engine, handlers: dict[str, Handler], *, wake: threading.Event | None = None,
                 on_give_up: GiveUp | None = None, poll_seconds: float = 1.0) -> None:
        self.engine = engine
        self.handlers = handlers
        self.wake = wake or threading.Event()
        self.on_give_up = on_give_up
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="warroom-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread:
            self._thread.join(timeout=15)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker loop failed; retrying")
                worked = 0
            if not worked:
                self.wake.wait(self.poll_seconds)
                self.wake.clear()

    def run_once(self, limit: int = 10) -> int:
        with transaction(self.engine) as session:
            items = [(i.id, i.kind, dict(i.payload), i.incident_id) for i in outbox.claim(session, limit=limit)]
        for item_id, kind, payload, incident in items:
            self._perform(item_id, kind, payload, incident)
        return len(items)

    def drain(self, *, timeout: float = 30.0) -> None:
        """Perform everything due now, including effects queued by effects."""
        deadline = time.monotonic() + timeout
        while self.run_once():
            if time.monotonic() > deadline:
                raise TimeoutError("outbox did not drain in time")

    def _perform(self, item_id: int, kind: str, payload: dict[str, Any], incident: int | None) -> None:
        token = incident_ctx.set(incident)
        try:
            handler = self.handlers.get(kind)
            if handler is None:
                raise LookupError(f"no handler for outbox kind {kind!r}")
            handler(payload)
        except Retry as exc:
            with transaction(self.engine) as session:
                outbox.fail(session, item_id, f"retry: {exc}")
        except Exception as exc:
            error_id = getattr(exc, "error_id", None) or new_error_id()
            expected = isinstance(exc, (ExternalError, UserError))
            log.log(logging.WARNING if expected else logging.ERROR, "outbox %s #%s failed: %s", kind, item_id, exc,
                    exc_info=not expected, extra={"error_id": error_id})
            with transaction(self.engine) as session:
                gave_up = outbox.fail(session, item_id, f"{error_id}: {exc}")
            if gave_up and self.on_give_up is not None:
                try:
                    self.on_give_up(kind, payload, f"{exc} (error {error_id})")
                except Exception:
                    log.exception("could not report a failed %s", kind, extra={"error_id": error_id})
        else:
            with transaction(self.engine) as session:
                outbox.complete(session, item_id)
        finally:
            incident_ctx.reset(token)
