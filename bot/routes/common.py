"""What every JSON route shares: bearer auth, a bounded body, and errors as JSON."""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.db import is_database_unavailable
from bot.errors import new_error_id
from bot.jsonbody import BadRequest

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


def error_response(exc: Exception) -> JSONResponse:
    if isinstance(exc, BadRequest):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.status == 413:
            # The rest of the body stays unread: closing the connection stops the sender.
            headers = {"Connection": "close"}
        return JSONResponse(exc.as_json(), status_code=exc.status, headers=headers)
    if is_database_unavailable(exc):
        error_id = new_error_id()
        log.error("database unavailable", exc_info=exc, extra={"error_id": error_id})
        # 503 makes Alertmanager retry: nothing is lost while the database is down.
        return JSONResponse({"error": "database unavailable, try again", "error_id": error_id},
                            status_code=503, headers={"Retry-After": "5"})
    error_id = new_error_id()
    log.error("unexpected error", exc_info=exc, extra={"error_id": error_id})
    return JSONResponse({"error": "internal error", "error_id": error_id}, status_code=500)


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
