"""Prometheus counters for one app instance, in its own registry so tests can run many apps.

Every label set is created up front: a series that does not exist yet makes ratio queries
(errors / all) return nothing instead of 0, and burn-rate alerts then never fire or resolve.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from .answers import Answer
from .bundles import BUNDLES, ROUTES, TOOLS

SERVICE = "llm-gateway"
OUTCOMES = ("good", "hallucination", "schema_invalid", "tool_error")


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llm_requests", "Answers served, by bundle, model and status.",
            ["bundle", "model", "status"], registry=self.registry,
        )
        self.hallucinations = Counter(
            "llm_hallucination_flagged", "Answers whose hallucination score crossed the threshold.",
            ["bundle", "model"], registry=self.registry,
        )
        self.schema_invalid = Counter(
            "llm_schema_invalid", "Answers that broke their JSON contract.",
            ["bundle", "model"], registry=self.registry,
        )
        self.tool_calls = Counter(
            "llm_tool_calls", "Tool calls made while answering.", ["tool", "status"], registry=self.registry,
        )
        self.answers = Counter(
            "llm_answers", "Answers by outcome; the hallucination-rate SLO reads this.",
            ["service", "outcome"], registry=self.registry,
        )
        for bundle in BUNDLES:
            for model in ROUTES:
                for status in ("ok", "error"):
                    self.requests.labels(bundle, model, status)
                self.hallucinations.labels(bundle, model)
                self.schema_invalid.labels(bundle, model)
        for tool in TOOLS:
            for status in ("ok", "error"):
                self.tool_calls.labels(tool, status)
        for outcome in OUTCOMES:
            self.answers.labels(SERVICE, outcome)

    def record(self, bundle: str, model: str, answer: Answer) -> None:
        outcome = answer.outcome
        # Availability counts broken contracts and failed tools as errors; a fluent but wrong
        # answer is still "ok" here and is caught by the hallucination counters instead.
        status = "error" if outcome in ("schema_invalid", "tool_error") else "ok"
        self.requests.labels(bundle, model, status).inc()
        if outcome == "hallucination":
            self.hallucinations.labels(bundle, model).inc()
        if answer.schema_valid is False:
            self.schema_invalid.labels(bundle, model).inc()
        for call in answer.tool_calls:
            self.tool_calls.labels(call["name"], "ok" if call["ok"] else "error").inc()
        self.answers.labels(SERVICE, outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
