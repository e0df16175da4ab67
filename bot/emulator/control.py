"""The emulator's control endpoint: inject Slack faults over HTTP, for rehearsals and tests.

    POST   /control/faults  {"method": "chat.postMessage", "kind": "500", "times": 3}
    GET    /control/faults  -> {"faults": [...]}   (what is still queued)
    DELETE /control/faults  -> clears them all

``kind``: ``500``, ``429`` (with ``retry_after`` seconds), ``timeout`` (done at once, answered
``delay_s`` later), ``delay`` (answered and done after ``delay_s``) or ``error:<code>``. A body
may also be a list of such objects. Bad input is a 400 that says what is wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.emulator.limits import FaultInjector, check_fault

PATH = "/control/faults"


def parse_fault(raw: Any) -> dict[str, Any]:
    """One fault's arguments for `FaultInjector.inject`; ``ValueError`` with the reason."""
    if not isinstance(raw, dict):
        raise ValueError("a fault is a JSON object with method and kind")
    unknown = set(raw) - {"method", "kind", "times", "delay_s", "retry_after"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    method = raw.get("method")
    if not isinstance(method, str) or not method or "/" in method:
        raise ValueError("method is required: a Web API method name such as chat.postMessage")
    try:
        kind, times = str(raw.get("kind", "500")), int(raw.get("times", 1))
        delay_s, retry_after = float(raw.get("delay_s", 5.0)), int(raw.get("retry_after", 1))
    except (TypeError, ValueError):
        raise ValueError("times and retry_after must be integers, delay_s a number") from None
    check_fault(kind, times, delay_s, retry_after)
    return {"method": method, "kind": kind, "times": times, "delay_s": delay_s, "retry_after": retry_after}


def routes(faults: FaultInjector) -> list[Route]:
    async def endpoint(request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse({"faults": faults.pending()})
        if request.method == "DELETE":
            faults.clear()
            return JSONResponse({"faults": []})
        try:
            body = json.loads(await request.body() or b"null")
            parsed = [parse_fault(f) for f in (body if isinstance(body, list) else [body])]
        except ValueError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        for fault in parsed:
            faults.inject(**fault)
        return JSONResponse({"ok": True, "faults": faults.pending()})

    return [Route(PATH, endpoint, methods=["GET", "POST", "DELETE"])]


_CLI_FAULT = re.compile(r"^(?P<method>[^=]+)=(?P<kind>.+?)(?:x(?P<times>\d+))?(?:@(?P<seconds>[\d.]+))?$")


def parse_cli_fault(text: str) -> dict[str, Any]:
    """``METHOD=KIND[xTIMES][@SECONDS]``, e.g. ``chat.postMessage=500x3``, ``conversations.create=timeout@20``,
    ``chat.postMessage=429x2@5`` (for 429 the seconds are Retry-After)."""
    match = _CLI_FAULT.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r}: expected METHOD=KIND[xTIMES][@SECONDS], e.g. chat.postMessage=500x3")
    raw: dict[str, Any] = {"method": match["method"], "kind": match["kind"], "times": match["times"] or 1}
    if match["seconds"]:
        raw["retry_after" if match["kind"] == "429" else "delay_s"] = float(match["seconds"])
    return parse_fault(raw)
