"""warroom's own count of Slack's rate limits (bot.slack.budgets), on a clock the test moves."""

from __future__ import annotations

from bot.slack.budgets import Budgets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_posts_are_budgeted_per_channel_with_a_short_burst() -> None:
    clock = Clock()
    budgets = Budgets(clock=clock)
    assert [budgets.take("chat.postMessage", "C1") for _ in range(3)] == [0, 0, 0]
    assert budgets.take("chat.postMessage", "C1") == 1.0  # the fourth waits a second
    assert budgets.take("chat.postMessage", "C2") == 0  # another channel has its own
    clock.now += 1
    assert budgets.take("chat.postMessage", "C1") == 0


def test_a_tier_2_method_allows_twenty_a_minute() -> None:
    clock = Clock()
    budgets = Budgets(clock=clock)
    assert all(budgets.take("conversations.create") == 0 for _ in range(20))
    assert budgets.take("conversations.create") == 3.0  # one more every three seconds
    assert budgets.take("chat.update") == 0  # a tier-3 method is not touched


def test_a_429_closes_the_method_until_retry_after_whatever_the_tokens() -> None:
    clock = Clock()
    budgets = Budgets(clock=clock)
    budgets.exhaust("chat.update", None, 30)
    assert budgets.take("chat.update") == 30
    clock.now += 30
    assert budgets.take("chat.update") == 0


def test_calls_a_person_waits_for_are_counted_but_never_refused() -> None:
    budgets = Budgets(clock=Clock())
    for _ in range(4):
        budgets.spend("chat.postMessage", "C1")
    assert budgets.take("chat.postMessage", "C1") > 1  # the worker's posts wait for them


def test_a_scale_multiplies_every_budget() -> None:
    budgets = Budgets(scale=2, clock=Clock())
    assert all(budgets.take("chat.postMessage", "C1") == 0 for _ in range(6))
    assert budgets.take("chat.postMessage", "C1") > 0
