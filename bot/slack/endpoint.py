"""``POST /slack/events``: Slack's requests into Bolt, with Bolt's known pitfalls handled.

* A malformed ``X-Slack-Request-Timestamp`` makes slack-sdk raise and Bolt answer 500: it is a bad
  request, so we answer 401 before Bolt sees it.
* Bolt parses any form body containing the substring "payload" as interactivity, so a slash
  command whose text says "payload" became ``{}`` and a 404: we re-parse such command forms.
* Bolt's dispatch blocks while it waits for ``ack()``; it runs in a worker thread, not the loop.
* The body is bounded before anything else, signature check included: a declared Content-Length
  over ``WARROOM_MAX_BODY_BYTES`` is refused unread, a streamed body is cut at the limit.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from slack_bolt import App, BoltRequest
from slack_bolt.context import BoltContext
from slack_bolt.request.internals import build_context
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.jsonbody import BadRequest
from bot.routes.common import error_response, read_body


def slack_route(app: App) -> Route:
    async def handle(request: Request) -> Response:
        try:
            raw = await read_body(request, request.app.state.runtime.settings.max_body_bytes)
        except BadRequest as exc:
            return error_response(exc)
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        if not timestamp.isdigit():
            return JSONResponse({"error": "invalid request"}, status_code=401)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "invalid request"}, status_code=400)
        bolt_request = BoltRequest(body=body, query=request.url.query, headers=dict(request.headers))
        _fix_command_parsing(bolt_request)
        bolt_response = await run_in_threadpool(app.dispatch, bolt_request)
        return Response(status_code=bolt_response.status, content=bolt_response.body,
                        headers={k: v[0] for k, v in bolt_response.headers.items() if k.lower() != "content-length"})

    return Route("/slack/events", handle, methods=["POST"])


def _fix_command_parsing(request: BoltRequest) -> None:
    if request.body or "command=" not in request.raw_body:
        return
    form = parse_qs(request.raw_body, keep_blank_values=True)
    if "command" in form and "payload" not in form:
        request.body = {k: v[0] for k, v in form.items()}
        request.context = build_context(BoltContext(), request.body)
