"""response_url: where an app answers a slash command or a click after the 3 s ack.

Slack rules copied: ``response_type`` ``ephemeral`` (default; only the user sees it) or
``in_channel`` (posted to the channel as the app); ``replace_original`` on a response_url that
came from a message edits that message, ``delete_original`` removes it. Unknown urls are 404.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.responses import Response as HttpResponse

from bot.emulator.limits import FaultInjector
from bot.emulator.state import Message, Response, ResponseUrl, Workspace


def deliver(ws: Workspace, hook: ResponseUrl, body: dict[str, Any]) -> Response:
    """Apply one response_url message to the workspace and record it."""
    with ws.lock:
        recorded = Response(hook.id, hook.user, hook.channel, body)
        ws.responses.append(recorded)
        channel = ws.channels.get(hook.channel)
        if channel is None:
            return recorded
        original = channel.message(hook.message_ts) if hook.message_ts else None
        if body.get("delete_original") and original is not None:
            channel.messages.remove(original)
        elif _truthy(body.get("replace_original")) and original is not None:
            original.text = str(body.get("text") or "")
            original.blocks = body.get("blocks")
            original.edited = True
        elif body.get("text") or body.get("blocks"):
            in_channel = body.get("response_type") == "in_channel"
            channel.messages.append(Message(
                ws.next_ts(), channel.id, ws.bot_user_id, str(body.get("text") or ""), body.get("blocks"),
                body.get("thread_ts"), ephemeral_to=None if in_channel else hook.user,
            ))
    return recorded


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def endpoint(ws: Workspace, faults: FaultInjector | None = None):  # noqa: ANN201 - a Starlette endpoint
    """``faults`` may hold ``error:<code>`` faults for the pseudo-method ``response_url``: the next
    post to any response_url is then refused with HTTP 404 and that code (an expired url)."""
    async def response_url(request: Request) -> HttpResponse:
        hook = ws.response_urls.get(request.path_params["rid"])
        fault = faults.take("response_url") if faults is not None else None
        if hook is None or fault is not None:
            error = fault.kind.removeprefix("error:") if fault is not None else "expired_url"
            return JSONResponse({"ok": False, "error": error}, status_code=404)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"ok": False, "error": "invalid_payload"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"ok": False, "error": "invalid_payload"}, status_code=400)
        deliver(ws, hook, body)
        return JSONResponse({"ok": True})

    return response_url
