"""The sensors' maths: PSI against hand-computed values, spikes against the same hour of past days."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from bot.sensors.psi import EPSILON, psi, quantile_edges, shares
from bot.sensors.spike import Outcomes, spike

T0 = datetime(2026, 3, 9, 14, 0, tzinfo=timezone.utc)


def test_psi_of_the_same_distribution_is_zero():
    values = [float(v) for v in range(100)]
    assert psi(values, list(reversed(values))) == pytest.approx(0.0)


def test_psi_matches_the_formula_on_a_two_bin_case():
    baseline = [1.0] * 50 + [2.0] * 50  # edges [1.0]: bins (-inf, 1], (1, inf)
    current = [1.0] * 20 + [2.0] * 80
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert psi(baseline, current, bins=2) == pytest.approx(expected)
    assert expected > 0.25  # a shift this size is an alert


def test_an_empty_bin_is_floored_not_infinite():
    baseline = [1.0] * 50 + [2.0] * 50
    current = [2.0] * 100
    expected = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert psi(baseline, current, bins=2) == pytest.approx(expected)


def test_quantile_edges_collapse_on_repeated_values():
    assert quantile_edges([0, 0, 0, 1, 1, 1, 2, 2, 2, 2], 10) == [0, 1]
    assert shares([0, 1, 2, 5], [0, 1]) == [0.25, 0.25, 0.5]


def test_a_small_shift_stays_under_the_warning_line():
    baseline = [float(v % 50) for v in range(1000)]
    current = [float(v % 50) + 1 for v in range(1000)]
    assert 0 < psi(baseline, current) < 0.1


def series(rate_now: float, rate_before: float, *, days: int = 7, per_hour: int = 60,
           hours_now: float = 2.0) -> Outcomes:
    """Traffic at ``per_hour`` for the last ``hours_now`` hours and the same hours of past days."""
    pairs = []
    for d in range(days + 1):
        rate = rate_now if d == 0 else rate_before
        end = T0 - timedelta(days=d)
        count = int(per_hour * hours_now)
        for i in range(count):
            # evenly spread: the i-th event is bad when the running count of bad ones steps up
            pairs.append((end - timedelta(hours=hours_now) * (i + 0.5) / count,
                          math.floor((i + 1) * rate) > math.floor(i * rate)))
    return Outcomes(pairs)


def verdict(outcomes: Outcomes, **overrides: object):
    args = dict(window=timedelta(hours=1), days=7, factor=2.0, sustained=timedelta(hours=1), min_samples=20,
                min_rate=0.01)
    args.update(overrides)
    return spike(outcomes, T0, **args)  # type: ignore[arg-type]


def test_a_failure_rate_three_times_the_usual_for_an_hour_is_a_spike():
    result = verdict(series(0.15, 0.05))
    assert result.firing and result.current == pytest.approx(0.15, abs=0.01)
    assert result.baseline == pytest.approx(0.05, abs=0.01)


def test_a_rate_under_twice_the_usual_is_not_a_spike():
    assert not verdict(series(0.09, 0.05)).firing


def test_a_spike_shorter_than_the_sustain_period_does_not_fire():
    # Only the last 30 minutes are bad: the check an hour ago still sees the usual rate.
    pairs = [(T0 - timedelta(minutes=m), m < 30 and m % 3 == 0) for m in range(120)]
    pairs += [(T0 - timedelta(days=d, minutes=m), m % 20 == 0) for d in range(1, 8) for m in range(120)]
    outcomes = Outcomes(pairs)
    assert not verdict(outcomes).firing
    assert verdict(outcomes, sustained=timedelta(0)).firing


def test_a_service_that_never_failed_needs_more_than_the_floor():
    assert not verdict(series(0.01, 0.0)).firing  # 1 % is not above 2 × the 1 % floor
    assert verdict(series(0.05, 0.0)).firing


def test_too_little_traffic_says_nothing():
    assert not verdict(series(0.5, 0.05, per_hour=10)).firing
