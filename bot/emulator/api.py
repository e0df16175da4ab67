"""The Web API endpoint, ``/api/<method>``: the checks Slack runs before a method handler.

Order, as Slack applies it: unknown method (``unknown_method``), token (``not_authed`` when absent,
``invalid_auth`` when wrong), injected infrastructure faults, rate limit (HTTP 429 + ``Retry-After``),
scopes (``missing_scope`` with ``needed``/``provided``), then the handler. Every API error is
HTTP 200 ``{"ok": false, "error": ...}``; only rate limits and server faults change the status.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.emulator.limits import FaultInjector, RateLimiter
from bot.emulator.methods import METHODS, ApiError, Args
from bot.emulator.socket_mode import SocketModeHub
from bot.emulator.state import Call, Workspace
from bot.slack.manifest import BOT_SCOPES, METHOD_SCOPES

# Real methods warroom must not need: known here so that calling one shows missing_scope
# (as in a real workspace) instead of unknown_method.
UNGRANTED_METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "conversations.join": ("channels:join",),
    "conversations.kick": ("channels:manage", "groups:write"),
    "files.upload": ("files:write",),
    "files.uploadV2": ("files:write",),
    "chat.scheduleMessage": ("chat:write",),
    "users.profile.get": ("users.profile:read",),
    "usergroups.create": ("usergroups:write",),
    "usergroups.users.update": ("usergroups:write",),
    "emoji.list": ("emoji:read",),
    "team.info": ("team:read",),
    "dnd.info": ("dnd:read",),
}

APPS_CONNECTIONS_OPEN = "apps.connections.open"  # Socket Mode: an app-level token's only method here


async def read_args(request: Request) -> dict[str, Any]:
    """Merge query string, form and JSON bodies (slack-sdk sends chat.* and views.* as JSON)."""
    args: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    ctype = request.headers.get("content-type", "")
    if body:
        if "json" in ctype or body.lstrip().startswith(b"{"):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                args.update(parsed)
        else:
            args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return args


def bearer_token(request: Request, args: dict[str, Any]) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    token = args.pop("token", None)  # legacy: token as an argument
    return str(token) if token else None


class WebApi:
    """Callable endpoint bound to one workspace, its budgets and its faults."""

    def __init__(self, ws: Workspace, token: str, limiter: RateLimiter, faults: FaultInjector,
                 granted: tuple[str, ...] = tuple(BOT_SCOPES),
                 socket_mode: tuple[str, SocketModeHub, Callable[[], str]] | None = None) -> None:
        self.ws, self.token, self.limiter, self.faults, self.granted = ws, token, limiter, faults, granted
        self.socket_mode = socket_mode  # (app-level token, hub, base URL) for apps.connections.open
        self.on_call: Callable[[Call], None] | None = None

    async def handle(self, request: Request) -> Response:
        name = request.path_params["method"]
        args = await read_args(request)
        token = bearer_token(request, args)
        call = Call(name, dict(args), token, time.time())
        response = await self._answer(call, name, args, token)
        call.status = response.status_code
        with self.ws.lock:
            self.ws.calls.append(call)
        if self.on_call:
            self.on_call(call)
        return response

    async def _answer(self, call: Call, name: str, args: dict[str, Any], token: str | None) -> Response:
        if name == APPS_CONNECTIONS_OPEN:
            return self._open_connection(call, token)
        needed = METHOD_SCOPES.get(name) or UNGRANTED_METHOD_SCOPES.get(name)
        if name not in METHODS and needed is None:
            return self._error(call, "unknown_method")
        if not token:
            return self._error(call, "not_authed")
        if token != self.token:
            return self._error(call, "invalid_auth")

        fault = self.faults.take(name)
        if fault is not None:
            if fault.kind == "timeout":
                # Done, answer lost: the work happens now and the answer comes too late for a
                # client that gave up, like a real timeout where Slack finished the work.
                response = await self._checked(call, name, args, needed)
                await asyncio.sleep(fault.delay_s)
                return response
            if fault.kind == "delay":
                await asyncio.sleep(fault.delay_s)  # slow, then done
            elif fault.kind == "500":
                call.response = {"ok": False, "error": "internal_error"}
                return JSONResponse(call.response, status_code=500)
            elif fault.kind == "429":
                return self._rate_limited(call, fault.retry_after)
            else:
                return self._error(call, fault.kind.removeprefix("error:"))
        return await self._checked(call, name, args, needed)

    async def _checked(self, call: Call, name: str, args: dict[str, Any], needed: tuple[str, ...] | None) -> Response:
        """Rate limit, scopes, then the method itself."""
        retry_after = self.limiter.check(name, str(args.get("channel") or args.get("channel_id") or ""))
        if retry_after:
            return self._rate_limited(call, retry_after)

        if needed and not set(needed) & set(self.granted):
            return self._error(call, "missing_scope", needed=",".join(needed), provided=",".join(self.granted))
        try:
            body = METHODS[name](self.ws, Args(args))
        except ApiError as exc:
            return self._error(call, exc.error, **exc.extra)
        call.response = {"ok": True, **body}
        return JSONResponse(call.response, headers={"X-OAuth-Scopes": ",".join(self.granted)})

    def _open_connection(self, call: Call, token: str | None) -> Response:
        """``apps.connections.open`` takes the app-level token, never a bot token (as in Slack)."""
        if self.socket_mode is None:
            return self._error(call, "unknown_method")
        app_token, hub, base_url = self.socket_mode
        if not token:
            return self._error(call, "not_authed")
        if token.startswith("xoxb-"):
            return self._error(call, "not_allowed_token_type")
        if token != app_token:
            return self._error(call, "invalid_auth")
        call.response = {"ok": True, "url": hub.issue_url(base_url())}
        return JSONResponse(call.response)

    @staticmethod
    def _error(call: Call, error: str, **extra: Any) -> Response:
        call.response = {"ok": False, "error": error, **extra}
        return JSONResponse(call.response)

    @staticmethod
    def _rate_limited(call: Call, seconds: int) -> Response:
        call.response = {"ok": False, "error": "ratelimited"}
        return JSONResponse(call.response, status_code=429, headers={"Retry-After": str(seconds)})
