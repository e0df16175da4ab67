"""Loopback servers for the example-service tests: uvicorn on a free port, and a recording sink."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.serving import serving, wait_until  # noqa: F401  (wait_until re-exported)


class Recorder:
    """A loopback HTTP sink that records what it is sent and can be told to fail."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self.responses: dict[str, Any] = {}
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT"])])

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append({"path": request.url.path, "method": request.method,
                              "headers": dict(request.headers), "body": body})
        if self.fail_next:
            self.fail_next -= 1
            return JSONResponse({"error": "warroom is restarting"}, status_code=503)
        return JSONResponse(self.responses.get(request.url.path, {"ok": True}))


serve = serving  # the example service and playbook tests use the shared loopback server
