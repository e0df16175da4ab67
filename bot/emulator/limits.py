"""Rate limits and injected faults: the ways real Slack says "not now".

Slack applies tiers per method, per app, per workspace (T2 20+/min, T3 50+/min, T4 100+/min) and
lets chat.postMessage through at about one message per second per channel with short bursts.
Over budget it answers HTTP 429 with ``Retry-After: <seconds>`` and ``{"ok":false,"error":"ratelimited"}``.
Budgets are token buckets so a test can shrink them and stay fast.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

# Slack's published tier of every method the emulator serves (tests/emulator/test_emu_limits.py
# fails when warroom calls one that is missing). "special" methods have their own rule:
# chat.postMessage is budgeted per channel below; auth.test allows "hundreds per minute", so T4.
METHOD_TIERS: dict[str, str] = {
    "chat.postMessage": "special",
    "auth.test": "T4",
    "conversations.create": "T2",
    "conversations.setTopic": "T2",
    "conversations.setPurpose": "T2",
    "conversations.archive": "T2",
    "conversations.list": "T2",
    "pins.add": "T2",
    "bookmarks.add": "T2",
    "usergroups.list": "T2",
    "usergroups.users.list": "T2",
    "conversations.invite": "T3",
    "conversations.info": "T3",
    "conversations.history": "T3",
    "conversations.replies": "T3",
    "conversations.open": "T3",
    "chat.update": "T3",
    "chat.delete": "T3",
    "reactions.add": "T3",
    "reactions.get": "T3",
    "users.lookupByEmail": "T3",
    "conversations.members": "T4",
    "chat.postEphemeral": "T4",
    "views.open": "T4",
    "views.update": "T4",
    "views.push": "T4",
    "users.info": "T4",
}

DEFAULT_TIER_PER_MINUTE: dict[str, float] = {"T1": 1, "T2": 20, "T3": 50, "T4": 100}


@dataclass
class _Bucket:
    capacity: float
    per_second: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def take(self, now: float) -> float:
        """Spend one token; return 0 on success, else seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


class RateLimiter:
    """Off until ``configure(enabled=True, ...)`` or ``restore(enabled=True)`` turns the budgets on."""

    enabled: bool
    per_channel_per_second: float
    channel_burst: int
    tier_per_minute: dict[str, float]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.restore(enabled=False)

    def restore(self, enabled: bool) -> None:
        """Slack's own budgets again, full, on or off: what a fresh emulator has."""
        with self._lock:
            self.enabled = enabled
            self.per_channel_per_second = 1.0
            self.channel_burst = 3
            self.tier_per_minute = dict(DEFAULT_TIER_PER_MINUTE)
            self._buckets.clear()

    def configure(
        self,
        enabled: bool = True,
        per_channel_per_second: float | None = None,
        channel_burst: int | None = None,
        tier_per_minute: dict[str, float] | None = None,
    ) -> None:
        with self._lock:
            self.enabled = enabled
            if per_channel_per_second is not None:
                self.per_channel_per_second = per_channel_per_second
            if channel_burst is not None:
                self.channel_burst = channel_burst
            if tier_per_minute:
                self.tier_per_minute.update(tier_per_minute)
            self._buckets.clear()  # new budgets start full

    def check(self, method: str, channel: str | None) -> int:
        """0 if the call may proceed, else the Retry-After seconds (always >= 1)."""
        if not self.enabled:
            return 0
        now = time.monotonic()
        with self._lock:
            if method == "chat.postMessage":
                key = ("channel", channel or "")
                rate, capacity = self.per_channel_per_second, float(self.channel_burst)
            else:
                tier = METHOD_TIERS.get(method, "T3")
                per_minute = self.tier_per_minute.get(tier, DEFAULT_TIER_PER_MINUTE["T3"])
                key = ("method", method)
                rate, capacity = per_minute / 60.0, float(per_minute)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(capacity, rate, capacity, now)
            wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))


FAULT_KINDS = ("500", "timeout", "delay", "429")


@dataclass
class Fault:
    """What the next ``remaining`` calls to a method meet.

    ``500``: HTTP 500, nothing done. ``429``: HTTP 429 with ``Retry-After: retry_after``, nothing
    done. ``timeout``: the call takes effect at once but its answer comes ``delay_s`` later (a
    client that gave up earlier never learns it worked). ``delay``: the call waits ``delay_s``,
    then takes effect and answers (Slack being slow). ``error:<code>``: HTTP 200 with that error.
    """

    kind: str
    remaining: int
    delay_s: float
    retry_after: int = 1

    def to_api(self, method: str) -> dict[str, object]:
        return {"method": method, "kind": self.kind, "times": self.remaining, "delay_s": self.delay_s,
                "retry_after": self.retry_after}


def check_fault(kind: str, times: int, delay_s: float, retry_after: int) -> None:
    """Raise ``ValueError`` saying what is wrong with a fault's settings."""
    if kind not in FAULT_KINDS and not (kind.startswith("error:") and len(kind) > 6):
        raise ValueError(f"unknown fault kind {kind!r}: use 500, 429, timeout, delay or error:<code>")
    if times < 1:
        raise ValueError("times must be at least 1")
    if not 0 <= delay_s <= 600:
        raise ValueError("delay_s must be between 0 and 600")
    if not 1 <= retry_after <= 3600:
        raise ValueError("retry_after must be between 1 and 3600")


class FaultInjector:
    """Queued faults per method, consumed one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}

    def inject(self, method: str, kind: str = "500", times: int = 1, delay_s: float = 5.0,
               retry_after: int = 1) -> None:
        check_fault(kind, times, delay_s, retry_after)
        with self._lock:
            self._faults.setdefault(method, []).append(Fault(kind, times, delay_s, retry_after))

    def pending(self) -> list[dict[str, object]]:
        """The faults still queued, per method in the order they will be met."""
        with self._lock:
            return [f.to_api(method) for method, queue in self._faults.items() for f in queue]

    def take(self, method: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(method) or []
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
