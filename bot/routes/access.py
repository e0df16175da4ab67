"""Who may read and who may change: the guards wrapped around the pages and the incident API.

* Reading (``/incidents…`` pages, ``GET /api/incidents…``, ``/metrics`` when not public): a
  signed-in person (session cookie) or a bearer token — ``WARROOM_ALERT_TOKEN`` or the read-only
  ``WARROOM_READ_TOKEN``.
* Changing through a form (postmortem edit, regenerate, sign-out): a signed-in person only, the
  form's CSRF token, and not a post from another site (``Sec-Fetch-Site``/``Origin``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from bot import signin
from bot.config import Settings
from bot.jsonbody import BadRequest, decode_utf8
from bot.routes.common import error_response, read_body
from bot.routes.html import render
from bot.runtime import Runtime

SESSION_COOKIE = "warroom_session"
SIGN_IN_HINT = ("Type /incident web in Slack: warroom answers with a sign-in link only you can see. "
                "Scripts send 'Authorization: Bearer <WARROOM_READ_TOKEN or WARROOM_ALERT_TOKEN>'.")
Endpoint = Callable[[Request], Awaitable[Response]]


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _bearer(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def _reading_token(settings: Settings, given: str) -> bool:
    tokens = [settings.alert_token, *([settings.read_token] if settings.read_token else [])]
    # Every token is compared, so the time taken does not say which one nearly matched.
    return any([hmac.compare_digest(given.encode(), t.encode()) for t in tokens])


async def signed_in(request: Request) -> signin.Person | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None

    return await run_in_threadpool(signin.signed_in, _runtime(request).engine, token)


async def may_read(request: Request) -> bool:
    """A valid bearer token, or a session. A wrong token is refused outright (401), not ignored."""
    given = _bearer(request)
    if given is not None:
        if not _reading_token(_runtime(request).settings, given):
            raise BadRequest(401, "invalid bearer token")
        return True
    request.state.person = await signed_in(request)
    return request.state.person is not None


def readers_only(endpoint: Endpoint, *, page: bool) -> Endpoint:
    """Wrap a read endpoint: 401 (an HTML page saying how to sign in, or JSON) for anyone else."""
    async def guarded(request: Request) -> Response:
        try:
            allowed = await may_read(request)
        except BadRequest as exc:
            allowed, reason = False, exc.message
        else:
            reason = "sign in first" if page else f"missing bearer token or session; {SIGN_IN_HINT}"
        if not allowed:
            if page:
                return render(request, "signin_needed.html", 401, reason=reason)
            return JSONResponse({"error": reason}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await endpoint(request)

    return guarded


def people_only(endpoint: Endpoint) -> Endpoint:
    """Wrap a form post: the person signed in, the form's ``csrf`` field theirs, sent from our pages.

    The checked form is on ``request.state.form``; the person on ``request.state.person``.
    """
    async def guarded(request: Request) -> Response:
        try:
            refuse_cross_site(request)
            person = await signed_in(request)
            if person is None:
                raise BadRequest(401, "sign in first: " + SIGN_IN_HINT)
            form = await read_form(request)
            if not hmac.compare_digest(form.get("csrf", "").encode(), person.csrf_token.encode()):
                raise BadRequest(403, "the form is stale or came from elsewhere (CSRF token does not match); "
                                      "reload the page and try again")
        except BadRequest as exc:
            return PlainTextResponse(exc.message, status_code=exc.status)
        except Exception as exc:
            return error_response(exc)
        request.state.person, request.state.form = person, form
        return await endpoint(request)

    return guarded


def refuse_cross_site(request: Request) -> None:
    # SameSite=Lax keeps the cookie off other sites' form posts already; this also covers old browsers.
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise BadRequest(403, "cross-site form posts are refused")
    origin = request.headers.get("origin")
    # Behind a proxy the Host header may be internal; WARROOM_PUBLIC_URL names the outside one.
    ours = {request.headers.get("host"), urlsplit(_runtime(request).settings.public_url).netloc}
    if origin is not None and (origin == "null" or urlsplit(origin).netloc not in ours):
        raise BadRequest(403, "cross-site form posts are refused")


async def read_form(request: Request) -> dict[str, str]:
    # URL-encoded only (what a plain <form> sends): no multipart parser needed, and the body is bounded.
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise BadRequest(415, "send the form as application/x-www-form-urlencoded")
    raw = await read_body(request, _runtime(request).settings.max_body_bytes)
    try:
        fields = parse_qs(decode_utf8(raw), keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(400, "form fields are not valid UTF-8") from None
    return {name: values[-1] for name, values in fields.items()}


def set_session_cookie(request: Request, response: Response, token: str, lasts: timedelta) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (no other site's post carries it), Secure behind TLS."""
    secure = request.url.scheme == "https" or _runtime(request).settings.public_url.startswith("https://")
    response.set_cookie(SESSION_COOKIE, token, max_age=int(lasts.total_seconds()), path="/", httponly=True,
                        samesite="lax", secure=secure)


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


def person_of(request: Request) -> signin.Person:
    return request.state.person


def form_of(request: Request) -> dict[str, Any]:
    return request.state.form
