"""GenAI spans (OpenTelemetry semantic conventions, ``gen_ai.*``) as warroom trace events.

Both generations of the conventions are read, since instrumentations emit the 1.36 names unless
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``:

* 1.36: ``gen_ai.system``; content in span events ``gen_ai.user.message`` / ``gen_ai.system.message``
  / ``gen_ai.choice`` (or the older ``gen_ai.content.prompt`` / ``gen_ai.content.completion``
  events and the flattened ``gen_ai.prompt.N.content`` attributes some libraries write);
* latest: ``gen_ai.provider.name``; content in ``gen_ai.input.messages`` / ``gen_ai.output.messages``
  (a JSON string or a structured value).

One trace event per *answer*: the top-most GenAI operation span (``chat``, ``invoke_agent`` ...)
of its trace in the request. Its ``execute_tool`` descendants become tool calls, its
``gen_ai.evaluation.result`` span events (on it or a descendant) become scores. Spans that are
not GenAI operations (HTTP server spans and the like) are accepted and not stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bot.otlp.decode import OtelSpan, parse_json

TOOL_OPERATION = "execute_tool"
RETRIEVAL_OPERATIONS = frozenset({"retrieval", "retrieve"})
# Not answers: an embeddings call or a tool run alone is not something a user saw.
NOT_ANSWERS = frozenset({TOOL_OPERATION, "embeddings", "create_agent", *RETRIEVAL_OPERATIONS})
EVALUATION_EVENT = "gen_ai.evaluation.result"
CONTENT_OFF = ("message content was not captured by the instrumentation (the GenAI conventions leave it "
               "off by default; set OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true to send it)")
# Evaluation names that fill warroom's own fields; every other name is kept under ``scores``.
DEFAULT_SCORE_FIELDS = {"hallucination": "hallucination_score", "schema_valid": "schema_valid"}
_TRUE_LABELS = frozenset({"pass", "passed", "true", "valid", "yes", "ok"})
_FALSE_LABELS = frozenset({"fail", "failed", "false", "invalid", "no"})


@dataclass(frozen=True)
class MappingOptions:
    bundle_attribute: str = "service.version"  # resource attribute naming the release bundle
    score_fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SCORE_FIELDS))


@dataclass
class Mapped:
    events: list[dict[str, Any]] = field(default_factory=list)
    orphans: int = 0  # tool or evaluation spans whose answer span was not in the request
    ignored: int = 0  # spans that are not GenAI operations
    rejected: list[str] = field(default_factory=list)  # answer spans that cannot be events, and why

    def warning(self) -> str:
        return orphans_warning(self.orphans)


def orphans_warning(orphans: int) -> str:
    """What the export's answer says of tool and evaluation spans that came without their answer."""
    if not orphans:
        return ""
    return (f"{orphans} execute_tool or evaluation span(s) arrived without their GenAI answer span "
            "in the same request and were not attached to an answer")


def is_genai(span: OtelSpan) -> bool:
    attrs = span.attributes
    return ("gen_ai.operation.name" in attrs or "gen_ai.system" in attrs or "gen_ai.provider.name" in attrs)


def operation(span: OtelSpan) -> str:
    return str(span.attributes.get("gen_ai.operation.name") or "")


def map_spans(spans: Iterable[OtelSpan], options: MappingOptions | None = None) -> Mapped:
    options = options or MappingOptions()
    spans = list(spans)
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    children: dict[tuple[str, str], list[OtelSpan]] = {}
    for span in spans:
        if span.parent_span_id:
            children.setdefault((span.trace_id, span.parent_span_id), []).append(span)
    mapped = Mapped()
    attached: set[tuple[str, str]] = set()
    for span in spans:
        if not is_answer(span) or _has_answer_ancestor(span, by_id):
            continue
        if span.start_ns <= 0:
            # Without a start time the answer would be filed in 1970: outside every window and pruned.
            mapped.rejected.append(f"span {span.trace_id}-{span.span_id}: startTimeUnixNano is missing")
            continue
        descendants = sorted(_descendants(span, children), key=lambda d: d.start_ns)  # tool calls in order
        attached.update((d.trace_id, d.span_id) for d in descendants)
        mapped.events.append(to_event(span, descendants, options))
    for span in spans:
        key = (span.trace_id, span.span_id)
        if is_answer(span) or key in attached:
            continue
        if operation(span) == TOOL_OPERATION or any(e.name == EVALUATION_EVENT for e in span.events):
            mapped.orphans += 1
        else:
            mapped.ignored += 1
    return mapped


def is_answer(span: OtelSpan) -> bool:
    return is_genai(span) and operation(span) not in NOT_ANSWERS


def _has_answer_ancestor(span: OtelSpan, by_id: Mapping[tuple[str, str], OtelSpan]) -> bool:
    seen = 0
    parent = by_id.get((span.trace_id, span.parent_span_id)) if span.parent_span_id else None
    while parent is not None and seen < 1000:  # a cycle in a hostile request must not loop forever
        if is_answer(parent):
            return True
        seen += 1
        parent = by_id.get((parent.trace_id, parent.parent_span_id)) if parent.parent_span_id else None
    return False


def _descendants(span: OtelSpan, children: Mapping[tuple[str, str], list[OtelSpan]]) -> Iterable[OtelSpan]:
    stack = list(children.get((span.trace_id, span.span_id), ()))
    seen: set[str] = set()
    while stack:
        child = stack.pop()
        if child.span_id in seen:
            continue
        seen.add(child.span_id)
        yield child
        stack.extend(children.get((child.trace_id, child.span_id), ()))


def to_event(span: OtelSpan, descendants: list[OtelSpan], options: MappingOptions) -> dict[str, Any]:
    """The warroom trace event (the ``POST /api/traces`` shape) of one answer span."""
    attrs = span.attributes
    latest = "gen_ai.provider.name" in attrs or "gen_ai.input.messages" in attrs or "gen_ai.output.messages" in attrs
    extra: dict[str, Any] = {
        "otel": {"trace_id": span.trace_id, "span_id": span.span_id, "span_name": span.name,
                 "semconv": "latest" if latest else "1.36"},
        "status": "error" if span.failed or attrs.get("error.type") else "ok",
    }
    for name in ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.response.id",
                 "gen_ai.response.finish_reasons", "gen_ai.conversation.id", "gen_ai.agent.name", "error.type",
                 "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
        if attrs.get(name) is not None:
            extra[name] = attrs[name]
    provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
    if provider is not None:
        extra["gen_ai.provider.name"] = provider
    if span.failed and span.status_message:
        extra["status_message"] = span.status_message

    event: dict[str, Any] = {
        "request_id": f"{span.trace_id}-{span.span_id}",
        "timestamp": datetime.fromtimestamp(span.start_ns / 1e9, tz=timezone.utc).isoformat(),
        "service": str(span.resource.get("service.name") or "unknown_service"),
        "model": _text(attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")),
        "latency_ms": max(span.end_ns - span.start_ns, 0) / 1e6 if span.end_ns else None,
        "tool_calls": [_tool_call(d) for d in descendants if operation(d) == TOOL_OPERATION],
    }
    # warroom.* attributes: what the GenAI conventions have no name for (see README, "OTLP ingest").
    given_id = attrs.get("warroom.request_id")
    if isinstance(given_id, str) and given_id:
        event["request_id"] = given_id
    for name in ("prompt_template_id", "prompt_hash"):
        if isinstance(attrs.get(f"warroom.{name}"), str):
            event[name] = attrs[f"warroom.{name}"]
    cost = attrs.get("warroom.cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        event["cost"] = float(cost)
    bundle = span.resource.get(options.bundle_attribute)
    if bundle is not None:
        event["bundle_version"] = str(bundle)
    tokens = _tokens(attrs)
    if tokens is None:
        tokens = _sum_tokens(descendants)
    if tokens is not None:
        event["tokens"] = tokens
    question, answer = _input(span), _output(span)
    if question:
        event["input"] = question
    else:
        extra["input_missing"] = CONTENT_OFF
    if answer is not None:
        event["output"] = answer
    retrieval = _strings(attrs.get("warroom.retrieval_ids")) + [
        doc for d in descendants if operation(d) in RETRIEVAL_OPERATIONS for doc in _documents(d)]
    if retrieval:
        event["retrieval_ids"] = retrieval
    citations = _strings(attrs.get("warroom.citations"))
    if citations:
        event["citations"] = citations
    _apply_evaluations(event, extra, [span, *descendants], options)
    event["attributes"] = extra
    return event


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _tokens(attrs: Mapping[str, Any]) -> int | None:
    parts = [attrs.get(k) for k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                                    "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens")]
    numbers = [int(p) for p in parts if isinstance(p, int | float) and not isinstance(p, bool)]
    return sum(numbers) if numbers else None


def _sum_tokens(spans: Iterable[OtelSpan]) -> int | None:
    # An agent span often carries no usage of its own; its model calls do.
    counts = [t for s in spans if is_answer(s) and (t := _tokens(s.attributes)) is not None]
    return sum(counts) if counts else None


def _tool_call(span: OtelSpan) -> dict[str, Any]:
    error = span.attributes.get("error.type")
    failed = span.failed or error is not None
    call: dict[str, Any] = {"name": str(span.attributes.get("gen_ai.tool.name") or span.name), "ok": not failed}
    if failed:
        call["error"] = span.status_message or str(error or "error")
    return call


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return []


def _documents(span: OtelSpan) -> list[str]:
    docs = _maybe_json(span.attributes.get("gen_ai.retrieval.documents"))
    if isinstance(docs, list):
        return [str(d.get("id")) if isinstance(d, dict) else str(d) for d in docs if d is not None]
    return _strings(span.attributes.get("warroom.retrieval_ids"))


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return parse_json(value)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser: text as it is
            return value
    return value


_MESSAGE_KEYS = frozenset({"role", "content", "parts", "text"})


def _structured(value: Any) -> Any:
    """An attribute that may hold messages or parts serialised as JSON (instrumentations put
    structures in string attributes), decoded when it does. Text that merely parses as JSON (an
    answer asked for as JSON) is not a message: it stays the text it is."""
    decoded = _maybe_json(value)
    if decoded is value:
        return value
    items = decoded if isinstance(decoded, list) else [decoded]
    if items and all(isinstance(item, dict) and not _MESSAGE_KEYS.isdisjoint(item) for item in items):
        return decoded
    return value


# --- content ---------------------------------------------------------------------------------


def _input(span: OtelSpan) -> str | list[dict[str, Any]]:
    latest = _messages(_maybe_json(span.attributes.get("gen_ai.input.messages")))
    if latest:
        return latest
    from_events = [m for e in span.events if (m := _event_message(e.name, e.attributes)) is not None]
    if from_events:
        return from_events
    legacy = _structured(span.attributes.get("gen_ai.prompt"))
    if isinstance(legacy, list):
        return _messages(legacy)
    if isinstance(legacy, str) and legacy:
        return legacy
    return _flattened(span.attributes, "gen_ai.prompt")


def _output(span: OtelSpan) -> str | None:
    latest = _messages(_maybe_json(span.attributes.get("gen_ai.output.messages")))
    if latest:
        return "\n".join(str(m.get("content") or "") for m in latest).strip() or None
    for e in span.events:
        if e.name in ("gen_ai.choice", "gen_ai.content.completion"):
            text = _content_of(_structured(e.attributes.get("message"))) \
                or _content_of(_structured(e.attributes.get("content"))) \
                or _content_of(_structured(e.attributes.get("gen_ai.completion")))
            if text:
                return text
    legacy = _structured(span.attributes.get("gen_ai.completion"))
    if isinstance(legacy, list):
        texts = [_content_of(m) for m in legacy]
        return "\n".join(t for t in texts if t) or None
    if isinstance(legacy, str) and legacy:
        return legacy
    flat = _flattened(span.attributes, "gen_ai.completion")
    return "\n".join(str(m["content"]) for m in flat) or None if flat else None


_ROLE_OF_EVENT = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _event_message(name: str, attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    if name in _ROLE_OF_EVENT:
        content = _content_of(_structured(attrs.get("content"))) or _content_of(_structured(attrs.get("message")))
        return {"role": _ROLE_OF_EVENT[name], "content": content} if content else None
    if name == "gen_ai.content.prompt":
        prompt = _structured(attrs.get("gen_ai.prompt"))
        if isinstance(prompt, str) and prompt:
            return {"role": "user", "content": prompt}
        messages = _messages(prompt)
        return messages[-1] if messages else None
    return None


def _messages(value: Any) -> list[dict[str, Any]]:
    """``[{role, content: text}]`` from the latest ``[{role, parts: [{type, content}]}]`` shape or
    the older ``[{role, content}]`` (already decoded from its attribute's JSON); anything else is
    no messages."""
    if not isinstance(value, list):
        return []
    out = []
    for message in value:
        if not isinstance(message, dict):
            continue
        text = _content_of(message.get("parts")) or _content_of(message.get("content"))
        if text:
            out.append({"role": str(message.get("role") or "user"), "content": text})
    return out


def _content_of(value: Any) -> str:
    """The text of a message, a part or a list of parts. A string is text as it is, never decoded
    again: a part's content that parses as JSON is still the words of the question or answer."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _content_of(value.get("content") if "content" in value else value.get("text"))
    if isinstance(value, list):  # parts: keep the text ones (images, tool calls say nothing here)
        texts = [_content_of(p) for p in value
                 if not isinstance(p, dict) or p.get("type") in (None, "text")]
        return "\n".join(t for t in texts if t)
    return ""


def _flattened(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    # "gen_ai.prompt.0.role" / "gen_ai.prompt.0.content", as some instrumentations write.
    messages: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix + "."):
            continue
        index, _, part = key[len(prefix) + 1:].partition(".")
        if index.isdigit() and part in ("role", "content"):
            messages.setdefault(int(index), {})[part] = value
    return [{"role": str(m.get("role") or "user"), "content": str(m["content"])}
            for _, m in sorted(messages.items()) if m.get("content")]


# --- evaluations ------------------------------------------------------------------------------


def _apply_evaluations(event: dict[str, Any], extra: dict[str, Any], spans: list[OtelSpan],
                       options: MappingOptions) -> None:
    scores: dict[str, float] = {}
    labels: dict[str, str] = {}
    for span in spans:
        for e in span.events:
            if e.name != EVALUATION_EVENT:
                continue
            name = e.attributes.get("gen_ai.evaluation.name")
            if not isinstance(name, str) or not name:
                continue
            value = e.attributes.get("gen_ai.evaluation.score.value")
            label = e.attributes.get("gen_ai.evaluation.score.label")
            if isinstance(value, int | float) and not isinstance(value, bool):
                scores[name] = float(value)
            if label is not None:
                labels[name] = str(label)
            target = options.score_fields.get(name)
            if target == "hallucination_score" and name in scores and 0.0 <= scores[name] <= 1.0:
                event["hallucination_score"] = scores[name]
            elif target == "schema_valid":
                verdict = _verdict(scores.get(name), labels.get(name))
                if verdict is not None:
                    event["schema_valid"] = verdict
    if scores:
        extra["scores"] = scores
    if labels:
        extra["score_labels"] = labels


def _verdict(value: float | None, label: str | None) -> bool | None:
    if label is not None and label.lower() in _TRUE_LABELS:
        return True
    if label is not None and label.lower() in _FALSE_LABELS:
        return False
    if value is not None:
        return value >= 0.5
    return None
