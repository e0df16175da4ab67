"""What every JSON route shares: bearer auth, a bounded body, and errors as JSON.

`problem_of` decides what a failure means for the caller (status, message, headers, log line);
`bot.routes.errors` shows it in the form the route answers in.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.errors import NotFound, UserError, new_error_id
from bot.jsonbody import BadRequest
from bot.store.health import is_outage

log = logging.getLogger(__name__)


def require_bearer(request: Request, token: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise BadRequest(401, "missing bearer token: send 'Authorization: Bearer <WARROOM_ALERT_TOKEN>'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise BadRequest(401, "invalid bearer token")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"body is larger than the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Problem:
    """A failure as the caller sees it; ``error_id`` ties a 5xx answer to its line in the log."""

    status: int
    message: str
    problems: list[dict[str, str]] = field(default_factory=list)
    error_id: str | None = None
    headers: dict[str, str] | None = None

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.message}
        if self.problems:
            body["problems"] = self.problems
        if self.error_id:
            body["error_id"] = self.error_id
        return body


def problem_of(exc: Exception) -> Problem:
    if isinstance(exc, BadRequest):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.status == 413:
            # The rest of the body stays unread: closing the connection stops the sender.
            headers = {"Connection": "close"}
        if exc.status == 503:  # not now: Alertmanager and OTLP exporters retry after this
            headers = {"Retry-After": "5"}
        return Problem(exc.status, exc.message, exc.problems, headers=headers)
    if isinstance(exc, NotFound):
        return Problem(404, str(exc))
    if isinstance(exc, UserError):
        return Problem(400, str(exc))
    error_id = new_error_id()
    if is_outage(exc):
        log.error("database unavailable", exc_info=exc, extra={"error_id": error_id})
        # 503 makes Alertmanager (and OTLP exporters) retry: nothing is lost while the database is down.
        return Problem(503, "database unavailable, try again", error_id=error_id, headers={"Retry-After": "5"})
    log.error("unexpected error", exc_info=exc, extra={"error_id": error_id})
    return Problem(500, "internal error", error_id=error_id)


def as_json(problem: Problem) -> JSONResponse:
    return JSONResponse(problem.as_json(), status_code=problem.status, headers=problem.headers)


def error_response(exc: Exception) -> JSONResponse:
    """For a route that must see the answer itself (the webhooks count it by status)."""
    return as_json(problem_of(exc))


# Incident ids are 32-bit on PostgreSQL (SERIAL); a larger number in a path is a bad request, not a 500.
MAX_ID = 2**31 - 1


def incident_id_of(request: Request) -> int:
    raw = str(request.path_params["incident_id"])
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or not 1 <= int(raw) <= MAX_ID:
        raise BadRequest(400, f"incident id must be a whole number from 1 to {MAX_ID}")
    return int(raw)


def limit_of(request: Request, *, default: int = 100, most: int = 1000) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not 1 <= int(raw) <= most:
        raise BadRequest(400, f"limit must be a whole number from 1 to {most}")
    return int(raw)
