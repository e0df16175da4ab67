"""One cause, one room: which open incident a new alert group joins instead of opening its own.

A bad deploy pages once per SLO, and Alertmanager sends the page and the ticket alert of one SLO
as separate groups. Groups whose labels share the correlation key's values (default
``service``; a runbook's ``correlate:`` overrides the setting ``WARROOM_CORRELATE``) join the
open incident that holds that key, while the window since its last new group lasts (it extends
with every group that joins). Severity labels are never part of a key: the page and the ticket
of one SLO always join.

Storm mode: when new incidents open faster than a threshold (workspace-wide, or for one service),
a service's further groups that match no incident join one storm incident for the service, until
no group has come for the quiet period.

The key's row (`bot.store.models.Correlation`) is what makes this exact with several processes:
the intake locks it, after its groups, before deciding to open or join (`bot.alerts.store`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings

# Labels that tell a page from a ticket of the same SLO: never part of a key.
SEVERITY_LABELS = frozenset({"severity", "sloth_severity", "priority"})
# Where a key's well-known names are read from, first present wins (as the incident's columns).
LABEL_ALIASES: dict[str, tuple[str, ...]] = {
    "service": ("service", "sloth_service", "job"),
    "slo": ("slo", "sloth_slo"),
}
STORM_PREFIX = "storm|"


@dataclass(frozen=True)
class CorrelationRules:
    keys: tuple[str, ...] = ("service",)
    window: timedelta = timedelta(minutes=30)
    storm_incidents: int = 5  # 0: no workspace-wide storm
    storm_window: timedelta = timedelta(minutes=2)
    storm_service_incidents: int = 3  # 0: no per-service storm
    storm_service_window: timedelta = timedelta(minutes=5)
    storm_quiet: timedelta = timedelta(minutes=10)

    @property
    def storms(self) -> bool:
        return self.storm_incidents > 0 or self.storm_service_incidents > 0


def correlation_rules(settings: Settings) -> CorrelationRules:
    return CorrelationRules(
        keys=tuple(settings.correlate), window=timedelta(minutes=settings.correlation_window_minutes),
        storm_incidents=settings.storm_incidents, storm_window=timedelta(minutes=settings.storm_minutes),
        storm_service_incidents=settings.storm_service_incidents,
        storm_service_window=timedelta(minutes=settings.storm_service_minutes),
        storm_quiet=timedelta(minutes=settings.storm_quiet_minutes))


def label_value(labels: dict[str, str], name: str) -> str | None:
    for alias in LABEL_ALIASES.get(name, (name,)):
        if labels.get(alias):
            return labels[alias]
    return None


def key_of(labels: dict[str, str], names: tuple[str, ...]) -> str | None:
    """``service=llm-gateway`` for ``names`` ``("service",)``; None when the key is empty or a
    label is missing (such a group correlates with nothing)."""
    names = tuple(n for n in names if n not in SEVERITY_LABELS)
    if not names:
        return None
    parts = []
    for name in names:
        value = label_value(labels, name)
        if value is None:
            return None
        parts.append(f"{name}={value}")
    return ",".join(parts)


def storm_key(service: str | None) -> str:
    return f"{STORM_PREFIX}service={service or ''}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def group_name(labels: dict[str, str]) -> str:
    """How the card and the timeline name an alert group: its SLO (or alert name), with its
    severity when the labels give one (``schema-valid-rate (ticket)``)."""
    name = label_value(labels, "slo") or labels.get("alertname") or "alert group"
    severity = labels.get("sloth_severity") or labels.get("severity")
    return f"{name} ({severity})" if severity else name


@dataclass
class StormCounts:
    """New incidents opened lately (storm incidents excluded), this batch's included."""

    workspace: int = 0
    by_service: dict[str | None, int] = field(default_factory=dict)

    def opened(self, service: str | None) -> None:
        self.workspace += 1
        self.by_service[service] = self.by_service.get(service, 0) + 1

    def storming(self, rules: CorrelationRules, service: str | None) -> bool:
        return ((rules.storm_incidents > 0 and self.workspace >= rules.storm_incidents)
                or (rules.storm_service_incidents > 0
                    and self.by_service.get(service, 0) >= rules.storm_service_incidents))
