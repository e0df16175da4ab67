"""The burn chart's geometry: the window, the axes, each series scaled to its peak, what is drawn where.

The plot area runs from x=36 (left of it: the axis labels) to x=632 and from y=8 (the peak) to
y=140 (zero, the base line); 48 buckets across.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.incidents.burn_chart import BUCKETS, BurnChart, Moments, burn_chart

T = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
LEFT, RIGHT_EDGE, TOP, BASE = 36, 632, 8, 140
BUCKET_W = (RIGHT_EDGE - LEFT) / BUCKETS
HALF_HOUR = Moments(opened=T, resolved=T + timedelta(minutes=30))


def points(chart: BurnChart) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in chart.firing_points.split())]


def inside_the_plot(x: float, y: float) -> bool:
    return LEFT <= x <= RIGHT_EDGE and TOP <= y <= BASE


def test_the_axes_frame_the_plot_area() -> None:
    chart = burn_chart(HALF_HOUR, [], [], now=T + timedelta(hours=1))
    assert (chart.left, chart.top, chart.base, chart.width - 8) == (LEFT, TOP, BASE, RIGHT_EDGE)
    assert (chart.start, chart.end) == (T, T + timedelta(minutes=30))


def test_no_alerts_and_no_traces_is_a_flat_line_on_the_base_and_no_bars() -> None:
    chart = burn_chart(HALF_HOUR, [], [], now=T + timedelta(hours=1))
    assert points(chart) == [(LEFT, BASE), (RIGHT_EDGE, BASE)]
    assert chart.bars == [] and chart.max_firing == 0 and chart.max_traces == 0


def test_an_open_incident_runs_to_now_and_one_instant_still_has_a_minute() -> None:
    now = T + timedelta(minutes=10)
    assert burn_chart(Moments(opened=T), [], [], now=now).end == now
    instant = burn_chart(Moments(opened=None), [], [], now=now)
    assert (instant.start, instant.end) == (now, now + timedelta(minutes=1))


def test_one_alert_firing_throughout_is_a_line_at_the_peak() -> None:
    chart = burn_chart(HALF_HOUR, [(T, T + timedelta(minutes=30))], [], now=T + timedelta(hours=1))
    assert chart.max_firing == 1
    assert points(chart) == [(LEFT, TOP), (RIGHT_EDGE, TOP)]


def test_the_step_line_has_corners_only_where_the_count_changes_and_scales_to_its_peak() -> None:
    # One alert all along, a second from inside bucket 24 to the end of bucket 35 (a bucket is 37.5 s).
    spans = [(T, None), (T + timedelta(minutes=15, seconds=10), T + timedelta(minutes=22, seconds=30))]
    chart = burn_chart(HALF_HOUR, spans, [], now=T + timedelta(hours=1))
    assert chart.max_firing == 2
    middle = (TOP + BASE) / 2
    rise, fall = round(LEFT + 24 * BUCKET_W, 1), round(LEFT + 36 * BUCKET_W, 1)
    assert points(chart) == [(LEFT, middle), (rise, middle), (rise, TOP), (fall, TOP), (fall, middle),
                             (RIGHT_EDGE, middle)]


def test_one_failing_trace_is_one_full_height_bar_in_its_bucket() -> None:
    chart = burn_chart(HALF_HOUR, [], [T + timedelta(minutes=15)], now=T + timedelta(hours=1))
    assert chart.max_traces == 1
    [(x, y, width, height)] = chart.bars
    assert x == round(LEFT + 24 * BUCKET_W + 1, 1) and width == round(BUCKET_W - 2, 1)  # a gap between bars
    assert (y, height) == (TOP, BASE - TOP)


def test_bars_scale_to_the_busiest_bucket_and_never_leave_the_plot() -> None:
    many = [T + timedelta(minutes=1)] * 10_000
    chart = burn_chart(HALF_HOUR, [], [*many, T + timedelta(minutes=20), T + timedelta(minutes=20),
                                      T + timedelta(minutes=30)], now=T + timedelta(hours=1))
    assert chart.max_traces == 10_000
    tallest = max(chart.bars, key=lambda bar: bar[3])
    assert (tallest[1], tallest[3]) == (TOP, BASE - TOP)
    for x, y, width, height in chart.bars:
        assert inside_the_plot(x, y) and inside_the_plot(x + width, y + height)
    # A trace at the very end lands in the last bucket, not past the right edge.
    assert max(x for x, *_ in chart.bars) == round(LEFT + (BUCKETS - 1) * BUCKET_W + 1, 1)


def test_an_alert_or_trace_before_the_opening_widens_the_window() -> None:
    early = T - timedelta(minutes=10)
    assert burn_chart(HALF_HOUR, [(early, None)], [], now=T + timedelta(hours=1)).start == early
    assert burn_chart(HALF_HOUR, [], [early], now=T + timedelta(hours=1)).start == early
    late = T + timedelta(minutes=45)
    assert burn_chart(HALF_HOUR, [(T, late)], [], now=T + timedelta(hours=1)).end == late


def test_markers_sit_at_their_moment_and_those_near_the_right_edge_point_left() -> None:
    moments = Moments(opened=T, acknowledged=T + timedelta(minutes=3), mitigated=T + timedelta(minutes=15),
                      resolved=T + timedelta(minutes=30))
    chart = burn_chart(moments, [], [], now=T + timedelta(hours=1))
    assert chart.markers == [(round(LEFT + (RIGHT_EDGE - LEFT) * 0.1, 1), "ack", "start"),
                             (round(LEFT + (RIGHT_EDGE - LEFT) * 0.5, 1), "mitigated", "start"),
                             (RIGHT_EDGE, "resolved", "end")]


def test_naive_times_from_sqlite_are_read_as_utc() -> None:
    naive = T.replace(tzinfo=None)
    chart = burn_chart(Moments(opened=naive, resolved=naive + timedelta(minutes=30)),
                       [(naive, None)], [naive + timedelta(minutes=15)], now=T + timedelta(hours=1))
    assert (chart.start, chart.end) == (T, T + timedelta(minutes=30))
    assert chart.max_firing == 1 and chart.max_traces == 1
