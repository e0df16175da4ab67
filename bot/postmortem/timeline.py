"""Shrink an incident timeline to what a postmortem reader needs.

A long incident can log thousands of events, nearly all of them automated repeats (alert
updates, trace notices, reminders). A reviewer needs every human decision, every pinned
message and every state change; of the automated noise the first and last few show how it
started and how it faded, and the rest is one "… N more" line in its place. Keeping the
summary in Python (not in the template) keeps render time flat: 10,000 events render in
a few milliseconds because the template only ever sees the kept rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.postmortem.context import TimelineEntry

NOISE_HEAD = 5
NOISE_TAIL = 5

# Kinds that change the incident itself: always kept, whoever did them.
STATE_KINDS = frozenset({
    "declared", "opened", "triggered", "acknowledged", "ack", "mitigated", "resolved", "closed", "reopened",
    "state", "state_change", "status", "status_update", "severity", "commander", "action", "rollback",
    "fallback", "approval", "silence", "note", "postmortem",
})
AUTOMATED_ACTORS = frozenset({"", "warroom", "bot", "alertmanager", "grafana", "prometheus", "system", "scheduler"})


@dataclass(frozen=True)
class TimelineRow:
    """One line of the rendered timeline: an event, or a gap standing for ``skipped`` noise events."""

    entry: TimelineEntry | None = None
    skipped: int = 0
    gap_start: datetime | None = None
    gap_end: datetime | None = None
    gap_kinds: tuple[str, ...] = ()


def is_key_event(entry: TimelineEntry) -> bool:
    actor = (entry.actor or "").strip().lower()
    automated = actor in AUTOMATED_ACTORS or actor.endswith("[bot]")
    return entry.pinned or entry.kind.lower() in STATE_KINDS or not automated


def summarise_timeline(entries: list[TimelineEntry], head: int = NOISE_HEAD,
                       tail: int = NOISE_TAIL) -> list[TimelineRow]:
    ordered = sorted(entries, key=lambda e: e.at)  # stable: equal times keep their logged order
    noise_positions = [i for i, entry in enumerate(ordered) if not is_key_event(entry)]
    if len(noise_positions) > head + tail:
        dropped = set(noise_positions[head: len(noise_positions) - tail])
    else:
        dropped = set()
    rows: list[TimelineRow] = []
    gap: list[TimelineEntry] = []
    for index, entry in enumerate(ordered):
        if index in dropped:
            gap.append(entry)
            continue
        if gap:
            rows.append(_gap_row(gap))
            gap = []
        rows.append(TimelineRow(entry=entry))
    if gap:
        rows.append(_gap_row(gap))
    return rows


def _gap_row(gap: list[TimelineEntry]) -> TimelineRow:
    kinds = tuple(sorted({entry.kind for entry in gap}))
    return TimelineRow(skipped=len(gap), gap_start=gap[0].at, gap_end=gap[-1].at, gap_kinds=kinds)
