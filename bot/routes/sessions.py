"""Signing in to the pages with a one-time link from Slack, and signing out.

``GET /signin/{token}`` only shows a button: link previews and prefetchers fetch links too, and
must not use up the link (a GET never writes). The button posts the token; that redeems it.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot import signin
from bot.jsonbody import BadRequest
from bot.routes.access import (
    clear_session_cookie,
    form_of,
    people_only,
    person_of,
    read_form,
    refuse_cross_site,
    set_session_cookie,
)
from bot.routes.errors import Route, page_style
from bot.routes.html import render
from bot.runtime import Runtime

# The token is in the sign-in page's address: "same-origin" (not "no-referrer", which makes Chromium
# send "Origin: null" with the form) keeps it from other sites.
NO_REFERRER = {"Referrer-Policy": "same-origin"}


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def signin_page(request: Request) -> Response:
    token = request.path_params["token"]

    user_id = (
        await run_in_threadpool(signin.owner_of_link, _runtime(request).engine, token) if len(token) <= 200 else None
    )
    if user_id is None:
        return render(request, "signin.html", 400, headers=NO_REFERRER, token=None, user_id=None,
                      reason="This sign-in link was used already or has expired.")
    return render(request, "signin.html", headers=NO_REFERRER, token=token, user_id=user_id, reason=None)


async def signin_post(request: Request) -> Response:
    settings = _runtime(request).settings
    try:
        refuse_cross_site(request)  # or another site could sign you in as someone else
        token = (await read_form(request)).get("token", "")
    except BadRequest as exc:
        return render(request, "signin.html", exc.status, headers=NO_REFERRER, token=None, user_id=None,
                      reason=exc.message)
    lasts = timedelta(hours=settings.session_hours)

    try:
        person = await run_in_threadpool(lambda: signin.redeem(_runtime(request).engine, token, session_for=lasts))
    except signin.LinkNotValid as exc:
        return render(request, "signin.html", 400, headers=NO_REFERRER, token=None, user_id=None, reason=str(exc))
    response = RedirectResponse("/incidents", status_code=303)
    set_session_cookie(request, response, person.session_token, lasts)
    return response


async def signout(request: Request) -> Response:
    token = person_of(request).session_token
    form_of(request)  # checked by people_only: the CSRF token was right

    await run_in_threadpool(signin.sign_out, _runtime(request).engine, token)
    response = RedirectResponse("/incidents", status_code=303)
    clear_session_cookie(response)
    return response


routes = [
    Route("/signin/{token}", signin_page, methods=["GET"], errors=page_style),
    Route("/signin", signin_post, methods=["POST"], errors=page_style),
    Route("/signout", people_only(signout), methods=["POST"], errors=page_style),
]
