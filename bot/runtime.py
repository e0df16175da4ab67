"""The core of one warroom process: settings, database, loaded folders, redactor, metrics.

`bot.compose` builds the rest (actions, automation, Slack side, worker) around one of these; a
runtime holds nothing a second one in the same process could see.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.actions.render import secrets_from_env
from bot.alerts.correlation import correlation_rules
from bot.alerts.intake import IntakeRules
from bot.clock import as_utc, utcnow
from bot.config import Settings
from bot.incidents.lifecycle import OPEN_STATUSES
from bot.people import Names
from bot.redact import Redactor
from bot.runbooks import RunbookSet, load_runbooks
from bot.store.db import make_engine
from bot.store.models import Incident, OutboxItem
from bot.telemetry import Metrics

if TYPE_CHECKING:
    from bot.incidents.budget import ErrorBudget
    from bot.slo.sli import PrometheusSLI
    from bot.slo.spec import SLO

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    runbooks: RunbookSet
    # Everything shown (Slack, pages, API, postmortems, logs, eval files) is redacted with this one.
    redactor: Redactor = field(default_factory=Redactor)
    # People's names for Slack user ids (`bot.people`) on pages and in postmortems; None: ids are shown.
    people: Names | None = None
    # The SLOs to use instead of the SLO file's (the demo's guard reads these when no file is set).
    slo_override: Sequence[SLO] | None = None
    metrics: Metrics = field(init=False)
    wake: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self._gauges)

    @classmethod
    def build(cls, settings: Settings, engine: Engine | None = None, *, slos: Sequence[SLO] | None = None,
              people: Names | None = None) -> Runtime:
        runbooks = load_runbooks(settings.runbooks_dir)  # refuses to start on a broken folder, saying why
        return cls(settings=settings, engine=engine or make_engine(settings.database_url), runbooks=runbooks,
                   redactor=redactor_for(settings), people=people, slo_override=slos)

    @property
    def intake_rules(self) -> IntakeRules:
        return IntakeRules(severity_map=self.settings.severity_map, default_severity=self.settings.default_severity,
                           choose_runbook=self._choose_runbook,
                           alertmanager_api=bool(self.settings.alertmanager_url), automatic=self._automatic,
                           correlation=correlation_rules(self.settings), runbook_keys=self._runbook_keys)

    def _runbook_keys(self, runbook_id: str | None) -> tuple[str, ...] | None:
        runbook = self.runbooks.get(runbook_id) if runbook_id else None
        return runbook.correlate if runbook else None

    def _automatic(self, runbook_id: str | None) -> bool:
        runbook = self.runbooks.get(runbook_id) if runbook_id and self.settings.automation else None
        return bool(runbook and runbook.auto)

    @cached_property
    def slos(self) -> list[SLO]:
        """The SLO file's SLOs (WARROOM_SLO_FILE), or those given to `build`; read once, when first needed."""
        if self.slo_override is not None:
            return list(self.slo_override)
        if not self.settings.slo_file:
            return []
        from bot.slo import load_slos
        return load_slos(self.settings.slo_file)

    @cached_property
    def prometheus(self) -> PrometheusSLI | None:
        """Prometheus' HTTP API at WARROOM_PROMETHEUS_URL (the guard's and the budget's SLI), or None."""
        if not self.settings.prometheus_url:
            return None
        from bot.slo.sli import PrometheusSLI
        return PrometheusSLI(self.settings.prometheus_url)

    @cached_property
    def budget(self) -> ErrorBudget:
        """The error budget the card and the postmortem show: from these SLOs, and Prometheus when set."""
        from bot.incidents.budget import ErrorBudget, prometheus_for_cards
        url = self.settings.prometheus_url
        return ErrorBudget(self.slos, prometheus_for_cards(url) if url else None)

    def _choose_runbook(self, labels: dict[str, str], annotations: dict[str, str]) -> tuple[str | None, int | None]:
        runbook = self.runbooks.match(labels, annotations)
        return runbook.id, runbook.severity

    def _gauges(self) -> dict[str, float]:
        with self.engine.connect() as conn:
            open_count = conn.execute(select(func.count()).select_from(Incident)
                                      .where(col(Incident.status).in_(OPEN_STATUSES))).scalar_one()
            pending = conn.execute(select(func.count()).select_from(OutboxItem)
                                   .where(col(OutboxItem.status).in_(("pending", "running")))).scalar_one()
            failed = conn.execute(select(func.count()).select_from(OutboxItem)
                                  .where(col(OutboxItem.status) == "failed")).scalar_one()
            timings = conn.execute(select(col(Incident.opened_at), col(Incident.acknowledged_at),
                                          col(Incident.resolved_at))
                                   .where(col(Incident.opened_at) >= utcnow() - MTTX_WINDOW)).all()
        gauges: dict[str, float] = {"open_incidents": open_count, "outbox_pending": pending, "outbox_failed": failed}
        gauges.update(_mean_seconds("mtta", [(o, a) for o, a, _ in timings]))
        gauges.update(_mean_seconds("mttr", [(o, r) for o, _, r in timings]))
        return gauges


MTTX_WINDOW = timedelta(days=30)


def redactor_for(settings: Settings) -> Redactor:
    """The redactor these settings ask for, masking the known secrets of this environment."""
    return settings.redactor(known_secrets=secrets_from_env().values())


def _mean_seconds(name: str, pairs: list[tuple[datetime | None, datetime | None]]) -> dict[str, float]:
    """Mean time to acknowledge/resolve over the incidents of the last 30 days that got there."""
    spans = [(as_utc(end) - as_utc(start)).total_seconds() for start, end in pairs if start and end]
    return {f"{name}_seconds_mean_30d": sum(spans) / len(spans) if spans else 0.0,
            f"{name}_incidents_30d": float(len(spans))}
