"""OTLP/HTTP export requests (protobuf or JSON, optionally gzip) decoded into plain spans.

Both encodings end up as the same `OtelSpan` records, so the GenAI mapping sees one shape. A body
that is not an export request at all is a `BadRequest` (400, 415); a span that is malformed on its
own (a trace id of the wrong length) is only counted in `Decoded.rejected`, as OTLP's partial
success wants: the rest of the request is still used.

A large request can be decoded in shares (`Share`), one per worker process (`bot.otlp.pool`): each
decode reads the whole body but makes spans only of the traces in its share, the costly part. A
trace is never split, since its spans are mapped together (tool calls, evaluations).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from bot.jsonbody import BadRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
STATUS_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass
class OtelSpan:
    trace_id: str  # lowercase hex, as OTLP/JSON writes it
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: list[SpanEvent]
    resource: Mapping[str, Any]  # shared by every span of one ResourceSpans

    @property
    def failed(self) -> bool:
        return self.status_code == STATUS_ERROR


@dataclass
class Decoded:
    spans: list[OtelSpan] = field(default_factory=list)
    rejected: int = 0
    problems: list[str] = field(default_factory=list)  # why spans were rejected (a few examples)

    def reject(self, why: str) -> None:
        self.rejected += 1
        if len(self.problems) < 5:
            self.problems.append(why)


@dataclass(frozen=True)
class Share:
    """Part ``part`` of ``parts`` of a request's traces, split by trace id: every span falls in
    exactly one part, whatever its id (a malformed one too), and every process agrees on it (CRC-32,
    not Python's per-process ``hash``)."""

    part: int = 0
    parts: int = 1

    def holds(self, trace_id: str) -> bool:
        return self.parts == 1 or zlib.crc32(trace_id.encode("utf-8", "replace")) % self.parts == self.part


WHOLE = Share()


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def decompress(raw: bytes, content_encoding: str, limit: int) -> bytes:
    """The body without its ``Content-Encoding``; at most ``limit`` bytes once inflated (a small gzip
    body can inflate to gigabytes, so the limit is enforced while inflating, not after)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(415, f"Content-Encoding {content_encoding!r} is not supported; use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BadRequest(400, f"body is not valid {encoding} data: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BadRequest(413, f"body is larger than the limit of {limit} bytes once decompressed")
    if not inflater.eof:
        raise BadRequest(400, f"body is not valid {encoding} data: it is cut short")
    return out


def decode_request(body: bytes, content_type: str, share: Share = WHOLE) -> Decoded:
    """The spans of ``share`` of the request's traces (all of them by default)."""
    kind = media_type(content_type)
    if kind == PROTOBUF:
        return _from_protobuf(body, share)
    if kind == JSON:
        return _from_json(body, share)
    raise BadRequest(415, f"Content-Type {content_type or '(none)'!r} is not supported; "
                          f"send OTLP as {PROTOBUF} or {JSON}")


# --- protobuf ------------------------------------------------------------------------------


def _from_protobuf(body: bytes, share: Share) -> Decoded:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError) as exc:
        raise BadRequest(400, f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    decoded = Decoded()
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id = span.trace_id.hex()
                if not share.holds(trace_id):
                    continue
                span_id = span.span_id.hex()
                problem = _id_problem(trace_id, span_id, span.parent_span_id.hex())
                if problem:
                    decoded.reject(f"span {span.name!r}: {problem}")
                    continue
                decoded.spans.append(OtelSpan(
                    trace_id=trace_id, span_id=span_id, parent_span_id=span.parent_span_id.hex(), name=span.name,
                    start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
                    status_code=span.status.code, status_message=span.status.message,
                    attributes=_pb_attributes(span.attributes),
                    events=[SpanEvent(e.name, e.time_unix_nano, _pb_attributes(e.attributes)) for e in span.events],
                    resource=resource))
    return decoded


def _pb_attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    return {pair.key: _pb_value(pair.value) for pair in pairs}


def _pb_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


# --- JSON ----------------------------------------------------------------------------------
# OTLP/JSON is protobuf's JSON mapping with two exceptions: trace and span ids are hex, not
# base64, and enums are integers. 64-bit integers may come as strings. Keys are lowerCamelCase;
# the original snake_case names are accepted too, as protobuf's own JSON parser does.


def _from_json(body: bytes, share: Share) -> Decoded:
    try:
        data = parse_json(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(400, f"body is a JSON {type(data).__name__}; expected an ExportTraceServiceRequest object "
                              "with 'resourceSpans'")
    decoded = Decoded()
    for r_index, resource_spans in enumerate(_list(data, "resourceSpans", "resource_spans", "$")):
        where = f"resourceSpans[{r_index}]"
        _object(resource_spans, where)
        try:
            resource = _json_attributes(_get(_get(resource_spans, "resource") or {}, "attributes"),
                                        f"{where}.resource")
        except (TypeError, ValueError, RecursionError) as exc:
            # Every span of the resource would lack its service: the request is malformed as a whole.
            raise BadRequest(400, f"{where}.resource.attributes: {str(exc) or 'nested too deeply'}") from None
        for s_index, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans", where)):
            scope_where = f"{where}.scopeSpans[{s_index}]"
            _object(scope_spans, scope_where)
            for index, span in enumerate(_list(scope_spans, "spans", "spans", scope_where)):
                if not share.holds(_json_trace_id(span)):
                    continue
                span_where = f"{scope_where}.spans[{index}]"
                try:
                    decoded.spans.append(_json_span(span, span_where, resource))
                except _SpanProblem as exc:
                    decoded.reject(str(exc))
    return decoded


class _SpanProblem(ValueError):
    pass


def _json_span(span: Any, where: str, resource: Mapping[str, Any]) -> OtelSpan:
    if not isinstance(span, dict):
        raise _SpanProblem(f"{where}: expected an object")
    trace_id = _json_trace_id(span)
    span_id = str(_get(span, "spanId", "span_id") or "").lower()
    parent = str(_get(span, "parentSpanId", "parent_span_id") or "").lower()
    problem = _id_problem(trace_id, span_id, parent)
    if problem:
        raise _SpanProblem(f"{where}: {problem}")
    status = _get(span, "status") or {}
    try:
        events = [SpanEvent(str(_get(e, "name") or ""), _int(_get(e, "timeUnixNano", "time_unix_nano")),
                            _json_attributes(_get(e, "attributes"), f"{where}.events"))
                  for e in (_get(span, "events") or [])]
        return OtelSpan(
            trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=str(_get(span, "name") or ""),
            start_ns=_int(_get(span, "startTimeUnixNano", "start_time_unix_nano")),
            end_ns=_int(_get(span, "endTimeUnixNano", "end_time_unix_nano")),
            status_code=_status_code(status.get("code") if isinstance(status, dict) else None),
            status_message=str(status.get("message") or "") if isinstance(status, dict) else "",
            attributes=_json_attributes(_get(span, "attributes"), where), events=events, resource=resource)
    except (TypeError, ValueError, AttributeError, RecursionError, BadRequest) as exc:
        raise _SpanProblem(f"{where}: {getattr(exc, 'message', exc) or 'nested too deeply'}") from None


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, three times faster for what orjson parses (nearly every body and attribute);
    what it refuses and the standard library takes (NaN, a lone surrogate, a number too large for a
    double) is parsed as before. An integer past 64 bits comes back a float: OTLP has none."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _json_trace_id(span: Any) -> str:
    return str(_get(span, "traceId", "trace_id") or "").lower()


_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _status_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value in _STATUS_NAMES:
        return _STATUS_NAMES[value]
    return _int(value)


def _get(obj: Any, camel: str, snake: str | None = None) -> Any:
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None and snake else value


def _list(obj: Any, camel: str, snake: str, where: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(400, f"{where}.{camel} must be a list")
    return value


def _object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise BadRequest(400, f"{where} must be an object")


def _int(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    return int(value)


def _json_attributes(pairs: Any, where: str) -> dict[str, Any]:
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise BadRequest(400, f"{where}.attributes must be a list of {{key, value}}")
    out = {}
    for pair in pairs:
        if isinstance(pair, dict) and isinstance(pair.get("key"), str):
            out[pair["key"]] = _json_value(pair.get("value"))
    return out


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    for key, read in _JSON_VALUES:
        if key in value:
            return read(value[key])
    return None


_JSON_VALUES = (
    ("stringValue", str),
    ("boolValue", bool),
    ("intValue", _int),
    ("doubleValue", float),
    ("arrayValue", lambda v: [_json_value(x) for x in (v or {}).get("values", [])]),
    ("kvlistValue", lambda v: _json_attributes((v or {}).get("values", []), "kvlistValue")),
    ("bytesValue", str),
    ("string_value", str),
    ("bool_value", bool),
    ("int_value", _int),
    ("double_value", float),
)


def _id_problem(trace_id: str, span_id: str, parent: str) -> str | None:
    if len(trace_id) != 32 or not _is_hex(trace_id) or trace_id == "0" * 32:
        return "traceId must be 16 bytes (32 hex digits), not all zero"
    if len(span_id) != 16 or not _is_hex(span_id) or span_id == "0" * 16:
        return "spanId must be 8 bytes (16 hex digits), not all zero"
    if parent and (len(parent) != 16 or not _is_hex(parent)):
        return "parentSpanId must be empty or 8 bytes (16 hex digits)"
    return None


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
