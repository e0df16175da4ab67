"""Synthetic users: ask the canned questions round-robin so Prometheus always has a rate to show."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from .answers import traffic_questions
from .background import BackgroundLoop


class TrafficGenerator(BackgroundLoop):
    def __init__(self, ask: Callable[[str], object], rps: float) -> None:
        super().__init__("traffic")
        self.ask = ask
        self.period = 1.0 / rps

    def _loop(self) -> None:
        questions = itertools.cycle(traffic_questions())
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.ask(next(questions))
            # Schedule against a fixed timeline so the rate holds even when answering takes time.
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
