"""The error budget an incident consumed over its window, and where that figure came from.

One formula (`bot.slo.burn.budget_from_ratio`: the SLO's objective and period) over one reading of
the SLI (`bot.slo.sli`), for the card and the postmortem alike: from traces by the SLO's rule by
default; from Prometheus (the SLO file's query) when ``WARROOM_PROMETHEUS_URL`` is set and the SLO
has a query. Prometheus is asked by `ErrorBudget.fetch`, outside any transaction (on SQLite every
transaction holds the write lock, which an HTTP call must not keep), before the card or the draft
is rendered; its latest answer per incident is kept, so rendering (`ErrorBudget.of`) never waits
on the network. Without an answer (not asked yet, down, no data) the figure comes from traces and
says why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.clock import as_utc, utcnow
from bot.errors import ExternalError
from bot.slo.burn import budget_from_ratio
from bot.slo.sli import PrometheusSLI, TraceSLI
from bot.slo.spec import SLO
from bot.store.db import transaction
from bot.store.models import Alert, Incident

log = logging.getLogger(__name__)

KEPT_ANSWERS = 1000  # Prometheus answers kept, one per incident; an old incident is asked again
# An incident's card refreshes often (and first after a person's action): Prometheus is asked at
# most this often per incident, so a slow Prometheus costs a card one slow call per period at most.
ASK_EVERY = timedelta(seconds=30)
ASK_TIMEOUT_SECONDS = 2.0


def prometheus_for_cards(url: str) -> PrometheusSLI:
    """Prometheus with a short timeout: a card refresh (first in line after a person's action)
    waits for it at most this long, once per `ASK_EVERY`; then the figure comes from traces."""
    return PrometheusSLI(url, httpx.Client(timeout=ASK_TIMEOUT_SECONDS))


def impact_window(session: Session, incident: Incident) -> tuple[datetime, datetime]:
    """From the first firing alert (users were hurt before we opened) to the resolution, or now."""
    first_alert = session.execute(select(func.min(col(Alert.starts_at)))
                                  .where(col(Alert.incident_id) == incident.id)).scalar()
    opened, first = as_utc(incident.opened_at), as_utc(first_alert)
    start = min(opened, first) if first else opened
    return start, as_utc(incident.resolved_at) or utcnow()


def slo_of(slos: Sequence[SLO], incident: Incident) -> SLO | None:
    """The incident's SLO in the catalogue, by its service and SLO (or the generated rules' labels)."""
    labels = incident.labels or {}
    service = incident.service or labels.get("sloth_service")
    name = incident.slo or labels.get("sloth_slo")
    return next((s for s in slos if s.service == service and s.name == name), None)


@dataclass(frozen=True)
class Budget:
    consumed: float | None  # fraction of the SLO period's budget; None: nothing to measure it by
    slo: SLO
    source: str  # "Prometheus" or "traces"
    detail: str  # how it was measured, in words

    @property
    def basis(self) -> str:
        """"99.5 % objective over 30d; from traces: 30 requests by the SLO's rule …"."""
        return f"its {self.slo.objective:g} % objective over {self.slo.period}; from {self.source}: {self.detail}"

    def line(self) -> str:
        """For the card: "Error budget consumed since it started: 2.1 % of hallucination-rate's 30d budget (…)"."""
        return (f"Error budget consumed since it started: {percent(self.consumed)} of {self.slo.name}'s "
                f"{self.slo.period} budget ({self.basis})")


def percent(fraction: float | None) -> str:
    if fraction is None:
        return "unknown"
    # A short incident spends a sliver of a month's budget: keep two significant digits of it.
    return f"{fraction * 100:.1f} %" if fraction >= 0.01 or fraction == 0 else f"{fraction * 100:.2g} %"


def _still_open(incident: Incident) -> bool:
    return incident.resolved_at is None


def _answers_for(answer: _Answer, incident: Incident, start: datetime, end: datetime) -> bool:
    """An open incident's window grows: its latest answer stands for it; a resolved one's must match."""
    return answer.start == start and (answer.end == end or _still_open(incident))


@dataclass(frozen=True)
class _Answer:
    start: datetime
    end: datetime
    ratio: float | None
    error: str | None = None
    asked_at: datetime | None = None


class ErrorBudget:
    """The SLO catalogue, Prometheus when configured, and Prometheus' latest answer per incident."""

    def __init__(self, slos: Sequence[SLO] = (), prometheus: PrometheusSLI | None = None) -> None:
        self.slos, self.prometheus = tuple(slos), prometheus
        self._answers: dict[int, _Answer] = {}
        self._lock = threading.Lock()

    def slo_for(self, incident: Incident) -> SLO | None:
        return slo_of(self.slos, incident)

    def fetch(self, engine: Engine, incident_id: int) -> None:
        """Ask Prometheus for the incident's window now, outside any transaction; no-op without it."""
        if self.prometheus is None:
            return
        with transaction(engine) as session:
            incident = session.get(Incident, incident_id)
            slo = self.slo_for(incident) if incident else None
            if incident is None or slo is None or slo.prometheus is None:
                return
            start, end = impact_window(session, incident)
        with self._lock:
            kept = self._answers.get(incident_id)
        now = utcnow()
        if kept is not None and kept.start == start and (kept.end == end or (
                _still_open(incident) and kept.asked_at and now - kept.asked_at < ASK_EVERY)):
            return  # the same window, or an open incident's asked a moment ago
        try:
            answer = _Answer(start, end, self.prometheus.read(None, slo, start, end).ratio, asked_at=now)
        except ExternalError as exc:
            log.warning("error budget of incident %s from traces: %s", incident_id, exc)
            answer = _Answer(start, end, None, "Prometheus did not answer", asked_at=now)
        with self._lock:
            self._answers.pop(incident_id, None)
            self._answers[incident_id] = answer
            while len(self._answers) > KEPT_ANSWERS:  # the incidents asked about least recently go first
                self._answers.pop(next(iter(self._answers)))

    def of(self, session: Session, incident: Incident, start: datetime, end: datetime,
           slo: SLO | None = None) -> Budget | None:
        """The budget ``incident`` consumed in ``[start, end]`` by ``slo`` (default: its own in the
        catalogue); None without an SLO. Never calls Prometheus: it reads what `fetch` kept."""
        slo = slo or self.slo_for(incident)
        if slo is None:
            return None
        why = None
        if self.prometheus is not None and slo.prometheus is not None:
            with self._lock:
                answer = self._answers.get(incident.id) if incident.id is not None else None
            if answer is not None and not _answers_for(answer, incident, start, end):
                answer = None  # asked for another window (before it resolved): traces until asked again
            if answer is not None and answer.ratio is not None:
                return Budget(budget_from_ratio(slo, answer.ratio, answer.start, answer.end), slo, "Prometheus",
                              f"the SLO file's query, {percent(answer.ratio)} bad over the incident window")
            why = (answer.error or "Prometheus had no data for the window") if answer else "Prometheus not asked yet"
        if slo.trace is None:
            return Budget(None, slo, "traces", "the SLO has no trace rule" + (f" ({why})" if why else ""))
        reading = TraceSLI().read(session, slo, start, end)
        consumed = budget_from_ratio(slo, reading.ratio, start, end) if reading.ratio is not None else None
        detail = (f"{reading.requests or 0:,} requests of {slo.service} in the incident window by the SLO's rule "
                  f"{slo.trace}")
        return Budget(consumed, slo, "traces", detail + (f" ({why})" if why else ""))
