"""Export each answer as OpenTelemetry GenAI spans over OTLP/HTTP, with the real SDK and exporter.

This is what a team that already uses OpenTelemetry sends: a ``chat`` span with the GenAI
semantic conventions, one ``execute_tool`` child per tool call, and ``gen_ai.evaluation.result``
events for the grader's verdicts (hallucination score, schema check). The conventions' two
generations are both spoken, chosen the way instrumentations choose: the latest names
(``gen_ai.provider.name``, ``gen_ai.input.messages``) with
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``, the 1.36 names otherwise.
Message content is sent unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false``
(the conventions' default is off; the demo wants the postmortem to quote the answers).

The bundle is the resource's ``service.version``: a deploy is a new process in real life, so
each bundle gets its own tracer provider (and exporter) here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from .metrics import SERVICE

Encoding = Literal["protobuf", "json"]
PROVIDER = "example-llm"


def semconv_latest() -> bool:
    return "gen_ai_latest_experimental" in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "")


def capture_content() -> bool:
    return os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true").lower() != "false"


def make_exporter(endpoint: str, token: str | None, encoding: Encoding) -> SpanExporter:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if encoding == "json":
        from opentelemetry.exporter.otlp.common.http import (
            Compression as JsonCompression,
        )
        from opentelemetry.exporter.otlp.json.http.trace_exporter import (
            OTLPSpanExporter as JsonExporter,
        )

        return JsonExporter(endpoint=endpoint, headers=headers, compression=JsonCompression.GZIP)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=headers, compression=Compression.Gzip)


def _ns(timestamp: Any) -> int | None:
    """The event's ISO timestamp in ns (a replayed answer keeps its time), or None."""
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return None


class OtelShipper:
    """Takes the service's trace events (`traces.trace_event`) and emits them as GenAI spans."""

    def __init__(self, warroom_url: str, token: str | None, *, encoding: Encoding = "protobuf",
                 interval: float = 1.0, exporter: SpanExporter | None = None) -> None:
        self.endpoint = warroom_url.rstrip("/") + "/v1/traces"
        self.token = token
        self.encoding = encoding
        self.interval = interval
        self._exporter = exporter
        self._providers: dict[str, TracerProvider] = {}
        self._lock = threading.Lock()

    def start(self) -> None:  # the batch processors start their own threads
        pass

    def stop(self) -> None:
        with self._lock:
            providers = list(self._providers.values())
        for provider in providers:
            provider.shutdown()  # flushes what is buffered: a clean shutdown loses nothing

    def flush(self) -> bool:
        with self._lock:
            providers = list(self._providers.values())
        return all(provider.force_flush(10_000) for provider in providers)

    def _provider(self, bundle: str) -> TracerProvider:
        with self._lock:
            provider = self._providers.get(bundle)
            if provider is None:
                provider = TracerProvider(resource=Resource.create({"service.name": SERVICE,
                                                                    "service.version": bundle}))
                exporter = self._exporter or make_exporter(self.endpoint, self.token, self.encoding)
                provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=self.interval * 1000))
                self._providers[bundle] = provider
            return provider

    def submit(self, event: Mapping[str, Any]) -> None:
        tracer = self._provider(str(event["bundle_version"])).get_tracer("examples.llm_service")
        latest = semconv_latest()
        model = str(event["model"])
        end = _ns(event.get("timestamp")) or time.time_ns()
        start = end - int(float(event.get("latency_ms") or 0) * 1e6)
        span = tracer.start_span(f"chat {model}", start_time=start)
        span.set_attributes({
            "gen_ai.operation.name": "chat",
            ("gen_ai.provider.name" if latest else "gen_ai.system"): PROVIDER,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": int(event.get("tokens") or 0),
            "gen_ai.usage.output_tokens": 0,
            "gen_ai.response.finish_reasons": ["stop"],
            "warroom.request_id": str(event["request_id"]),
            "warroom.prompt_template_id": str(event.get("prompt_template_id") or ""),
            "warroom.prompt_hash": str(event.get("prompt_hash") or ""),
            "warroom.retrieval_ids": [str(d) for d in event.get("retrieval_ids") or []],
            "warroom.citations": [str(c) for c in event.get("citations") or []],
            "warroom.cost": float(event.get("cost") or 0.0),
        })
        if capture_content():
            self._content(span, str(event.get("input") or ""), str(event.get("output") or ""), latest)
        self._tools(tracer, span, event.get("tool_calls") or [], start, end)
        span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "hallucination",
                                                    "gen_ai.evaluation.score.value": float(event["hallucination_score"])})
        if event.get("schema_valid") is not None:
            span.add_event("gen_ai.evaluation.result", {
                "gen_ai.evaluation.name": "schema_valid",
                "gen_ai.evaluation.score.value": 1.0 if event["schema_valid"] else 0.0,
                "gen_ai.evaluation.score.label": "pass" if event["schema_valid"] else "fail"})
        span.end(end_time=end)

    @staticmethod
    def _content(span: Any, question: str, answer: str, latest: bool) -> None:
        if latest:
            span.set_attribute("gen_ai.input.messages", json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": question}]}]))
            span.set_attribute("gen_ai.output.messages", json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}]))
        else:
            span.add_event("gen_ai.user.message", {"gen_ai.system": PROVIDER, "content": question})
            span.add_event("gen_ai.choice", {"gen_ai.system": PROVIDER, "index": 0, "finish_reason": "stop",
                                             "message": json.dumps({"role": "assistant", "content": answer})})

    @staticmethod
    def _tools(tracer: Any, parent: Any, calls: list[Any], start: int, end: int) -> None:
        from opentelemetry.trace import set_span_in_context

        context = set_span_in_context(parent)
        step = (end - start) // (len(calls) + 1) if calls else 0
        for index, call in enumerate(calls):
            name = str(call.get("name"))
            tool = tracer.start_span(f"execute_tool {name}", context=context, start_time=start + index * step)
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name})
            if not call.get("ok", True):
                tool.set_attribute("error.type", "ToolError")
                tool.set_status(Status(StatusCode.ERROR, str(call.get("error") or "tool failed")))
            tool.end(end_time=start + (index + 1) * step)
