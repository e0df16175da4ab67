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
