"""The windows the burn-rate alerts look through, and how fast each pair burns the budget.

Alert thresholds follow the Google SRE Workbook ("Alerting on SLOs") as Sloth ships them: a pair
of windows fires when both the long and the short window (long / 12) burn faster than
``factor``, where ``factor`` is the burn that would spend ``budget_fraction`` of the period's error
budget within the long window. Factors are derived from the *nominal* windows, so a rehearsal
that shrinks every window 60 times (``1h`` to ``60s``) keeps the production thresholds and only
runs faster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import pairwise

from bot.errors import ConfigError

NOMINAL_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
PERIOD_DAYS = {"30d": 30, "28d": 28}

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class WindowError(ConfigError, ValueError):
    """A ``--window`` override, ``--time-scale`` or duration that cannot be used."""


def parse_duration(text: str) -> timedelta:
    """A Prometheus-style single-unit duration (``5m``, ``30s``, ``1d``)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise WindowError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h, 1d)")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise WindowError(f"duration must be positive: {text!r}")
    return timedelta(seconds=seconds)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for ``seconds`` (``3600`` -> ``1h``, ``2.5`` -> ``2500ms``)."""
    millis = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


@dataclass(frozen=True)
class BurnCondition:
    """One multi-window pair: page at 14.4x over 1h and 5m, for instance."""

    severity: str  # "page" | "ticket", the ``sloth_severity`` label
    long: str  # nominal window name
    short: str
    budget_fraction: float  # share of the period's budget this pair may spend in ``long``

    def factor(self, period: str) -> float:
        period_hours = PERIOD_DAYS[period] * 24
        long_hours = parse_duration(self.long).total_seconds() / 3600
        return self.budget_fraction * period_hours / long_hours


# Order matters: within a severity the first matching pair names the burn factor shown to people.
BURN_CONDITIONS = (
    BurnCondition("page", "1h", "5m", 0.02),
    BurnCondition("page", "6h", "30m", 0.05),
    BurnCondition("ticket", "1d", "2h", 0.10),
    BurnCondition("ticket", "3d", "6h", 0.10),
)
SEVERITIES = ("page", "ticket")


def conditions_for(severity: str) -> tuple[BurnCondition, ...]:
    return tuple(c for c in BURN_CONDITIONS if c.severity == severity)


def factor_text(factor: float) -> str:
    """14.4 -> "14.4", 6.0 -> "6", 0.9333 -> "0.93": what people read on the card."""
    return f"{factor:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class WindowSet:
    """Actual durations behind each nominal window; scaled so rehearsals and tests finish in minutes.

    Keep every window at least a few scrape intervals long: ``rate()`` over a window shorter
    than about two scrapes returns nothing, and an empty ratio can neither fire nor resolve.
    Series keep their nominal names and ``sloth_window`` labels whatever the scale, so a rule file
    reloaded with another scale leaves one series per window (the period ratio divides series
    matched on everything but ``sloth_window``; two labels for one window would make that
    division many-to-many).
    """

    actual: Mapping[str, str] = field(default_factory=lambda: {w: w for w in NOMINAL_WINDOWS})
    alert_for: str = "0s"
    time_scale: float = 1.0

    @classmethod
    def scaled(cls, time_scale: float, *, alert_for: str = "0s") -> WindowSet:
        """Every window (and the period) ``time_scale`` times shorter: ``60`` turns 1h into 60s."""
        if not time_scale >= 1:
            raise WindowError(f"--time-scale must be 1 or more (got {time_scale:g})")
        actual = {w: format_duration(parse_duration(w).total_seconds() / time_scale) for w in NOMINAL_WINDOWS}
        if parse_duration(actual[NOMINAL_WINDOWS[0]]).total_seconds() < 1:
            raise WindowError(f"--time-scale {time_scale:g} makes the 5m window shorter than 1s; use 300 or less")
        return cls._checked(actual, alert_for=alert_for, time_scale=time_scale)

    @classmethod
    def from_overrides(cls, overrides: Iterable[str], *, alert_for: str = "0s", time_scale: float = 1.0) -> WindowSet:
        """Build from ``["5m=5s", "1h=30s"]`` over ``time_scale``; windows not named keep their length."""
        actual = dict(cls.scaled(time_scale).actual) if time_scale != 1 else {w: w for w in NOMINAL_WINDOWS}
        for item in overrides:
            nominal, sep, value = item.partition("=")
            nominal, value = nominal.strip(), value.strip()
            if not sep or nominal not in actual:
                raise WindowError(
                    f"bad --window {item!r}: expected NOMINAL=DURATION with NOMINAL one of "
                    + ", ".join(NOMINAL_WINDOWS)
                )
            parse_duration(value)
            actual[nominal] = value
        return cls._checked(actual, alert_for=alert_for, time_scale=time_scale)

    @classmethod
    def _checked(cls, actual: dict[str, str], *, alert_for: str, time_scale: float) -> WindowSet:
        # A short window longer than its long window (1h scaled, 5m not) fires tickets at once and
        # holds them for the unscaled length: refuse it rather than rehearse something misleading.
        lengths = [(w, parse_duration(actual[w])) for w in NOMINAL_WINDOWS]
        for (before, shorter), (after, longer) in pairwise(lengths):
            if shorter > longer:
                raise WindowError(
                    f"window {before}={actual[before]} is longer than {after}={actual[after]}; scale every "
                    "window together with --time-scale (e.g. --time-scale 60)"
                )
        if alert_for != "0s":
            parse_duration(alert_for)
        return cls(actual=actual, alert_for=alert_for, time_scale=time_scale)

    @property
    def is_scaled(self) -> bool:
        return any(k != v for k, v in self.actual.items())

    def duration(self, nominal: str) -> timedelta:
        return parse_duration(self.actual[nominal])

    def promql(self, nominal: str) -> str:
        return self.actual[nominal]

    def period(self, period: str) -> str:
        """The SLO period's range, shortened by the same scale as the windows."""
        if self.time_scale == 1:
            return period
        return format_duration(parse_duration(period).total_seconds() / self.time_scale)

    def scale_interval(self, nominal: str, *, floor: str = "1s") -> str:
        """An Alertmanager timing (``group_wait`` …) shortened by the time scale, never under ``floor``."""
        seconds = max(parse_duration(nominal).total_seconds() / self.time_scale, parse_duration(floor).total_seconds())
        return format_duration(seconds)
