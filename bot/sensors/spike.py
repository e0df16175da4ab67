"""Failure-rate spikes against the same hour of previous days, sustained for a while.

At a moment ``t`` the current rate is ``bad / total`` over ``(t - window, t]``; the baseline is the
pooled rate over the same window shifted back by 1, 2, ..., ``days`` days (so daily seasonality
cancels out), floored at ``min_rate`` so a service that never failed does not page on its first
failure. The condition holds at ``t`` when the window has at least ``min_samples`` events, the
baseline has events, and ``current > factor x max(baseline, min_rate)``. The spike fires when the
condition holds at every check point ``t = now - k x sustained / CHECKS`` (k = 0..CHECKS), which
is Prometheus' ``for:`` computed from stored data, so a restart loses no pending state.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

CHECKS = 6
DAY = timedelta(days=1)


@dataclass(frozen=True)
class SpikeVerdict:
    firing: bool
    current: float  # the rate at ``now``
    baseline: float
    samples: int


class Outcomes:
    """``(timestamp, bad)`` pairs, sorted, with prefix sums for window counts in O(log n)."""

    def __init__(self, pairs: Sequence[tuple[datetime, bool]]) -> None:
        ordered = sorted(pairs)
        self.times = [t for t, _ in ordered]
        self.bad_before = [0]
        for _, bad in ordered:
            self.bad_before.append(self.bad_before[-1] + int(bad))

    def window(self, start: datetime, end: datetime) -> tuple[int, int]:
        """(bad, total) in ``(start, end]``."""
        lo, hi = bisect.bisect_right(self.times, start), bisect.bisect_right(self.times, end)
        return self.bad_before[hi] - self.bad_before[lo], hi - lo


def spans_needed(now: datetime, window: timedelta, days: int, sustained: timedelta) -> list[tuple[datetime, datetime]]:
    """The time ranges a verdict at ``now`` reads: today's and each previous day's."""
    return [(now - d * DAY - sustained - window, now - d * DAY) for d in range(days + 1)]


def rates_at(outcomes: Outcomes, t: datetime, window: timedelta, days: int) -> tuple[float, float, int, int]:
    bad, total = outcomes.window(t - window, t)
    base_bad = base_total = 0
    for d in range(1, days + 1):
        b, n = outcomes.window(t - d * DAY - window, t - d * DAY)
        base_bad, base_total = base_bad + b, base_total + n
    current = bad / total if total else 0.0
    baseline = base_bad / base_total if base_total else 0.0
    return current, baseline, total, base_total


def spike(outcomes: Outcomes, now: datetime, *, window: timedelta, days: int, factor: float,
          sustained: timedelta, min_samples: int, min_rate: float) -> SpikeVerdict:
    checks = [now] if not sustained else [now - sustained * k / CHECKS for k in range(CHECKS + 1)]
    first: tuple[float, float, int] | None = None
    firing = True
    for t in checks:
        current, baseline, total, base_total = rates_at(outcomes, t, window, days)
        if first is None:
            first = (current, baseline, total)
        if total < min_samples or base_total == 0 or not current > factor * max(baseline, min_rate):
            firing = False
            break
    assert first is not None
    return SpikeVerdict(firing, *first)
