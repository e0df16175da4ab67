"""Postmortem drafts: a validated context in, Markdown out (templates are user-overridable)."""

from __future__ import annotations

from bot.postmortem.context import (
    ActionRecord,
    BundleLineage,
    Impact,
    IncidentInfo,
    PostmortemContext,
    TimelineEntry,
    TraceExample,
    TraceSummary,
)
from bot.postmortem.render import TEMPLATE_NAME, render_postmortem

__all__ = [
    "TEMPLATE_NAME",
    "ActionRecord",
    "BundleLineage",
    "Impact",
    "IncidentInfo",
    "PostmortemContext",
    "TimelineEntry",
    "TraceExample",
    "TraceSummary",
    "render_postmortem",
]
