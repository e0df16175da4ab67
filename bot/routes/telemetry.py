"""``/api/traces`` (LLM telemetry, JSON array or NDJSON) and ``/api/bundles`` (release lineage).

Traces: the answer is 200 once the batch is committed, naming each rejected event and why; only a
body that is not a batch at all (bad JSON, an object instead of an array, too large) is a 4xx,
and then nothing is stored. A database outage is a 503, so the sender keeps the batch and retries.
Failures are answered as JSON by the app's exception handlers (`bot.routes.errors`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.jsonbody import (
    MAX_DEPTH,
    BadRequest,
    decode_utf8,
    parse_json,
    pydantic_problems,
)
from bot.releases import service as releases
from bot.routes.common import limit_of, read_body, require_bearer
from bot.routes.errors import Route
from bot.runtime import Runtime
from bot.traces.intake import store_events

log = logging.getLogger(__name__)

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines"})
NOT_A_BATCH = ("expected a JSON array of trace events, or NDJSON "
               "(one event per line, Content-Type: application/x-ndjson)")


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


# --- traces ---------------------------------------------------------------------------------


async def post_traces(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    require_bearer(request, runtime.settings.alert_token)
    try:
        raw = await read_body(request, runtime.settings.max_body_bytes)
        events = decode_events(raw, request.headers.get("content-type", ""))
    except BadRequest:
        runtime.metrics.traces_received.labels("bad_body").inc()
        raise

    result = await run_in_threadpool(store_events, runtime.engine, runtime.settings, runtime.metrics, events)
    for outcome, count in (("accepted", result.accepted), ("duplicate", result.duplicates),
                           ("rejected", len(result.rejected))):
        if count:
            runtime.metrics.traces_received.labels(outcome).inc(count)
    log.info("traces: %d accepted, %d duplicates, %d rejected, %d linked to incidents",
             result.accepted, result.duplicates, len(result.rejected), result.linked)
    return JSONResponse(result.as_json())


def decode_events(raw: bytes, content_type: str) -> list[Any]:
    """A JSON array, or NDJSON: by Content-Type, or detected when a multi-line body is not one JSON document."""
    text = decode_utf8(raw)
    if not text.strip():
        raise BadRequest(400, f"body is empty; {NOT_A_BATCH}")
    if content_type.split(";", 1)[0].strip().lower() in NDJSON_TYPES:
        return _ndjson(text)
    try:
        value = _loads(text)
    except ValueError as exc:
        if len([line for line in text.splitlines() if line.strip()]) > 1:
            return _ndjson(text)
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise BadRequest(400, f"body is a JSON {type(value).__name__}; {NOT_A_BATCH}")
    return value


def _ndjson(text: str) -> list[Any]:
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(_loads(line))
        except ValueError as exc:
            # A broken line means a broken sender (or a cut body): refuse the batch so it is resent whole.
            raise BadRequest(400, f"line {number} is not valid JSON: {exc}",
                             [{"field": f"line {number}", "message": str(exc)}]) from None
    return events


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest(400, f"JSON nesting is deeper than {MAX_DEPTH} levels") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# --- bundles --------------------------------------------------------------------------------

ComponentValue = StrictStr | StrictBool | StrictInt | StrictFloat | list[Any]


class BundleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=200)
    version: str = Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")
    components: dict[Annotated[str, Field(min_length=1, max_length=100)], ComponentValue] = Field(min_length=1)
    deployed_at: datetime | None = None
    known_good: bool | None = None
    reason: str | None = Field(default=None, max_length=1000)
    deployed_by: str | None = Field(default=None, max_length=200)  # shown with the change on incidents

    @field_validator("service")
    @classmethod
    def _fits_in_a_path(cls, value: str) -> str:
        if "/" in value or not value.isprintable():
            raise ValueError("must not contain '/' or control characters (it is part of the bundle's URL)")
        return value

    @field_validator("deployed_at")
    @classmethod
    def _naive_means_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class KnownGoodIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)


def _validated(model: type[BaseModel], body: Any, what: str) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(422, f"invalid {what}", pydantic_problems(exc)) from None


async def post_bundle(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    require_bearer(request, runtime.settings.alert_token)
    raw = await read_body(request, runtime.settings.max_body_bytes)
    given: BundleIn = _validated(BundleIn, parse_json(raw, max_string=runtime.settings.max_value_length), "bundle")
    body = await run_in_threadpool(lambda: releases.register_bundle(
        runtime.engine, service=given.service, version=given.version, components=given.components,
        deployed_at=given.deployed_at, known_good=given.known_good, reason=given.reason,
        deployed_by=given.deployed_by))
    log.info("bundle %s %s registered: %s", given.service, given.version, body["change_summary"])
    return JSONResponse(body, status_code=201)


async def get_bundles(request: Request) -> JSONResponse:
    service = request.query_params.get("service") or None
    if service is not None and ("\x00" in service or len(service) > 200):
        raise BadRequest(400, "service must be a name without NUL characters, at most 200 characters")
    limit = limit_of(request)
    return JSONResponse(await run_in_threadpool(lambda: releases.list_bundles(_runtime(request).engine,
                                                                              service=service, limit=limit)))


async def post_known_good(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    require_bearer(request, runtime.settings.alert_token)
    raw = await read_body(request, runtime.settings.max_body_bytes)
    body = parse_json(raw, max_string=runtime.settings.max_value_length) if raw.strip() else {}
    given: KnownGoodIn = _validated(KnownGoodIn, body, "known-good request")
    service, version = request.path_params["service"], request.path_params["version"]
    return JSONResponse(await run_in_threadpool(releases.mark_known_good, runtime.engine, service, version,
                                                given.reason))


routes = [
    Route("/api/traces", post_traces, methods=["POST"]),
    Route("/api/bundles", post_bundle, methods=["POST"]),
    Route("/api/bundles", get_bundles, methods=["GET"]),
    Route("/api/bundles/{service}/{version}/known-good", post_known_good, methods=["POST"]),
]
