"""The incident state machine: triggered → acknowledged → mitigated → resolved → closed.

Acknowledging or mitigating can be skipped (an alert can resolve on its own); ``reopen`` takes a
resolved incident back to work. Everything else is refused with a message saying why.
"""

from __future__ import annotations

from bot.errors import InvalidTransition

TRIGGERED, ACKNOWLEDGED, MITIGATED, RESOLVED, CLOSED = "triggered", "acknowledged", "mitigated", "resolved", "closed"
STATUSES = (TRIGGERED, ACKNOWLEDGED, MITIGATED, RESOLVED, CLOSED)
OPEN_STATUSES = (TRIGGERED, ACKNOWLEDGED, MITIGATED)

_ALLOWED: dict[str, tuple[str, ...]] = {
    TRIGGERED: (ACKNOWLEDGED, MITIGATED, RESOLVED),
    ACKNOWLEDGED: (MITIGATED, RESOLVED),
    MITIGATED: (ACKNOWLEDGED, RESOLVED),
    RESOLVED: (TRIGGERED, ACKNOWLEDGED, CLOSED),
    CLOSED: (),
}


def is_open(status: str) -> bool:
    return status in OPEN_STATUSES


def check(current: str, target: str) -> None:
    if target not in _ALLOWED.get(current, ()):
        raise InvalidTransition(_why(current, target))


def _why(current: str, target: str) -> str:
    if current == target:
        return f"The incident is already {current}."
    if current == CLOSED:
        return "The incident is closed; declare a new one instead."
    if target == CLOSED:
        return "Only a resolved incident can be closed; resolve it first."
    return f"An incident that is {current} cannot become {target}."
