"""An SLO's error ratio over a time window, read from where it is measured.

From stored traces by the SLO's trace rule (the built-in watcher's rule), or from Prometheus by
the SLO file's ``errors / total`` query when ``WARROOM_PROMETHEUS_URL`` is set and the SLO has
one. The guard judges its verdicts by these readings, and the card and the postmortem turn them
into the error budget an incident consumed (`bot.slo.budget`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlmodel import Session, col

from bot.clock import as_utc
from bot.errors import ExternalError
from bot.slo.burn import trace_outcomes
from bot.slo.spec import SLO
from bot.store.models import Trace


@dataclass(frozen=True)
class Reading:
    ratio: float | None  # bad / all; None: no requests to judge by
    requests: int | None  # None: the source does not count them (Prometheus)


class SLISource(Protocol):
    name: str

    def read(self, session: Session, slo: SLO, start: datetime, end: datetime) -> Reading: ...


class TraceSLI:
    """The SLI over stored traces in ``(start, end]``, by the SLO's trace rule."""

    name = "traces"

    def read(self, session: Session, slo: SLO, start: datetime, end: datetime) -> Reading:
        assert slo.trace is not None
        field = slo.trace.field
        rows = session.execute(select(col(Trace.timestamp), col(Trace.data)[field]).where(
            col(Trace.service) == slo.service, col(Trace.timestamp) > start, col(Trace.timestamp) <= end)).all()
        outcomes = trace_outcomes(slo, [(as_utc(ts), {field: value}) for ts, value in rows])
        bad = sum(1 for _, failed in outcomes if failed)
        return Reading(bad / len(outcomes) if outcomes else None, len(outcomes))


class PrometheusSLI:
    """The SLO file's ``errors / total`` query over ``(start, end]``, evaluated at ``end``."""

    name = "prometheus"

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.client = client or httpx.Client(timeout=5)

    def read(self, session: Session | None, slo: SLO, start: datetime, end: datetime) -> Reading:
        """Prometheus answers for itself: ``session`` is not used. Call it outside any transaction:
        on SQLite every transaction holds the write lock, which an HTTP call must not keep."""
        assert slo.prometheus is not None
        seconds = max(1, int((end - start).total_seconds()))
        query = slo.prometheus.ratio(f"{seconds}s")
        try:
            response = self.client.get(f"{self.url}/api/v1/query", params={"query": query, "time": end.timestamp()})
            response.raise_for_status()
            result = response.json()["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise ExternalError(f"Prometheus at {self.url} did not answer the {slo.name} query: {exc}") from exc
        if not result:
            return Reading(None, None)
        value = float(result[0]["value"][1])
        return Reading(None if math.isnan(value) else value, None)
