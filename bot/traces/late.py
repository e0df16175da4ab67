"""Failing traces that arrive after an incident opened: when to tell its room.

Trace ingest stays one cheap INSERT per batch: each incident that got new failing traces gets at
most one outbox row, keyed by its time slot (``traces-more:<incident>:<slot>``), due at the end of
the slot. Every batch in the same slot hits the same key, so the room gets at most one "N more
failing traces" post per incident per slot, and traces of later batches coalesce into it (the
post, when due, takes every trace not posted yet; see `bot.slack.late_traces`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from bot.effects import PostLateTraces
from bot.store import outbox

POSTED_STEP = "traces_posted"  # IncidentStep whose result remembers the last trace posted to the room
DEFAULT_EVERY_SECONDS = 60.0


def effects(
    incident_ids: Iterable[int], *, now: datetime, every_s: float = DEFAULT_EVERY_SECONDS
) -> list[outbox.Queued]:
    """One effect per incident for this slot: due when the slot ends, so the slot's traces coalesce.

    Queued without the row's incident id: the outbox runs an incident's rows in order, so a row due
    a minute from now would hold back that incident's card updates and action runs until then.
    The payload still names the incident."""
    at = now.timestamp()
    slot = math.floor(at / every_s)
    due_in = max((slot + 1) * every_s - at, 0.0)
    return [outbox.Queued(PostLateTraces(incident_id=incident_id), key=f"traces-more:{incident_id}:{slot}",
                          delay=due_in)
            for incident_id in sorted(set(incident_ids))]
