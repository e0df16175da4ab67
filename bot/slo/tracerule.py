"""When one LLM trace counts as a bad event for an SLO the built-in watcher computes itself.

A rule compares one field of a telemetry event (``hallucination_score``, ``schema_valid``,
``latency_ms``, an evaluation score ``scores.<name>`` ...) with a value. ``any_not_ok`` is for lists of
tool calls: the event is bad when any call reports ``ok: false`` (or a ``status`` other than ``"ok"``).
A trace without the field says nothing about this SLO and is not bad. ``cites_no_retrieved`` is
provenance: an answer that retrieved documents is bad when none of its ``citations`` is one of them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
OPERATORS = (*_COMPARE, "any_not_ok", "cites_no_retrieved")
NO_VALUE_OPERATORS = ("any_not_ok", "cites_no_retrieved")
# Top-level fields of a stored trace event; any other name lives under ``attributes`` (where the
# event model moves unknown fields, and where OTLP ingest puts ``status`` and ``scores``).
EVENT_FIELDS = frozenset({"request_id", "timestamp", "service", "bundle_version", "model", "prompt_template_id",
                          "prompt_hash", "input", "output", "retrieval_ids", "citations", "tool_calls", "latency_ms",
                          "tokens", "cost", "schema_valid", "hallucination_score", "user_feedback", "expected",
                          "attributes"})


def field_path(name: str) -> tuple[str, ...]:
    """Where a rule's field is in a stored event: ``scores.relevance`` is an evaluation score
    (``attributes.scores.relevance``), ``attributes.x.y`` is spelled out, ``status`` and other
    names that are not event fields are attributes."""
    parts = tuple(name.split("."))
    if parts[0] == "scores":
        return ("attributes", *parts)
    if parts[0] in EVENT_FIELDS:
        return parts
    return ("attributes", *parts)


@dataclass(frozen=True)
class TraceRule:
    field: str
    op: str
    value: Any = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The event fields the rule reads (the watcher loads only these)."""
        return (self.field, "retrieval_ids") if self.op == "cites_no_retrieved" else (self.field,)

    def applies(self, event: Mapping[str, Any]) -> bool:
        """Whether the event says anything about this SLO (it carries the field; for provenance:
        it retrieved at least one document, so it could cite one)."""
        if self.op == "cites_no_retrieved":
            return bool(event.get("retrieval_ids"))
        return event.get(self.field) is not None

    def is_bad(self, event: Mapping[str, Any]) -> bool:
        if not self.applies(event):
            return False
        observed = event[self.field]
        if self.op == "any_not_ok":
            return isinstance(observed, list) and any(_call_failed(call) for call in observed)
        if self.op == "cites_no_retrieved":
            retrieved = {str(d) for d in event.get("retrieval_ids") or []}
            return not any(str(c) in retrieved for c in (observed if isinstance(observed, list) else []))
        try:
            return bool(_COMPARE[self.op](observed, self.value))
        except TypeError:  # a string where a number belongs: not evidence of a bad answer
            return False

    def outcomes(self, rows: Iterable[tuple[T, Mapping[str, Any]]]) -> list[tuple[T, bool]]:
        """``(key, is_bad(event))`` for each row whose event the rule `applies` to, in order.

        The same verdicts as calling both per row; a comparison rule, the usual kind, is decided
        here in one loop (the sensors' first round runs it over a month of traces)."""
        compare = _COMPARE.get(self.op)
        if compare is None:
            return [(key, self.is_bad(event)) for key, event in rows if self.applies(event)]
        name, value = self.field, self.value
        decided: list[tuple[T, bool]] = []
        for key, event in rows:
            observed = event.get(name)
            if observed is None:
                continue
            try:
                decided.append((key, bool(compare(observed, value))))
            except TypeError:  # as in is_bad: a string where a number belongs is not bad
                decided.append((key, False))
        return decided

    def __str__(self) -> str:
        if self.op == "any_not_ok":
            return f"any {self.field} not ok"
        if self.op == "cites_no_retrieved":
            return f"no {self.field} among retrieval_ids"
        return f"{self.field} {self.op} {self.value!r}"


def _call_failed(call: Any) -> bool:
    if not isinstance(call, Mapping):
        return False
    if "ok" in call:
        return call["ok"] is False
    return "status" in call and call["status"] != "ok"


def default_trace_rule(
    sli: str, *, threshold_ms: float | None = None, budget: float | None = None
) -> TraceRule | None:
    """The rule used when an SLO names its SLI type but no ``trace`` rule of its own."""
    if sli == "hallucination_rate":
        return TraceRule("hallucination_score", ">", 0.5)
    if sli == "schema_valid_rate":
        return TraceRule("schema_valid", "==", False)
    if sli == "tool_call_success":
        return TraceRule("tool_calls", "any_not_ok")
    if sli == "provenance_coverage":
        return TraceRule("citations", "cites_no_retrieved")
    if sli == "error_rate":
        return TraceRule("status", "!=", "ok")
    if sli == "latency_over_threshold" and threshold_ms is not None:
        return TraceRule("latency_ms", ">", threshold_ms)
    if sli == "cost_over_budget" and budget is not None:
        return TraceRule("cost", ">", budget)
    return None
