"""The JSON API: ``/api/incidents`` and the postmortem's ``/api/incidents/{id}/postmortem`` (for
readers, see `bot.routes.access`; the ``PUT`` takes the bearer token like every other write API),
``/healthz`` (open) and ``/metrics`` (open unless ``WARROOM_METRICS_PUBLIC=false``).

Failures are JSON (`bot.routes.errors`): bad input a 4xx naming what is wrong, an unknown incident
a 404, a database outage a 503.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.incidents import lifecycle, read_model
from bot.jsonbody import BadRequest, parse_json
from bot.postmortem import editor
from bot.routes.access import may_read, readers_only
from bot.routes.common import incident_id_of, limit_of, read_body, require_bearer
from bot.routes.errors import Route
from bot.routes.pages import drafting
from bot.runtime import Runtime
from bot.store.health import check_database


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _without_credentials(request: Request, body: Any) -> Any:
    # Alert annotations, timeline text and labels come from outside; the API shows them.
    return _runtime(request).redactor.redact_obj(body, credentials_only=True)


async def list_incidents(request: Request) -> JSONResponse:
    status = request.query_params.get("status")
    if status and status not in (*lifecycle.STATUSES, "open"):
        return JSONResponse({"error": f"unknown status {status!r}; one of {', '.join((*lifecycle.STATUSES, 'open'))}"},
                            status_code=400)
    limit = limit_of(request)
    found = await run_in_threadpool(read_model.incident_dicts, _runtime(request).engine, status=status, limit=limit)
    return JSONResponse(_without_credentials(request, found))


async def get_incident(request: Request) -> JSONResponse:
    incident_id = incident_id_of(request)
    runtime = _runtime(request)
    found = await run_in_threadpool(read_model.incident_dict, runtime.engine, incident_id, runtime.people)
    return JSONResponse(_without_credentials(request, found))


async def get_postmortem(request: Request) -> JSONResponse:
    incident_id = incident_id_of(request)
    shown = await run_in_threadpool(lambda: editor.view(_runtime(request).engine, incident_id, drafting(request)))
    return JSONResponse(shown.as_json())


async def put_postmortem(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    require_bearer(request, runtime.settings.alert_token)
    incident_id = incident_id_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise BadRequest(415, "send the edit as JSON: {\"text\": \"...\"}")
    body = parse_json(await read_body(request, runtime.settings.max_body_bytes),
                      max_string=runtime.settings.max_body_bytes)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise BadRequest(400, "expected a JSON object with a string field 'text'")
    shown = await run_in_threadpool(lambda: editor.edit(runtime.engine, incident_id, body["text"], drafting(request),
                                                        by=editor.API_ACTOR))
    return JSONResponse(shown.as_json())


async def healthz(request: Request) -> JSONResponse:
    try:
        await run_in_threadpool(check_database, _runtime(request).engine)
    except Exception as exc:
        return JSONResponse({"status": "unhealthy", "database": f"unreachable: {type(exc).__name__}"}, status_code=503)
    # The OTLP worker processes (`bot.otlp.pool`): a pool that failed to start still answers, in
    # the serving process, so it is shown here rather than made unhealthy.
    return JSONResponse({"status": "ok", "database": "ok", "otlp_workers": request.app.state.warroom.otlp.state})


async def metrics(request: Request) -> Response:
    if not _runtime(request).settings.metrics_public and not await may_read(request):
        raise BadRequest(401, "missing bearer token: /metrics needs WARROOM_READ_TOKEN or "
                              "WARROOM_ALERT_TOKEN (WARROOM_METRICS_PUBLIC=false)")
    body = await run_in_threadpool(_runtime(request).metrics.exposition)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/api/incidents", readers_only(list_incidents, page=False), methods=["GET"]),
    Route("/api/incidents/{incident_id}", readers_only(get_incident, page=False), methods=["GET"]),
    Route("/api/incidents/{incident_id:int}/postmortem", readers_only(get_postmortem, page=False), methods=["GET"]),
    Route("/api/incidents/{incident_id:int}/postmortem", put_postmortem, methods=["PUT"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
