"""When one LLM trace counts as a bad event for an SLO the built-in watcher computes itself.

A rule compares one field of a telemetry event (``hallucination_score``, ``schema_valid``,
``latency_ms`` ...) with a value. ``any_not_ok`` is for lists of tool calls: the event is bad when
any call reports ``ok: false`` (or a ``status`` other than ``"ok"``). A trace without the field
says nothing about this SLO and is not bad.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
OPERATORS = (*_COMPARE, "any_not_ok")


@dataclass(frozen=True)
class TraceRule:
    field: str
    op: str
    value: Any = None

    def applies(self, event: Mapping[str, Any]) -> bool:
        """Whether the event says anything about this SLO (it carries the field)."""
        return event.get(self.field) is not None

    def is_bad(self, event: Mapping[str, Any]) -> bool:
        if not self.applies(event):
            return False
        observed = event[self.field]
        if self.op == "any_not_ok":
            return isinstance(observed, list) and any(_call_failed(call) for call in observed)
        try:
            return bool(_COMPARE[self.op](observed, self.value))
        except TypeError:  # a string where a number belongs: not evidence of a bad answer
            return False

    def __str__(self) -> str:
        if self.op == "any_not_ok":
            return f"any {self.field} not ok"
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
    if sli == "error_rate":
        return TraceRule("status", "!=", "ok")
    if sli == "latency_over_threshold" and threshold_ms is not None:
        return TraceRule("latency_ms", ">", threshold_ms)
    if sli == "cost_over_budget" and budget is not None:
        return TraceRule("cost", ">", budget)
    return None
