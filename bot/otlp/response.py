"""OTLP/HTTP answers: ``ExportTraceServiceResponse`` on success, ``google.rpc.Status`` on failure,
each in the encoding of the request (protobuf or JSON), as the OTLP specification asks."""

from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from starlette.responses import Response

from bot.otlp.decode import JSON, PROTOBUF

# google.rpc.Code values for the status bodies.
INVALID_ARGUMENT = 3
UNAUTHENTICATED = 16
UNAVAILABLE = 14
RESOURCE_EXHAUSTED = 8
INTERNAL = 13


def success(encoding: str, rejected: int = 0, message: str = "") -> Response:
    """200; ``partial_success`` only when something was rejected or there is a warning to give."""
    if encoding == PROTOBUF:
        body = ExportTraceServiceResponse()
        if rejected or message:
            body.partial_success.rejected_spans = rejected
            body.partial_success.error_message = message
        return Response(body.SerializeToString(), media_type=PROTOBUF)
    payload: dict = {}
    if rejected or message:
        # int64 is a string in protobuf's JSON mapping.
        payload["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return Response(json.dumps(payload), media_type=JSON)


def failure(encoding: str, http_status: int, message: str, *, headers: dict[str, str] | None = None) -> Response:
    code = {400: INVALID_ARGUMENT, 401: UNAUTHENTICATED, 413: RESOURCE_EXHAUSTED, 415: INVALID_ARGUMENT,
            503: UNAVAILABLE}.get(http_status, INTERNAL)
    if encoding == PROTOBUF:
        return Response(_status_bytes(code, message), status_code=http_status, media_type=PROTOBUF, headers=headers)
    return Response(json.dumps({"code": code, "message": message}), status_code=http_status, media_type=JSON,
                    headers=headers)


def _status_bytes(code: int, message: str) -> bytes:
    # google.rpc.Status is two fields here: code (1, varint) and message (2, string). Encoded by
    # hand so warroom does not need googleapis-common-protos for one message.
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
