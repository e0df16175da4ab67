"""Everything one warroom process holds: settings, database, loaded folders, metrics, worker."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot import redact
from bot.actions.render import secrets_from_env
from bot.alerts.intake import IntakeRules
from bot.clock import as_utc, utcnow
from bot.config import Settings
from bot.db import make_engine
from bot.incidents.lifecycle import OPEN_STATUSES
from bot.models import Incident, OutboxItem
from bot.runbooks import RunbookSet, load_runbooks
from bot.telemetry import Metrics

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    runbooks: RunbookSet
    metrics: Metrics = field(init=False)
    wake: threading.Event = field(default_factory=threading.Event)
    services: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self._gauges)

    @classmethod
    def build(cls, settings: Settings, engine: Engine | None = None) -> Runtime:
        runbooks = load_runbooks(settings.runbooks_dir)  # refuses to start on a broken folder, saying why
        # Everything shown (Slack, pages, API, postmortems, logs, eval files) is redacted with these settings.
        redact.configure(settings.redactor(known_secrets=secrets_from_env().values()))
        return cls(settings=settings, engine=engine or make_engine(settings.database_url), runbooks=runbooks)

    @property
    def intake_rules(self) -> IntakeRules:
        return IntakeRules(severity_map=self.settings.severity_map, default_severity=self.settings.default_severity,
                           choose_runbook=self._choose_runbook,
                           alertmanager_api=bool(self.settings.alertmanager_url), automatic=self._automatic)

    def _automatic(self, runbook_id: str | None) -> bool:
        runbook = self.runbooks.get(runbook_id) if runbook_id and self.settings.automation else None
        return bool(runbook and runbook.auto)

    @property
    def slos(self) -> list[Any]:
        """The SLO file's SLOs (WARROOM_SLO_FILE), or those a caller registered for the guard; read once."""
        if "slo_catalogue" not in self.services:
            found = self.services.get("guard_slos")
            if found is None and self.settings.slo_file:
                from bot.slo import load_slos
                found = load_slos(self.settings.slo_file)
            self.services["slo_catalogue"] = list(found or [])
        return self.services["slo_catalogue"]

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


def _mean_seconds(name: str, pairs: list[tuple[datetime | None, datetime | None]]) -> dict[str, float]:
    """Mean time to acknowledge/resolve over the incidents of the last 30 days that got there."""
    spans = [(as_utc(end) - as_utc(start)).total_seconds() for start, end in pairs if start and end]
    return {f"{name}_seconds_mean_30d": sum(spans) / len(spans) if spans else 0.0,
            f"{name}_incidents_30d": float(len(spans))}
