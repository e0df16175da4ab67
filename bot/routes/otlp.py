"""``POST /v1/traces``: OTLP/HTTP trace export (protobuf or JSON, gzip) from OpenTelemetry SDKs.

Answers follow the OTLP/HTTP specification: 200 with an ``ExportTraceServiceResponse`` (its
``partial_success`` names what was rejected and why), 400/413/415 with a ``google.rpc.Status``
for a body that is not an export request (the exporter must not retry it), 401 without the
bearer token, and 503 with ``Retry-After`` while the database is down (the exporter retries).
Every answer is in the request's encoding; failures are answered by the app's exception handlers
(`bot.routes.errors`) in this route's `otlp_style`. GenAI spans are mapped (`bot.otlp.genai`) to the
trace events ``POST /api/traces`` takes and stored by the same code, with the same rules.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from bot.clock import utcnow
from bot.jsonbody import BadRequest
from bot.otlp import response
from bot.otlp.decode import JSON, PROTOBUF, media_type
from bot.otlp.genai import MappingOptions
from bot.otlp.pool import ExportJob, ExportPreparer
from bot.routes.common import Problem, read_body, require_bearer
from bot.routes.errors import Route
from bot.runtime import Runtime
from bot.traces.intake import store_prepared_events

log = logging.getLogger(__name__)


def _encoding(request: Request) -> str:
    # The answer's encoding: the request's, and JSON when we cannot tell.
    return PROTOBUF if media_type(request.headers.get("content-type", "")) == PROTOBUF else JSON


def otlp_style(request: Request, problem: Problem) -> Response:
    """A ``google.rpc.Status``; a 5xx names the error id that is in the log."""
    message = problem.message + (f" (error id {problem.error_id})" if problem.error_id else "")
    return response.failure(_encoding(request), problem.status, message, headers=problem.headers)


async def post_otlp_traces(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    preparer: ExportPreparer = request.app.state.warroom.otlp
    settings = runtime.settings
    try:
        require_bearer(request, settings.alert_token)
        limit = settings.otlp_max_body_bytes
        job = ExportJob(await read_body(request, limit), request.headers.get("content-type", ""),
                        request.headers.get("content-encoding", ""), limit,
                        MappingOptions(bundle_attribute=settings.otlp_bundle_attribute), settings.failure_rules(),
                        settings.max_value_length, utcnow())
        prepared = await preparer.prepare(job)  # inflate, decode, map, validate: maybe in another process
        prepared.raise_refusal()
    except BadRequest as exc:
        if exc.status < 500:  # a 503 (a worker died) is not the sender's fault
            runtime.metrics.traces_received.labels("bad_body").inc()
        raise

    result = await run_in_threadpool(store_prepared_events, runtime.engine, settings, runtime.metrics,
                                     prepared.traces, job.now)

    # A span is rejected when it is malformed, or when it is an answer whose event was refused.
    rejected = prepared.rejected + len(result.rejected)
    reasons = prepared.reasons + [f"span {r.request_id}: " + "; ".join(f"{p['field']}: {p['message']}"
                                                                       for p in r.problems)
                                  for r in result.rejected[:5]]
    message = "; ".join([*reasons[:5], *([prepared.warning] if prepared.warning else [])])
    for outcome, count in (("accepted", result.accepted), ("duplicate", result.duplicates), ("rejected", rejected)):
        if count:
            runtime.metrics.traces_received.labels(outcome).inc(count)
    log.info("otlp: %d spans, %d answers stored, %d duplicates, %d rejected, %d not GenAI, %d linked",
             prepared.spans, result.accepted, result.duplicates, rejected, prepared.not_genai, result.linked)
    return response.success(_encoding(request), rejected, message)


routes = [Route("/v1/traces", post_otlp_traces, methods=["POST"], errors=otlp_style)]
