"""MTTA and MTTR, from the incident's own timestamps (which the timeline records too)."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import as_utc
from bot.store.models import Incident


def mtta(incident: Incident) -> timedelta | None:
    opened, acked = as_utc(incident.opened_at), as_utc(incident.acknowledged_at)
    return acked - opened if acked else None


def mttr(incident: Incident) -> timedelta | None:
    opened, resolved = as_utc(incident.opened_at), as_utc(incident.resolved_at)
    return resolved - opened if resolved else None


def human(delta: timedelta | None) -> str:
    if delta is None:
        return "–"
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} m" if not seconds else f"{minutes} m {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} m"
