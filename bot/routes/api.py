"""The JSON API: ``/api/incidents``, ``/healthz`` and ``/metrics``."""

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
        limit = min(int(request.query_params.get("limit", "100")), 1000)
    except ValueError:
        return JSONResponse({"error": "limit must be a whole number"}, status_code=400)

    def load() -> list[dict]:
        with transaction(runtime.engine) as session:
            return _without_credentials([service.as_dict(session, i)
                                         for i in service.list_incidents(session, status=status, limit=limit)])

    return JSONResponse(await run_in_threadpool(load))


async def get_incident(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    try:
        incident_id = int(request.path_params["incident_id"])
    except ValueError:
        return JSONResponse({"error": "incident id must be a number"}, status_code=400)

    def load() -> dict:
        with transaction(runtime.engine) as session:
            return _without_credentials(service.as_dict(session, service.get(session, incident_id), full=True))

    try:
        return JSONResponse(await run_in_threadpool(load))
    except NotFound as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)


async def healthz(request: Request) -> JSONResponse:
    try:
        await run_in_threadpool(ping, _runtime(request).engine)
    except Exception as exc:
        return JSONResponse({"status": "unhealthy", "database": f"unreachable: {type(exc).__name__}"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(_runtime(request).metrics.exposition)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/api/incidents", list_incidents, methods=["GET"]),
    Route("/api/incidents/{incident_id}", get_incident, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
