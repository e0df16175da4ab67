"""GenAI spans made with the real OpenTelemetry SDK, encoded as its OTLP exporters encode them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.json.common.trace_encoder import (
    encode_spans as encode_json,
)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as encode_protobuf,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode


class Recorder:
    """A tracer provider for one service and bundle whose finished spans are kept in memory."""

    def __init__(self, service: str = "llm-gateway", bundle: str = "b-42", **resource: str) -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": bundle,
                                                                 **resource}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("tests.otlp")

    def spans(self) -> Sequence[ReadableSpan]:
        return self.memory.get_finished_spans()

    def answer(self, *, latest: bool = True, question: str | None = "What is the refund window?",
               output: str | None = "30 days.", model: str = "primary-70b", hallucination: float | None = None,
               schema_valid: bool | None = None, scores: dict[str, float] | None = None,
               tools: Sequence[tuple[str, bool]] = (), error: str | None = None,
               input_tokens: int = 12, output_tokens: int = 30) -> ReadableSpan:
        """One chat answer as an instrumentation emits it: the latest conventions or the 1.36 ones."""
        provider_key = "gen_ai.provider.name" if latest else "gen_ai.system"
        with self.tracer.start_as_current_span(f"chat {model}") as span:
            span.set_attributes({"gen_ai.operation.name": "chat", provider_key: "openai",
                                 "gen_ai.request.model": model, "gen_ai.response.model": model + "-0613",
                                 "gen_ai.usage.input_tokens": input_tokens,
                                 "gen_ai.usage.output_tokens": output_tokens,
                                 "gen_ai.response.finish_reasons": ["stop"], "gen_ai.conversation.id": "conv-7"})
            if question is not None:
                if latest:
                    span.set_attribute("gen_ai.input.messages", json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}]))
                else:
                    span.add_event("gen_ai.user.message", {"gen_ai.system": "openai", "content": question})
            if output is not None:
                if latest:
                    span.set_attribute("gen_ai.output.messages", json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": output}],
                          "finish_reason": "stop"}]))
                else:
                    span.add_event("gen_ai.choice", {"gen_ai.system": "openai", "index": 0, "finish_reason": "stop",
                                                     "message": json.dumps({"role": "assistant", "content": output})})
            for name, ok in tools:
                with self.tracer.start_as_current_span(f"execute_tool {name}") as tool:
                    tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name})
                    if not ok:
                        tool.set_attribute("error.type", "TimeoutError")
                        tool.set_status(Status(StatusCode.ERROR, f"{name} timed out"))
            evaluations = dict(scores or {})
            if hallucination is not None:
                evaluations["hallucination"] = hallucination
            for name, value in evaluations.items():
                span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": name,
                                                            "gen_ai.evaluation.score.value": value})
            if schema_valid is not None:
                span.add_event("gen_ai.evaluation.result", {
                    "gen_ai.evaluation.name": "schema_valid",
                    "gen_ai.evaluation.score.label": "pass" if schema_valid else "fail"})
            if error is not None:
                span.set_attribute("error.type", error)
                span.set_status(Status(StatusCode.ERROR, error))
        return self.spans()[-1]


def protobuf_body(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_protobuf(spans).SerializeToString()


def json_body(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_json(spans).to_json().encode()


def request_id(span: ReadableSpan) -> str:
    context = span.get_span_context()
    return f"{context.trace_id:032x}-{context.span_id:016x}"


def as_dict(body: bytes) -> dict[str, Any]:
    return json.loads(body)
