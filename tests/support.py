"""Test helpers shared across folders: a real uvicorn server in a thread, and a deadline wait."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.serving import ServerThread, free_port, wait_until  # noqa: F401  (re-exported for tests)


def wait_for(predicate: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    return wait_until(predicate, timeout=timeout, interval=interval, what=what)
