"""warroom's own count of Slack's rate limits, so the worker never waits in line for one.

Slack limits each Web API method per app and workspace by tier (T2 20 calls a minute, T3 50, T4
100, with bursts) and ``chat.postMessage`` to about one message a second per channel with a short
burst; over that it answers HTTP 429 with ``Retry-After``. `Budgets` keeps one token bucket per
method (per channel for posts) in this process. The worker asks before each call: a call over
budget is not made, and a 429 empties the method's bucket until its ``Retry-After``; either way
the call raises `RateLimited` and the worker puts the row back for later, not counted as a failed
attempt, and moves on to other rows at once. Calls outside the worker (a listener answering a
person) are counted but never refused.

Budgets are per process: two processes each think they have the whole budget, and the 429 that
follows is handled the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.worker import Deferred

PER_MINUTE = {"T2": 20.0, "T3": 50.0, "T4": 100.0}
DEFAULT_TIER = "T3"  # a method not listed below
# The methods warroom calls, by Slack's published tier.
TIERS = {
    "conversations.create": "T2", "conversations.setTopic": "T2", "conversations.setPurpose": "T2",
    "conversations.archive": "T2", "conversations.list": "T2", "pins.add": "T2", "bookmarks.add": "T2",
    "usergroups.list": "T2", "usergroups.users.list": "T2",
    "conversations.invite": "T3", "conversations.info": "T3", "conversations.history": "T3",
    "conversations.replies": "T3", "conversations.open": "T3", "chat.update": "T3", "chat.delete": "T3",
    "reactions.add": "T3", "users.lookupByEmail": "T3",
    "chat.postEphemeral": "T4", "views.open": "T4", "views.update": "T4", "views.push": "T4",
    "users.info": "T4", "auth.test": "T4", "conversations.members": "T4",
}
POST = "chat.postMessage"  # budgeted per channel, not per method
POSTS_PER_SECOND = 1.0
POST_BURST = 3.0


class RateLimited(Deferred):
    """Slack would refuse (or did refuse, HTTP 429) this call now: try the row again after ``delay``."""

    def __init__(self, method: str, delay: float, *, channel: str | None = None, refused: bool = False) -> None:
        where = f" in {channel}" if channel else ""
        said = "Slack answered 429" if refused else "over warroom's budget"
        super().__init__(f"{method}{where}: {said}; again in {delay:.1f} s", delay=delay)
        self.method, self.channel, self.refused = method, channel, refused


@dataclass
class _Bucket:
    capacity: float
    per_second: float
    tokens: float
    updated: float
    blocked_until: float = 0.0  # a 429's Retry-After: nothing before this, whatever the tokens say

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now

    def wait(self, now: float) -> float:
        """Seconds until one call may go (0: now)."""
        self.refill(now)
        if now < self.blocked_until:
            return self.blocked_until - now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second


class Budgets:
    """Token buckets for one process's Slack calls. ``scale`` multiplies every budget (a workspace
    with higher limits, or tests that should not meet them); ``clock`` is seconds, monotonic."""

    def __init__(self, scale: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if scale <= 0:
            raise ValueError("a budget scale must be above 0")
        self.scale = scale
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, method: str, channel: str | None = None) -> float:
        """Spend one call of ``method`` and return 0, or, when there is none left, spend nothing and
        return the seconds until there is."""
        now = self._clock()
        with self._lock:
            bucket = self._bucket(method, channel, now)
            wait = bucket.wait(now)
            if wait == 0:
                bucket.tokens -= 1
            return wait

    def spend(self, method: str, channel: str | None = None) -> None:
        """Count a call that is made whatever the budget says (a person is waiting for it)."""
        now = self._clock()
        with self._lock:
            bucket = self._bucket(method, channel, now)
            bucket.refill(now)
            bucket.tokens -= 1

    def exhaust(self, method: str, channel: str | None, seconds: float) -> None:
        """Slack said 429: no call of ``method`` (to ``channel``, for posts) for ``seconds``."""
        now = self._clock()
        with self._lock:
            bucket = self._bucket(method, channel, now)
            bucket.refill(now)
            bucket.tokens = min(bucket.tokens, 0.0)
            bucket.blocked_until = max(bucket.blocked_until, now + seconds)

    def _bucket(self, method: str, channel: str | None, now: float) -> _Bucket:
        key = (method, channel or "") if method == POST else (method, "")
        bucket = self._buckets.get(key)
        if bucket is None:
            if method == POST:
                rate, capacity = POSTS_PER_SECOND * self.scale, POST_BURST * self.scale
            else:
                per_minute = PER_MINUTE[TIERS.get(method, DEFAULT_TIER)] * self.scale
                rate, capacity = per_minute / 60.0, per_minute
            bucket = self._buckets[key] = _Bucket(capacity, rate, capacity, now)
        return bucket
