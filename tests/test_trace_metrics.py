"""Trace counters keep their label sets bounded: senders choose bundle and model names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from bot.traces.metrics import OTHER, TraceMetrics
from bot.traces.rules import TraceEvent


def event(bundle: str, model: str = "m") -> TraceEvent:
    return TraceEvent.model_validate({"request_id": bundle, "timestamp": "2026-03-14T02:00:00Z",
                                      "service": "llm-gateway", "bundle_version": bundle, "model": model})


def test_label_sets_past_the_cap_are_counted_as_other():
    registry = CollectorRegistry()
    metrics = TraceMetrics(registry, max_series=2)
    metrics.record([(event("v1"), []), (event("v2"), ["hallucination"]), (event("v3"), []), (event("v4"), [])])
    ok = {(sample.labels["bundle"], sample.labels["model"]): sample.value
          for family in registry.collect() for sample in family.samples
          if sample.name == "warroom_llm_traces_total" and sample.labels["outcome"] == "ok"}
    assert ok == {("v1", "m"): 1.0, (OTHER, OTHER): 2.0}
    assert registry.get_sample_value("warroom_llm_trace_failures_total", {
        "service": "llm-gateway", "bundle": "v2", "model": "m", "failure_type": "hallucination"}) == 1.0
