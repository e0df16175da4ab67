"""The CPU part of an OTLP export request, in this process or in a pool of worker processes.

Inflating, decoding, mapping the GenAI spans and validating the events into rows is nearly all of
a request's cost, and all of it Python: one process runs it for one request at a time, so two
exporters sending at once wait for each other. With ``WARROOM_OTLP_PROCESSES`` above 0 it runs in
that many worker processes and the serving process only stores the rows, so concurrent requests
use every core, while counters, database connections and everything else stay in the one
serving process (a second `warroom serve` on the same port would split `/metrics`).

A large request is split into shares of its traces (`bot.otlp.decode.Share`), one per idle
worker, prepared at once and merged: a request then waits for the slowest share rather than for
all of its spans in one process, so one exporter's batch uses the cores nobody else is using. Each
share inflates and parses the whole body, which costs little next to making its spans. A request
that finds the workers busy is not split: under load, whole requests keep every worker busy while
the serving process stores the last one, and shares finishing together would leave them idle.

The work is pure (bytes in, rows out), so a worker that dies costs nothing but time: the pool is
replaced, and the requests it held are answered 503 (exporters send them again; a request that
kills workers is never run in the serving process), while later ones are prepared in the serving
process until the new workers are up. Until a pool's processes
have started and imported what they need, requests are prepared in the serving process, as with
no pool: the first exports after a start never wait for it. A pool that cannot start at all is
tried again a while later (`RESTART_FAILED_AFTER_S`), and ``/healthz`` says ``failed`` meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from bot.jsonbody import BadRequest
from bot.otlp.decode import WHOLE, Share, decode_request, decompress
from bot.otlp.genai import MappingOptions, map_spans, orphans_warning
from bot.traces.ingest import PreparedTraces, merge_prepared, prepare_traces
from bot.traces.rules import FailureRules

log = logging.getLogger(__name__)

# A request is split into shares of about this much inflated body or more (a share of a few spans
# would cost more in its own parse than it saves); a compressed body is reckoned ten times its size.
SHARE_BYTES = 128 * 1024
COMPRESSION_GUESS = 10
# A pool whose processes could not start is started again this long after, by the next request: a
# start can fail for a passing reason (memory, a process limit), and meanwhile every request is
# prepared in the serving process, on one core.
RESTART_FAILED_AFTER_S = 60.0


@dataclass(frozen=True)
class ExportJob:
    """One export request's body and what preparing it needs (sent to a worker process)."""

    body: bytes
    content_type: str
    content_encoding: str
    limit: int  # bytes, once inflated
    options: MappingOptions
    rules: FailureRules
    max_string: int | None
    now: datetime  # the traces' received_at
    share: Share = WHOLE  # which of the request's traces to prepare


@dataclass
class PreparedExport:
    """What a request came to before anything is stored (sent back from a worker process)."""

    spans: int = 0  # every span in the request, decoded or not
    rejected: int = 0  # malformed spans, and answer spans that cannot be events
    reasons: list[str] = field(default_factory=list)  # why, for the first of them
    not_genai: int = 0
    orphans: int = 0  # tool or evaluation spans without their answer span
    traces: PreparedTraces = field(default_factory=PreparedTraces)
    # The body is not an export request: (status, message). A `BadRequest` does not survive
    # pickling (its fields are not its ``args``), so it crosses as data and is raised again here.
    refused: tuple[int, str] | None = None

    @property
    def warning(self) -> str:
        return orphans_warning(self.orphans)

    def raise_refusal(self) -> None:
        if self.refused is not None:
            raise BadRequest(*self.refused)


def prepare_export(job: ExportJob) -> PreparedExport:
    try:
        decoded = decode_request(decompress(job.body, job.content_encoding, job.limit), job.content_type, job.share)
    except BadRequest as exc:
        return PreparedExport(refused=(exc.status, exc.message))
    mapped = map_spans(decoded.spans, job.options)
    return PreparedExport(
        spans=len(decoded.spans) + decoded.rejected, rejected=decoded.rejected + len(mapped.rejected),
        reasons=decoded.problems + mapped.rejected, not_genai=mapped.ignored, orphans=mapped.orphans,
        traces=prepare_traces(mapped.events, rules=job.rules, now=job.now, max_string=job.max_string))


def shares(job: ExportJob, most: int) -> list[ExportJob]:
    """``job`` as at most ``most`` jobs, one per share of its traces (`SHARE_BYTES` each or more)."""
    compressed = job.content_encoding.strip().lower() not in ("", "identity")
    inflated = len(job.body) * (COMPRESSION_GUESS if compressed else 1)
    count = max(1, min(most, inflated // SHARE_BYTES))
    return [job] if count == 1 else [replace(job, share=Share(part, count)) for part in range(count)]


def merged(parts: list[PreparedExport]) -> PreparedExport:
    """The shares of one request as if it had been prepared whole."""
    refused = next((part for part in parts if part.refused is not None), None)
    if refused is not None:  # every share reads the whole body, so each refuses it alike
        return refused
    return PreparedExport(
        spans=sum(p.spans for p in parts), rejected=sum(p.rejected for p in parts),
        reasons=[reason for p in parts for reason in p.reasons], not_genai=sum(p.not_genai for p in parts),
        orphans=sum(p.orphans for p in parts), traces=merge_prepared([p.traces for p in parts]))


def _ready() -> bool:
    return True  # a worker that answers has imported everything `prepare_export` needs


def _start_worker() -> None:
    """Run by each worker as it starts, once this module and what it imports are loaded."""
    # What is loaded now lives as long as the process: the collector need not walk it again.
    # A request allocates tens of thousands of objects, so full collections came every few
    # requests, each over every object of the imported libraries.
    gc.freeze()
    _exit_with_parent()


def _exit_with_parent() -> None:
    """A worker whose serving process died (``kill -9``) exits too: it would otherwise wait for
    work for ever, since every worker holds the task queue's write end itself and never sees it
    close."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class ExportPreparer:
    """`prepare_export` for the OTLP route: in a thread of this process (``processes`` 0) or in a
    pool of that many processes, started by `start` and replaced when one of them dies."""

    def __init__(self, processes: int, *, restart_failed_after_s: float = RESTART_FAILED_AFTER_S) -> None:
        self.processes = processes
        self.restart_failed_after_s = restart_failed_after_s
        self._failed_at: float | None = None  # time.monotonic() when the current pool failed to start
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._started: list[Future[bool]] = []
        self._stopped = False
        self._in_flight = 0  # shares in the pool now (read and written on the event loop only)

    def start(self) -> None:
        """Start the workers now, in the background, rather than on the first request."""
        if self.processes:
            self._current()

    @property
    def ready(self) -> bool:
        """Whether requests go to the worker processes (they have started and answered)."""
        return self.state == "ready"

    @property
    def state(self) -> str:
        """For ``/healthz``: ``in-process`` (no pool), ``starting``, ``ready``, or ``failed`` (the
        processes could not start: requests are prepared in the serving process)."""
        with self._lock:
            if not self.processes or self._pool is None:
                return "in-process"
            if any(f.done() and (f.cancelled() or f.exception()) for f in self._started):
                return "failed"
            return "ready" if all(f.done() for f in self._started) else "starting"

    @property
    def in_flight(self) -> int:
        """Shares of requests sent to the worker processes and not answered yet."""
        return self._in_flight

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def prepare(self, job: ExportJob) -> PreparedExport:
        pool = self._current() if self.processes else None
        if pool is not None and self._failed_long_enough():
            log.warning("starting the OTLP worker processes again: the last start failed")
            self._replace(pool)  # this request is prepared here while they start
        elif pool is not None and self.ready:
            jobs = shares(job, max(1, self.processes - self._in_flight))
            try:
                futures = [pool.submit(prepare_export, share) for share in jobs]
            except BrokenProcessPool:  # broken before this request came: it is prepared here
                log.error("an OTLP worker process died: starting new ones, this request is prepared here")
                self._replace(pool)
            except RuntimeError:  # shut down by `stop` meanwhile: the app is stopping
                pass
            else:
                self._in_flight += len(jobs)
                try:
                    return merged(await asyncio.gather(*map(asyncio.wrap_future, futures)))
                except BrokenProcessPool:
                    # A worker died while this request was queued or running. It may be what
                    # killed it, so it is not run in this process: the exporter sends it again.
                    log.error("an OTLP worker process died while a request waited: starting new ones, "
                              "the request is answered 503")
                    self._replace(pool)
                    raise BadRequest(503, "an OTLP worker process died while preparing this request; "
                                          "send it again") from None
                finally:
                    self._in_flight -= len(jobs)
        return await run_in_threadpool(prepare_export, job)

    def _current(self) -> ProcessPoolExecutor | None:
        """The pool, started if it is not (None once stopped)."""
        with self._lock:
            if self._pool is None and not self._stopped:
                # spawn, not fork: the serving process has threads (worker, scheduler, the
                # event loop's pool) whose locks a forked child would inherit held.
                self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_start_worker)
                # One task per process, sent together: each finds no idle process, so all of
                # them start now, and each answers once it has imported the module.
                self._started = [self._pool.submit(_ready) for _ in range(self.processes)]
                self._failed_at = None
                self._started[0].add_done_callback(self._report_failed_start)
            return self._pool

    def _report_failed_start(self, started: Future[bool]) -> None:
        # The pool is never `ready` then: requests are prepared in the serving process until the
        # first one after `restart_failed_after_s` starts a new pool.
        if not started.cancelled() and started.exception() is not None:
            with self._lock:
                if started not in self._started:
                    return  # a pool replaced already
                self._failed_at = time.monotonic()
            log.error("OTLP worker processes did not start (%s): requests are prepared in the serving process, "
                      "and a request %.0f s from now starts them again", started.exception(),
                      self.restart_failed_after_s)

    def _failed_long_enough(self) -> bool:
        with self._lock:
            return self._failed_at is not None and time.monotonic() - self._failed_at >= self.restart_failed_after_s

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)
        self._current()  # the new processes start now, while this request is prepared here
