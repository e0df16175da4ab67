"""The built-in watcher against hand-computed examples (99 % SLO: budget 1 %, page at 14.4 % bad)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.slo.burn import BurnAlert, budget_consumed, error_ratios, evaluate, trace_outcomes
from bot.slo.spec import SLO
from bot.slo.tracerule import TraceRule
from bot.slo.windows import WindowSet

NOW = datetime(2026, 3, 14, 2, 7, tzinfo=timezone.utc)
SLO_99 = SLO(service="llm-gateway", name="hallucination-rate", sli="hallucination_rate", objective=99,
             runbook="hallucination-spike")


def at(minutes_ago: float, total: int, bad: int = 0) -> list[tuple[datetime, bool]]:
    """``total`` outcomes at one moment, the first ``bad`` of them bad."""
    moment = NOW - timedelta(minutes=minutes_ago)
    return [(moment, i < bad) for i in range(total)]


def page(alerts: list[BurnAlert]) -> BurnAlert | None:
    return next((a for a in alerts if a.severity == "page"), None)


def test_exactly_at_the_threshold_does_not_page_one_more_bad_answer_does() -> None:
    # Old good traffic 3 h ago keeps the 6 h window (the 6x pair) calm: 144/11000 = 1.3 %.
    old = at(180, 10_000)
    assert page(evaluate(SLO_99, old + at(1, 1000, bad=144), NOW)) is None  # 14.4 % = 14.4x exactly
    alert = page(evaluate(SLO_99, old + at(1, 1000, bad=145), NOW))
    assert alert is not None and alert.status == "firing"
    assert alert.burn_rate == 14.5  # measured over the hour: 145 bad of 1000, not the 14.4 threshold
    assert "burning 14.5× (page threshold 14.4× over 1h and 5m, or 6× over 6h and 30m;" in alert.annotations["summary"]
    assert alert.annotations["burn_rate"] == "14.5"
    assert alert.annotations["runbook"] == "hallucination-spike"
    assert alert.labels == {"alertname": "LLMSLOErrorBudgetBurn", "sloth_id": "llm-gateway-hallucination-rate",
                            "sloth_service": "llm-gateway", "sloth_slo": "hallucination-rate",
                            "service": "llm-gateway", "slo": "hallucination-rate", "sloth_severity": "page"}
    assert alert.starts_at == NOW and alert.ends_at is None


def test_a_burning_short_window_alone_does_not_page() -> None:
    # Last 5 min: 50 % bad. 1 h: 500/11000 = 4.5 %, 6 h the same: neither long window burns enough.
    outcomes = at(40, 10_000) + at(1, 1000, bad=500)
    ratios = error_ratios(outcomes, NOW)
    assert ratios["5m"].ratio == 0.5 and ratios["30m"].ratio == 0.5
    assert ratios["1h"].ratio == pytest.approx(500 / 11_000)
    assert page(evaluate(SLO_99, outcomes, NOW)) is None


def test_a_burning_long_window_alone_does_not_page() -> None:
    # 45 % bad over the last hour, but the last 5 minutes are clean; 6 h diluted to 0.5 %.
    outcomes = at(180, 100_000) + at(20, 1000, bad=500) + at(1, 100)
    assert error_ratios(outcomes, NOW)["5m"].ratio == 0
    assert page(evaluate(SLO_99, outcomes, NOW)) is None


def test_the_six_hour_pair_pages_and_reports_the_burn_it_measured() -> None:
    # 8 % bad for the last 6 h: under 14.4x, over 6x.
    outcomes = [o for hours in range(6) for o in at(hours * 60 + 1, 100, bad=8)]
    alerts = evaluate(SLO_99, outcomes, NOW)
    assert page(alerts) is not None and page(alerts).burn_rate == 8  # type: ignore[union-attr]
    ticket = next(a for a in alerts if a.severity == "ticket")
    assert ticket.burn_rate == 8 and "burning 8.0× (ticket threshold 3×" in ticket.annotations["summary"]


def test_no_traffic_is_not_burning() -> None:
    assert evaluate(SLO_99, [], NOW) == []
    assert error_ratios([], NOW)["1h"].ratio == 0


def test_an_episode_keeps_its_start_and_resolves_once() -> None:
    bad = at(1, 100, bad=50)
    first = evaluate(SLO_99, bad, NOW)
    later = NOW + timedelta(minutes=2)
    still = evaluate(SLO_99, bad + at(-1, 100, bad=50), later, previous=first)
    assert page(still).starts_at == NOW  # type: ignore[union-attr]
    recovered = NOW + timedelta(hours=7)  # every page window now holds only good traffic
    good = [(recovered - timedelta(minutes=1), False)] * 100
    resolved = evaluate(SLO_99, bad + good, recovered, previous=still)
    page_resolved = page(resolved)
    assert page_resolved is not None and page_resolved.status == "resolved"
    assert page_resolved.starts_at == NOW and page_resolved.ends_at == recovered
    assert page(evaluate(SLO_99, bad + good, recovered, previous=resolved)) is None


def test_28_day_slo_pages_at_13_44() -> None:
    slo = SLO(service="svc", name="quality", sli="hallucination_rate", objective=99, period="28d")
    outcomes = at(180, 10_000) + at(1, 1000, bad=135)  # 13.5 % > 13.44 %
    assert page(evaluate(slo, outcomes, NOW)).burn_rate == 13.5  # type: ignore[union-attr]


def test_scaled_windows_let_seconds_stand_in_for_hours() -> None:
    windows = WindowSet.from_overrides(["5m=5s", "30m=15s", "1h=30s", "2h=60s", "6h=120s"])
    outcomes = [(NOW - timedelta(seconds=s), s % 2 == 0) for s in range(0, 30)]  # 50 % over 30 s
    assert page(evaluate(SLO_99, outcomes, NOW, windows)) is not None
    assert page(evaluate(SLO_99, outcomes, NOW + timedelta(minutes=5), windows)) is None  # data aged out


def test_budget_consumed_is_burn_rate_times_share_of_the_period() -> None:
    # 13 minutes at 10 % bad against a 1 % budget: 10x burn for 13 of 43,200 minutes = 0.30 %.
    start, end = NOW, NOW + timedelta(minutes=13)
    outcomes = [(start + timedelta(seconds=i), i % 10 == 0) for i in range(780)]
    assert budget_consumed(SLO_99, outcomes, start, end) == pytest.approx(10 * 13 / 43_200)
    assert budget_consumed(SLO_99, outcomes, end + timedelta(hours=1), end + timedelta(hours=2)) == 0
    assert budget_consumed(SLO_99, [], start, end) == 0


def test_traces_become_outcomes_through_the_slos_trace_rule() -> None:
    slo = SLO(service="svc", name="quality", sli="hallucination_rate", objective=99,
              trace=TraceRule("hallucination_score", ">", 0.5))
    events: list[tuple[datetime, dict[str, float]]] = [
        (NOW, {"hallucination_score": 0.9}),
        (NOW, {"hallucination_score": 0.1}),
        (NOW, {"latency_ms": 5}),  # no grader score: says nothing about hallucinations
    ]
    assert trace_outcomes(slo, events) == [(NOW, True), (NOW, False)]
