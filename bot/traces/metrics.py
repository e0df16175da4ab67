"""Counters of ingested LLM traces for Prometheus: per service, bundle, model and outcome.

A team without metrics of its own can point `warroom slo rules` at these series (see README,
"Metrics from traces"): ``warroom_llm_traces_total`` counts every stored trace (``outcome`` is
``ok`` or ``failed``), ``warroom_llm_trace_failures_total`` counts each failure type once per
trace. Label values come from senders, so the number of series is capped: past the cap, new
label sets are counted under ``bundle="other", model="other"``.
"""

from __future__ import annotations

import threading
from collections import Counter as Counter_
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter


class Labelled(Protocol):
    """A stored trace as the counters see it (a `TraceEvent`, or `bot.traces.ingest.TraceLabels`)."""

    @property
    def service(self) -> str: ...
    @property
    def bundle_version(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...


MAX_SERIES = 2000
MAX_LABEL_LENGTH = 100
OTHER = "other"


class TraceMetrics:
    def __init__(self, registry: CollectorRegistry, *, max_series: int = MAX_SERIES) -> None:
        labels = ["service", "bundle", "model"]
        self.traces = Counter("warroom_llm_traces", "LLM traces stored, by service, bundle, model and outcome",
                              [*labels, "outcome"], registry=registry)
        self.failures = Counter("warroom_llm_trace_failures", "Failing LLM traces, by failure type",
                                [*labels, "failure_type"], registry=registry)
        self._seen: set[tuple[str, str, str]] = set()
        self._max_series = max_series
        self._lock = threading.Lock()

    def record(self, stored: Iterable[tuple[Labelled, list[str]]]) -> None:
        # Counted per label set first: a batch of 1,000 traces is a handful of increments, not 1,000.
        traces: Counter_[tuple[str, ...]] = Counter_()
        failures: Counter_[tuple[str, ...]] = Counter_()
        for event, kinds in stored:
            key = self._labels(event)
            traces[(*key, "failed" if kinds else "ok")] += 1
            for kind in kinds:
                failures[(*key, kind)] += 1
        for labels, count in traces.items():
            self.traces.labels(*labels).inc(count)
        for labels, count in failures.items():
            self.failures.labels(*labels).inc(count)

    def _labels(self, event: Labelled) -> tuple[str, str, str]:
        key = (_bounded(event.service), _bounded(event.bundle_version or ""), _bounded(event.model or ""))
        with self._lock:
            if key in self._seen:
                return key
            if len(self._seen) >= self._max_series:
                return key[0], OTHER, OTHER
            self._seen.add(key)
            return key


def _bounded(value: str) -> str:
    return value[:MAX_LABEL_LENGTH]
