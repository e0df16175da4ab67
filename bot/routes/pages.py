"""Pages for people (``/incidents``, ``/incidents/{id}``) and the postmortem editor.

Reading needs a signed-in person or a bearer token, and never writes (a postmortem not stored yet
is rendered, not stored). The edit and regenerate forms need a signed-in person and the form's
CSRF token (see `bot.routes.access`); each change is on the timeline with who made it. The JSON
``PUT`` needs the bearer token like every other write API. Rendering: `bot.routes.html`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.clock import as_utc, iso, utcnow
from bot import traces
from bot.db import transaction
from bot.errors import NotFound
from bot.incidents import lifecycle, metrics, service, timeline
from bot.jsonbody import BadRequest, parse_json
from bot.people import Names, display, named_mentions, person
from bot.said import Said
from bot.models import ActionRun, Alert, Incident, Postmortem, TimelineEvent, Trace
from bot.postmortem import store
from bot.postmortem.assemble import PINNED_KIND, incident_ref
from bot.routes.access import form_of, people_only, person_of, readers_only
from bot.routes.common import error_response, incident_id_of, read_body, require_bearer
from bot.routes.html import render
from bot.runtime import Runtime

T = TypeVar("T")
TIMELINE_LIMIT = 1000
CHART_BUCKETS = 48
CHART_TRACE_LIMIT = 100_000
def _not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "error.html", 404, title="Not found", message=message)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _templates_dir(request: Request) -> Path | None:
    return _runtime(request).settings.templates_dir


def _names(request: Request) -> Names | None:
    """People's names for Slack user ids (`bot.people`), when Slack is configured."""
    return _runtime(request).services.get("people")


async def _in_session(request: Request, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with transaction(_runtime(request).engine) as session:
            return work(session)

    return await run_in_threadpool(run)


# ---- the list and the incident page ----

async def incidents_page(request: Request) -> HTMLResponse:
    status = request.query_params.get("status") or None
    if status and status not in (*lifecycle.STATUSES, "open"):
        status = None

    def load(session: Session) -> list[dict[str, Any]]:
        return [{"incident": i, "ref": incident_ref(i), "mtta": metrics.mtta(i), "mttr": metrics.mttr(i)}
                for i in service.list_incidents(session, status=status, limit=500)]

    rows = await _in_session(request, load)
    return render(request, "incidents.html", rows=rows, status=status, statuses=lifecycle.STATUSES)


async def incident_page(request: Request) -> HTMLResponse:
    try:
        incident_id = incident_id_of(request)
    except BadRequest as exc:
        return _bad_id(request, exc)
    names = _names(request)

    def load(session: Session) -> dict[str, Any]:
        incident = service.get(session, incident_id)
        events = timeline.events(session, incident_id, limit=TIMELINE_LIMIT)
        total = session.execute(select(func.count()).select_from(TimelineEvent)
                                .where(TimelineEvent.incident_id == incident_id)).scalar_one()
        alerts = session.execute(select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id)).scalars()
        runs = session.execute(select(ActionRun).where(ActionRun.incident_id == incident_id)
                               .order_by(ActionRun.requested_at, ActionRun.id)).scalars()
        return {
            "incident": incident, "ref": incident_ref(incident), "mtta": metrics.mtta(incident),
            "mttr": metrics.mttr(incident), "alerts": list(alerts), "events": events, "events_total": total,
            "pinned_kind": PINNED_KIND, "actions": list(runs),
            "trace_counts": traces.counts_by_failure(session, incident_id),
            "chart": burn_chart(session, incident), "followups": service.followups(session, incident_id),
            "postmortem": store.get(session, incident_id),
            "who": lambda actor: person(actor, names), "with_names": lambda text: named_mentions(text, names),
            "line": lambda event: display(Said.from_row(event.text, event.data), names),
        }

    try:
        ctx = await _in_session(request, load)
    except NotFound as exc:
        return _not_found(request, str(exc))
    return render(request, "incident.html", **ctx)


@dataclass(frozen=True)
class BurnChart:
    """Firing alerts (a step line) and failing traces (bars) per time bucket, in SVG units."""

    start: datetime
    end: datetime
    firing_points: str
    bars: list[tuple[float, float, float, float]]  # x, y, width, height
    max_firing: int
    max_traces: int
    markers: list[tuple[float, str, str]]  # x, label, text-anchor (labels near the right edge point left)
    width: int = 640
    height: int = 160
    left: int = 36  # room for the axis labels
    top: int = 8
    bottom: int = 20

    @property
    def base(self) -> int:
        return self.height - self.bottom


def burn_chart(session: Session, incident: Incident) -> BurnChart:
    """From the first alert (or failing trace) to the resolution, or now while the incident is open."""
    opened = as_utc(incident.opened_at) or utcnow()
    spans = [(as_utc(s), as_utc(e)) for s, e in
             session.execute(select(Alert.starts_at, Alert.ends_at).where(Alert.incident_id == incident.id))]
    trace_times = [as_utc(t) for (t,) in session.execute(
        select(Trace.timestamp).where(Trace.incident_id == incident.id, Trace.failed.is_(True)).limit(CHART_TRACE_LIMIT))]
    start = min([opened, *(s for s, _ in spans if s), *(t for t in trace_times if t)])
    end = max([as_utc(incident.resolved_at) or utcnow(), *(e for _, e in spans if e), *(t for t in trace_times if t)])
    end = max(end, start + timedelta(minutes=1))
    width, height, left, top, bottom = 640, 160, 36, 8, 20
    plot_w, plot_h = width - left - 8, height - top - bottom
    step, bucket_w = (end - start) / CHART_BUCKETS, plot_w / CHART_BUCKETS

    firing = [sum(1 for s, e in spans if s and s <= start + step * (i + 1) and (e is None or e > start + step * i))
              for i in range(CHART_BUCKETS)]
    failing = [0] * CHART_BUCKETS
    for t in trace_times:
        if t:
            failing[min(CHART_BUCKETS - 1, int((t - start) / step))] += 1
    max_firing, max_traces = max(firing), max(failing)

    def y(value: int, most: int) -> float:
        return round(top + plot_h - (plot_h * value / most if most else 0), 1)

    points: list[str] = []
    last: int | None = None
    for i, count in enumerate(firing):  # a step line: a corner only where the count changes
        if count != last:
            x = left + i * bucket_w
            points += ([f"{x:.1f},{y(last, max_firing)}"] if last is not None else []) + [f"{x:.1f},{y(count, max_firing)}"]
            last = count
    points.append(f"{left + plot_w:.1f},{y(last or 0, max_firing)}")
    bars = [(round(left + i * bucket_w + 1, 1), y(n, max_traces), round(bucket_w - 2, 1),
             round(top + plot_h - y(n, max_traces), 1)) for i, n in enumerate(failing) if n]
    markers = []
    for moment, label in ((incident.acknowledged_at, "ack"), (incident.mitigated_at, "mitigated"),
                          (incident.resolved_at, "resolved")):
        moment = as_utc(moment)
        if moment and start <= moment <= end:
            x = round(left + plot_w * ((moment - start) / (end - start)), 1)
            markers.append((x, label, "end" if x > width - 80 else "start"))
    return BurnChart(start=start, end=end, firing_points=" ".join(points), bars=bars, max_firing=max_firing,
                     max_traces=max_traces, markers=markers, width=width, height=height, left=left, top=top,
                     bottom=bottom)


# ---- the postmortem: page, Markdown, form and JSON ----

async def postmortem_page(request: Request) -> HTMLResponse:
    try:
        incident_id = incident_id_of(request)
    except BadRequest as exc:
        return _bad_id(request, exc)

    def load(session: Session) -> dict[str, Any]:
        incident = service.get(session, incident_id)
        pm = store.stored_or_preview(session, incident_id, templates_dir=_templates_dir(request), names=_names(request),
                                     slos=request.app.state.runtime.slos)
        return {"incident": incident, "ref": incident_ref(incident), "pm": pm, "text": store.current_text(pm),
                "draft_changed": store.draft_changed_since_edit(pm), "saved": request.query_params.get("saved")}

    try:
        return render(request, "postmortem.html", **await _in_session(request, load))
    except NotFound as exc:
        return _not_found(request, str(exc))


async def postmortem_markdown(request: Request) -> Response:
    try:
        incident_id = incident_id_of(request)
    except BadRequest as exc:
        return PlainTextResponse(exc.message, status_code=exc.status)

    def load(session: Session) -> str:
        return store.current_text(store.stored_or_preview(session, incident_id, templates_dir=_templates_dir(request),
                                                          names=_names(request), slos=request.app.state.runtime.slos))

    try:
        text = await _in_session(request, load)
    except NotFound as exc:
        return PlainTextResponse(str(exc), status_code=404)
    return Response(text, media_type="text/markdown; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


async def postmortem_form(request: Request) -> Response:
    form, person = form_of(request), person_of(request)
    try:
        incident_id = incident_id_of(request)
    except BadRequest as exc:
        return _bad_id(request, exc)
    if "text" not in form:
        return PlainTextResponse("the form needs a 'text' field", status_code=400)
    try:
        await _in_session(request, lambda s: store.save_edit(s, incident_id, form["text"],
                                                             templates_dir=_templates_dir(request), names=_names(request),
                                                             by=person.user_id))
    except NotFound as exc:
        return _not_found(request, str(exc))
    return RedirectResponse(f"/incidents/{incident_id}/postmortem?saved=1", status_code=303)


async def postmortem_regenerate(request: Request) -> Response:
    person = person_of(request)
    try:
        incident_id = incident_id_of(request)
    except BadRequest as exc:
        return _bad_id(request, exc)
    try:
        await _in_session(request, lambda s: store.generate(s, incident_id, templates_dir=_templates_dir(request),
                                                            names=_names(request), by=person.user_id,
                                                            slos=request.app.state.runtime.slos))
    except NotFound as exc:
        return _not_found(request, str(exc))
    return RedirectResponse(f"/incidents/{incident_id}/postmortem", status_code=303)


async def postmortem_api_get(request: Request) -> JSONResponse:
    try:
        incident_id = incident_id_of(request)
        return JSONResponse(await _in_session(request, lambda s: _pm_json(
            store.stored_or_preview(s, incident_id, templates_dir=_templates_dir(request), names=_names(request),
                                    slos=request.app.state.runtime.slos))))
    except NotFound as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except Exception as exc:
        return error_response(exc)


async def postmortem_api_put(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    try:
        require_bearer(request, runtime.settings.alert_token)
        incident_id = incident_id_of(request)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise BadRequest(415, "send the edit as JSON: {\"text\": \"...\"}")
        body = parse_json(await read_body(request, runtime.settings.max_body_bytes),
                          max_string=runtime.settings.max_body_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise BadRequest(400, "expected a JSON object with a string field 'text'")
        return JSONResponse(await _in_session(request, lambda s: _pm_json(
            store.save_edit(s, incident_id, body["text"], templates_dir=_templates_dir(request), names=_names(request),
                            by=store.API_ACTOR))))
    except NotFound as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except Exception as exc:  # bad input and outages as JSON, like the other API routes
        return error_response(exc)


def _pm_json(pm: Postmortem) -> dict[str, Any]:
    return {
        "incident_id": pm.incident_id, "text": store.current_text(pm), "draft": pm.draft, "edited": pm.edited,
        "generated_at": iso(pm.generated_at), "edited_at": iso(pm.edited_at),
        "draft_changed_since_edit": store.draft_changed_since_edit(pm),
    }


def _bad_id(request: Request, exc: BadRequest) -> HTMLResponse:
    return render(request, "error.html", exc.status, title="Bad request", message=exc.message)


routes = [
    Route("/incidents", readers_only(incidents_page, page=True), methods=["GET"]),
    Route("/incidents/{incident_id:int}", readers_only(incident_page, page=True), methods=["GET"]),
    Route("/incidents/{incident_id:int}/postmortem", readers_only(postmortem_page, page=True), methods=["GET"]),
    Route("/incidents/{incident_id:int}/postmortem", people_only(postmortem_form), methods=["POST"]),
    Route("/incidents/{incident_id:int}/postmortem/regenerate", people_only(postmortem_regenerate), methods=["POST"]),
    Route("/incidents/{incident_id:int}/postmortem.md", readers_only(postmortem_markdown, page=True), methods=["GET"]),
    Route("/api/incidents/{incident_id:int}/postmortem", readers_only(postmortem_api_get, page=False), methods=["GET"]),
    Route("/api/incidents/{incident_id:int}/postmortem", postmortem_api_put, methods=["PUT"]),
]
