"""The JSON API: ``/api/incidents`` (for readers, see `bot.routes.access`), ``/healthz`` (open) and
``/metrics`` (open unless ``WARROOM_METRICS_PUBLIC=false``)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import redact
from bot.db import ping, transaction
from bot.errors import NotFound
from bot.incidents import lifecycle, service
from bot.jsonbody import BadRequest
from bot.routes.access import may_read, readers_only
from bot.routes.common import error_response, incident_id_of, limit_of
from bot.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _without_credentials(body: Any) -> Any:
    # Alert annotations, timeline text and labels come from outside; the API shows them.
    return redact.current().redact_obj(body, credentials_only=True)


async def list_incidents(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    status = request.query_params.get("status")
    if status and status not in (*lifecycle.STATUSES, "open"):
        return JSONResponse({"error": f"unknown status {status!r}; one of {', '.join((*lifecycle.STATUSES, 'open'))}"},
                            status_code=400)
    try:
        limit = limit_of(request)
    except BadRequest as exc:
        return error_response(exc)

    def load() -> list[dict]:
        with transaction(runtime.engine) as session:
            return _without_credentials([service.as_dict(session, i)
                                         for i in service.list_incidents(session, status=status, limit=limit)])

    try:
        return JSONResponse(await run_in_threadpool(load))
    except Exception as exc:  # a database outage is a 503, like everywhere else
        return error_response(exc)


async def get_incident(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    try:
        incident_id = incident_id_of(request)
    except BadRequest as exc:
        return error_response(exc)

    def load() -> dict:
        with transaction(runtime.engine) as session:
            return _without_credentials(service.as_dict(session, service.get(session, incident_id), full=True,
                                                         names=runtime.services.get("people")))

    try:
        return JSONResponse(await run_in_threadpool(load))
    except NotFound as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except Exception as exc:
        return error_response(exc)


async def healthz(request: Request) -> JSONResponse:
    try:
        await run_in_threadpool(ping, _runtime(request).engine)
    except Exception as exc:
        return JSONResponse({"status": "unhealthy", "database": f"unreachable: {type(exc).__name__}"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


async def metrics(request: Request) -> Response:
    if not _runtime(request).settings.metrics_public:
        try:
            allowed = await may_read(request)
        except BadRequest as exc:
            return error_response(exc)
        if not allowed:
            return error_response(BadRequest(401, "missing bearer token: /metrics needs WARROOM_READ_TOKEN or "
                                                  "WARROOM_ALERT_TOKEN (WARROOM_METRICS_PUBLIC=false)"))
    body = await run_in_threadpool(_runtime(request).metrics.exposition)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/api/incidents", readers_only(list_incidents, page=False), methods=["GET"]),
    Route("/api/incidents/{incident_id}", readers_only(get_incident, page=False), methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
