"""``POST /webhooks/alertmanager`` and ``POST /webhooks/grafana``.

The answer is 2xx only after the alerts are committed; bad input is a 4xx that names the field
(Alertmanager does not retry 4xx), a database outage a 503 (it retries those). Parsing and
validation run on the event loop; the database work is `bot.alerts.writer`'s.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.alerts.normalize import Notification, from_alertmanager, from_grafana
from bot.alerts.writer import IntakeWriter
from bot.clock import utcnow
from bot.jsonbody import parse_json
from bot.logs import request_id
from bot.routes.common import error_response, read_body, require_bearer
from bot.routes.errors import Route
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def _writer(request: Request) -> IntakeWriter:
    state = request.app.state
    if getattr(state, "intake_writer", None) is None:
        state.intake_writer = IntakeWriter(state.runtime)  # made on first use: inside the app's event loop
    return state.intake_writer


def _endpoint(source: str, parse: Callable[..., Notification]) -> Callable[[Request], Any]:
    async def handle(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        request_id.set(request.headers.get("x-request-id") or uuid.uuid4().hex[:12])
        started = time.perf_counter()
        status = 500
        try:
            require_bearer(request, runtime.settings.alert_token)
            raw = await read_body(request, runtime.settings.max_body_bytes)
            body = parse_json(raw, max_string=runtime.settings.max_value_length)
            note = parse(body, received_at=utcnow())
            result = await _writer(request).ingest(note)
            runtime.metrics.alerts_received.labels(source, result.outcome).inc(len(note.alerts))
            if result.outcome == "opened":
                runtime.metrics.incidents_opened.labels(source).inc()
            log.info("%s notification: %s incident=%s alerts=%d new=%d resolved=%d", source, result.outcome,
                     result.incident_id, len(note.alerts), result.new_alerts, result.resolved_alerts)
            status = 200
            return JSONResponse({"status": result.outcome, "incident_id": result.incident_id,
                                 "alerts": len(note.alerts), "new_alerts": result.new_alerts,
                                 "resolved_alerts": result.resolved_alerts})
        except Exception as exc:  # every failure becomes a JSON answer; see error_response
            response = error_response(exc)
            status = response.status_code
            if status < 500:
                runtime.metrics.alerts_received.labels(source, "rejected").inc()
                log.info("%s webhook rejected: %s %s", source, status,
                         bytes(response.body[:300]).decode(errors="replace"))
            return response
        finally:
            runtime.metrics.webhooks.labels(source, str(status)).inc()
            runtime.metrics.webhook_seconds.labels(source).observe(time.perf_counter() - started)

    return handle


routes = [
    Route("/webhooks/alertmanager", _endpoint("alertmanager", from_alertmanager), methods=["POST"]),
    Route("/webhooks/grafana", _endpoint("grafana", from_grafana), methods=["POST", "PUT"]),
]
