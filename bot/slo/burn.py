"""The built-in watcher's math: burn rates over in-memory outcomes, and which alerts fire.

Same windows and factors as the generated Prometheus rules (``bot.slo.windows``), same labels and
annotations (``bot.slo.labels``), same comparison (strictly above the threshold), so an SLO
watched from traces pages exactly when Prometheus would. Pure functions: callers bring the
outcomes (``(timestamp, bad)`` pairs) and keep the alerts between evaluations.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.slo.labels import alert_annotations, alert_labels
from bot.slo.payload import to_alertmanager_payload
from bot.slo.spec import SLO
from bot.slo.windows import (
    NOMINAL_WINDOWS,
    PERIOD_DAYS,
    SEVERITIES,
    BurnCondition,
    WindowSet,
    conditions_for,
)

__all__ = ["BurnAlert", "WindowRatio", "budget_consumed", "budget_from_ratio", "error_ratios", "evaluate",
           "to_alertmanager_payload", "trace_outcomes"]

Outcome = tuple[datetime, bool]


@dataclass(frozen=True)
class WindowRatio:
    window: str  # nominal name: "1h" even when a test shrank it to 30 s
    bad: int
    total: int

    @property
    def ratio(self) -> float:
        """Bad share of the window's events; a window without events counts as 0 (not burning)."""
        return self.bad / self.total if self.total else 0.0


@dataclass(frozen=True)
class BurnAlert:
    labels: dict[str, str]
    annotations: dict[str, str]
    status: str  # "firing" | "resolved"
    starts_at: datetime
    ends_at: datetime | None  # None while firing
    burn_rate: float  # measured over the long window of the pair that fired, e.g. 23.5

    @property
    def severity(self) -> str:
        return self.labels["sloth_severity"]


def trace_outcomes(slo: SLO, events: Iterable[tuple[datetime, Mapping[str, Any]]]) -> list[Outcome]:
    """``(time, bad)`` for each trace event the SLO's trace rule applies to; a trace without the
    rule's field (no tool calls, no grader score) is neither good nor bad for this SLO."""
    if slo.trace is None:
        return []
    rule = slo.trace
    return [(ts, rule.is_bad(event)) for ts, event in events if rule.applies(event)]


def error_ratios(outcomes: Iterable[Outcome], now: datetime,
                 windows: WindowSet | None = None) -> dict[str, WindowRatio]:
    """Bad/total per nominal window, each window being ``(now - length, now]``."""
    windows = windows or WindowSet()
    now = _utc(now)
    ordered = sorted((_utc(ts), bad) for ts, bad in outcomes)
    times = [ts for ts, _ in ordered]
    bad_before = [0]  # bad_before[i] = bad outcomes among the first i
    for _, bad in ordered:
        bad_before.append(bad_before[-1] + int(bad))
    end = bisect.bisect_right(times, now)
    ratios = {}
    for window in NOMINAL_WINDOWS:
        start = bisect.bisect_right(times, now - windows.duration(window))
        ratios[window] = WindowRatio(window, bad_before[end] - bad_before[start], end - start)
    return ratios


def evaluate(
    slo: SLO,
    outcomes: Iterable[Outcome],
    now: datetime,
    windows: WindowSet | None = None,
    previous: Sequence[BurnAlert] = (),
) -> list[BurnAlert]:
    """The page/ticket alerts firing at ``now``, plus ``resolved`` ones for alerts in ``previous``
    that stopped firing. A firing alert keeps the ``starts_at`` of its firing predecessor."""
    now = _utc(now)
    ratios = error_ratios(outcomes, now, windows)
    firing_before = {_key(a.labels): a for a in previous if a.status == "firing"}
    alerts = []
    for severity in SEVERITIES:
        labels = alert_labels(slo, severity)
        before = firing_before.get(_key(labels))
        condition = _firing_condition(slo, ratios, severity)
        if condition is not None:
            burn = round(ratios[condition.long].ratio / slo.error_budget, 1)  # what the rule's value is
            alerts.append(BurnAlert(
                labels=labels,
                annotations=alert_annotations(slo, severity, f"{burn:.1f}"),
                status="firing",
                starts_at=before.starts_at if before else now,
                ends_at=None,
                burn_rate=burn,
            ))
        elif before is not None:
            alerts.append(BurnAlert(labels=labels, annotations=before.annotations, status="resolved",
                                    starts_at=before.starts_at, ends_at=now, burn_rate=before.burn_rate))
    return alerts


def _firing_condition(slo: SLO, ratios: dict[str, WindowRatio], severity: str) -> BurnCondition | None:
    for condition in conditions_for(severity):
        threshold = condition.factor(slo.period) * slo.error_budget
        if _above(ratios[condition.long].ratio, threshold) and _above(ratios[condition.short].ratio, threshold):
            return condition
    return None


def _above(ratio: float, threshold: float) -> bool:
    # Strictly above, as Prometheus' `>`; a ratio equal to the threshold up to float noise
    # (72/1000 vs 14.4 * 0.005) does not fire.
    return ratio > threshold and not math.isclose(ratio, threshold, rel_tol=1e-9)


def budget_consumed(slo: SLO, outcomes: Iterable[Outcome], start: datetime, end: datetime) -> float:
    """The fraction of the whole period's error budget spent in ``[start, end]``, from the
    outcomes there taken as a sample of the traffic (`budget_from_ratio`). No outcomes -> 0."""
    start, end = _utc(start), _utc(end)
    inside = [bad for ts, bad in outcomes if start <= _utc(ts) <= end]
    return budget_from_ratio(slo, sum(inside) / len(inside), start, end) if inside else 0.0


def budget_from_ratio(slo: SLO, ratio: float, start: datetime, end: datetime) -> float:
    """The fraction of the whole period's error budget spent in ``[start, end]`` at error ratio ``ratio``.

    The interval burned at ``ratio / budget``, and burning at rate ``b`` for a time ``t`` spends
    ``b * t / period`` of the budget. Equivalently: bad events in the interval divided by the bad
    events the period allows (``budget x`` the period's traffic, extrapolated from the interval's
    event rate). 0.021 reads as "2.1 % of the monthly budget"; above 1 the interval alone
    exhausted the budget. Whoever measured the ratio (traces, Prometheus), this is the one formula.
    """
    start, end = _utc(start), _utc(end)
    if end <= start:
        return 0.0
    period_seconds = PERIOD_DAYS[slo.period] * 86400
    return ratio / slo.error_budget * (end - start).total_seconds() / period_seconds


def _key(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC so callers can mix DB values and ``datetime.now(UTC)``."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
