"""One LLM telemetry event, and the rules that decide whether it is a failure.

The LLM service sends whatever its tracing library emits; we keep the fields we reason
about typed and move everything else into ``attributes`` instead of rejecting the event,
so a new field on the sender's side never drops telemetry in the middle of an incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FAILURE_TYPES: tuple[str, ...] = (
    "hallucination",
    "schema_invalid",
    "tool_error",
    "latency",
    "cost",
    "negative_feedback",
    "missing_provenance",  # no rule detects it yet: a human's label says so (the eval case checks citations)
)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    ok: bool = True
    error: str | None = None


class TraceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=200)
    timestamp: datetime
    service: str = ""
    bundle_version: str | None = None
    model: str | None = None
    prompt_template_id: str | None = None
    prompt_hash: str | None = None
    input: str | list[dict[str, Any]] = ""
    output: str | None = None
    retrieval_ids: list[str] = Field(default_factory=list)
    citations: list[str] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    latency_ms: float | None = None
    tokens: int | None = None
    cost: float | None = None
    schema_valid: bool | None = None
    hallucination_score: float | None = Field(default=None, ge=0.0, le=1.0)
    user_feedback: Literal["positive", "negative"] | None = None
    expected: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _move_unknown_fields_to_attributes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = cls.model_fields
        if known.keys() >= data.keys():  # the usual event: a set comparison in C, no dict built
            return data
        unknown = {k: v for k, v in data.items() if k not in known}
        kept = {k: v for k, v in data.items() if k in known}
        kept["attributes"] = {**dict(data.get("attributes") or {}), **unknown}
        return kept

    @field_validator("timestamp")
    @classmethod
    def _naive_means_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @property
    def question(self) -> str:
        """The user's input as plain text: for a chat transcript, the last user turn."""
        return question_text(self.input)


def question_text(value: Any) -> str:
    """An event's ``input`` as plain text: a string as it is; of a chat transcript, the last user turn."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    messages = [m for m in value if isinstance(m, dict)]
    user_turns = [m for m in messages if m.get("role") == "user"]
    for message in reversed(user_turns or messages):
        content = _content_text(message.get("content"))
        if content:
            return content
    return ""


def _content_text(content: Any) -> str:
    # OpenAI-style content may be a list of parts ({"type": "text", "text": ...}).
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if p)
    return ""


@dataclass(frozen=True)
class FailureRules:
    """Thresholds that turn a trace into a failure; ``cost_budget=None`` switches the cost rule off."""

    hallucination_threshold: float = 0.5
    latency_ms_threshold: float = 2000.0
    cost_budget: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.hallucination_threshold <= 1.0:
            raise ValueError("hallucination_threshold must be between 0 and 1")
        if self.latency_ms_threshold <= 0:
            raise ValueError("latency_ms_threshold must be positive")
        if self.cost_budget is not None and self.cost_budget < 0:
            raise ValueError("cost_budget must not be negative")


def failure_types(trace: TraceEvent, rules: FailureRules = FailureRules()) -> list[str]:
    """Every way ``trace`` failed, in the fixed order of ``FAILURE_TYPES``; empty when it is healthy."""
    found: set[str] = set()
    if trace.hallucination_score is not None and trace.hallucination_score > rules.hallucination_threshold:
        found.add("hallucination")
    if trace.schema_valid is False:
        found.add("schema_invalid")
    if any(not call.ok or call.error for call in trace.tool_calls):
        found.add("tool_error")
    if trace.latency_ms is not None and trace.latency_ms > rules.latency_ms_threshold:
        found.add("latency")
    if rules.cost_budget is not None and trace.cost is not None and trace.cost > rules.cost_budget:
        found.add("cost")
    if trace.user_feedback == "negative":
        found.add("negative_feedback")
    return [kind for kind in FAILURE_TYPES if kind in found]
