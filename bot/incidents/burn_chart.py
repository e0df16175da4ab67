"""The incident page's burn chart: firing alerts (a step line) and failing traces (bars) over time.

Pure geometry: the times come in (`bot.incidents.read_model` reads them), SVG coordinates come
out, and ``_burn_chart.html`` draws them. The window runs from the first alert, failing trace or
the opening to the resolution (or ``now`` while the incident is open), and is never shorter than
a minute so that one instant still has a width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import as_utc

BUCKETS = 48
WIDTH, HEIGHT = 640, 160
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 8, 20  # room for the axis labels on the left and below
MIN_WINDOW = timedelta(minutes=1)

Span = tuple[datetime | None, datetime | None]  # an alert's start and end (None while firing)


@dataclass(frozen=True)
class Moments:
    """The incident's own times: the chart marks acknowledgement, mitigation and resolution."""

    opened: datetime | None
    acknowledged: datetime | None = None
    mitigated: datetime | None = None
    resolved: datetime | None = None


@dataclass(frozen=True)
class BurnChart:
    """Firing alerts (a step line) and failing traces (bars) per time bucket, in SVG units."""

    start: datetime
    end: datetime
    firing_points: str
    bars: list[tuple[float, float, float, float]]  # x, y, width, height
    max_firing: int
    max_traces: int
    markers: list[tuple[float, str, str]]  # x, label, text-anchor (labels near the right edge point left)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = BOTTOM

    @property
    def base(self) -> int:
        return self.height - self.bottom


def burn_chart(moments: Moments, alerts: Sequence[Span], failing: Sequence[datetime | None], *,
               now: datetime) -> BurnChart:
    spans = [(as_utc(s), as_utc(e)) for s, e in alerts]
    trace_times = [t for t in (as_utc(t) for t in failing) if t]
    opened = as_utc(moments.opened) or now
    start = min([opened, *(s for s, _ in spans if s), *trace_times])
    end = max([as_utc(moments.resolved) or now, *(e for _, e in spans if e), *trace_times])
    end = max(end, start + MIN_WINDOW)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step, bucket_w = (end - start) / BUCKETS, plot_w / BUCKETS

    firing = [sum(1 for s, e in spans if s and s <= start + step * (i + 1) and (e is None or e > start + step * i))
              for i in range(BUCKETS)]
    per_bucket = [0] * BUCKETS
    for t in trace_times:
        per_bucket[min(BUCKETS - 1, int((t - start) / step))] += 1
    max_firing, max_traces = max(firing), max(per_bucket)

    def y(value: int, most: int) -> float:  # each series scaled to its own peak
        return round(TOP + plot_h - (plot_h * value / most if most else 0), 1)

    points: list[str] = []
    last: int | None = None
    for i, count in enumerate(firing):  # a step line: a corner only where the count changes
        if count != last:
            x = LEFT + i * bucket_w
            points += ([f"{x:.1f},{y(last, max_firing)}"] if last is not None else []) + [
                f"{x:.1f},{y(count, max_firing)}"
            ]
            last = count
    points.append(f"{LEFT + plot_w:.1f},{y(last or 0, max_firing)}")
    bars = [(round(LEFT + i * bucket_w + 1, 1), y(n, max_traces), round(bucket_w - 2, 1),
             round(TOP + plot_h - y(n, max_traces), 1)) for i, n in enumerate(per_bucket) if n]
    markers = []
    for moment, label in ((moments.acknowledged, "ack"), (moments.mitigated, "mitigated"),
                          (moments.resolved, "resolved")):
        moment = as_utc(moment)
        if moment and start <= moment <= end:
            x = round(LEFT + plot_w * ((moment - start) / (end - start)), 1)
            markers.append((x, label, "end" if x > WIDTH - 80 else "start"))
    return BurnChart(start=start, end=end, firing_points=" ".join(points), bars=bars, max_firing=max_firing,
                     max_traces=max_traces, markers=markers)
