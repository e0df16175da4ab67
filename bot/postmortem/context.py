"""Everything a postmortem draft is rendered from, as plain validated data (no rows, no Slack)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

MAX_TRACE_EXAMPLES = 5


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class _UtcModel(BaseModel):
    """Naive datetimes are taken as UTC, aware ones converted, so the draft shows one clock."""

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return _as_utc(value) if isinstance(value, datetime) else value


class IncidentInfo(_UtcModel):
    id: str | int
    ref: str
    title: str
    service: str | None = None
    slo: str | None = None
    severity: str | None = None
    status: str
    opened_at: datetime
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    commander: str | None = None
    channel: str | None = None


class Impact(BaseModel):
    duration: timedelta | None = None
    mtta: timedelta | None = None
    mttr: timedelta | None = None
    budget_consumed: float | None = Field(default=None, ge=0)  # fraction of the period's error budget
    budget_source: str | None = None  # its objective and period, and where the ratio was read (bot.incidents.budget)
    requests_affected: int | None = Field(default=None, ge=0)
    users_affected: int | None = Field(default=None, ge=0)
    requests_served: int | None = Field(default=None, ge=0)
    failing_fraction: float | None = Field(default=None, ge=0)
    people_kind: str | None = None  # "users" or "sessions": what users_affected counts
    source: str | None = None  # where the figures come from (bot.traces.impact)


class TimelineEntry(_UtcModel):
    at: datetime
    kind: str
    actor: str | None = None
    text: str
    pinned: bool = False


class ActionRecord(_UtcModel):
    playbook: str
    params: dict[str, Any] = Field(default_factory=dict)
    requested_by: str | None = None
    approved_by: str | None = None
    status: str
    started_at: datetime | None = None
    duration_s: float | None = None
    verify: bool | str | None = None  # True/False from the playbook's verify step, or its own words


class BundleLineage(BaseModel):
    live_version: str | None = None
    live_components: dict[str, str] = Field(default_factory=dict)
    previous_version: str | None = None
    changed_components: list[str] = Field(default_factory=list)
    rolled_back_to: str | None = None


class TraceExample(BaseModel):
    request_id: str
    input: str
    output: str | None = None
    failure_types: list[str] = Field(default_factory=list)


class TraceSummary(BaseModel):
    counts: dict[str, int] = Field(default_factory=dict)
    examples: list[TraceExample] = Field(default_factory=list)

    @field_validator("examples")
    @classmethod
    def _at_most_five(cls, value: list[TraceExample]) -> list[TraceExample]:
        return value[:MAX_TRACE_EXAMPLES]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class PostmortemContext(BaseModel):
    incident: IncidentInfo
    impact: Impact = Field(default_factory=Impact)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    bundles: BundleLineage = Field(default_factory=BundleLineage)
    traces: TraceSummary = Field(default_factory=TraceSummary)
    followups: list[str] = Field(default_factory=list)
    eval_cases_added: int = Field(default=0, ge=0)
    eval_cases_updated: int | None = Field(default=None, ge=0)  # None: counted from an export, not the suite
    gate_passed: str | None = None  # the first gate of the service that passed after the incident opened
    summary: str | None = None  # a human's own words, when someone already wrote them
    response: Any = None  # bot.postmortem.response.ResponseFacts: changes, time to detect, automation

    @model_validator(mode="after")
    def _derive_missing_impact(self) -> PostmortemContext:
        # The incident's own timestamps are the source of truth when the caller did not compute these.
        inc, impact = self.incident, self.impact
        if impact.mtta is None and inc.acknowledged_at:
            impact.mtta = inc.acknowledged_at - inc.opened_at
        if impact.mttr is None and inc.resolved_at:
            impact.mttr = inc.resolved_at - inc.opened_at
        if impact.duration is None and (inc.resolved_at or inc.mitigated_at):
            impact.duration = (inc.resolved_at or inc.mitigated_at) - inc.opened_at  # type: ignore[operator]
        return self
