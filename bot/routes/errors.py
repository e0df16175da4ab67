"""How a failed request is answered: exception handlers registered once, on the app.

A route raises (`BadRequest`, `NotFound` or another `UserError`, a database error, a bug) instead
of catching; `exception_handlers` (given to Starlette in `bot.web.create_app`) turns the exception
into a `Problem` (status, message, headers, log line: `bot.routes.common.problem_of`), and the
matched route's ``errors`` style shows it: JSON for the API and webhooks (the default), an HTML
page, plain text, or OTLP's ``google.rpc.Status`` (`bot.routes.otlp`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette import routing
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.errors import UserError
from bot.jsonbody import BadRequest
from bot.routes.common import Problem, as_json, problem_of
from bot.routes.html import render
from bot.store.health import DatabaseError

Style = Callable[[Request, Problem], Response]


def json_style(request: Request, problem: Problem) -> Response:
    return as_json(problem)


def page_style(request: Request, problem: Problem) -> Response:
    if problem.status == 404:
        title = "Not found"
    elif problem.status < 500:
        title = "Bad request"
    else:
        title = "Unavailable" if problem.status == 503 else "Internal error"
    message = problem.message + (f" (error id {problem.error_id})" if problem.error_id else "")
    return render(request, "error.html", problem.status, headers=problem.headers, title=title, message=message)


def text_style(request: Request, problem: Problem) -> Response:
    message = problem.message + (f" (error id {problem.error_id})" if problem.error_id else "")
    return PlainTextResponse(message, status_code=problem.status, headers=problem.headers)


class Route(routing.Route):
    """A Starlette route that names how its failures look to the caller (JSON unless told)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: Sequence[str],
                 errors: Style = json_style) -> None:
        super().__init__(path, endpoint, methods=list(methods))
        self.errors = errors


async def answer(request: Request, exc: Exception) -> Response:
    # Starlette puts the matched route in the scope; a route that is not ours (Slack's) answers in JSON.
    style: Style = getattr(request.scope.get("route"), "errors", json_style)
    return style(request, problem_of(exc))


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Any]]:
    """For ``Starlette(exception_handlers=...)``.

    ``Exception`` goes to Starlette's outermost middleware, which answers and then re-raises, so
    the server logs the traceback of a bug too; the others are answered where they are raised.
    """
    return {BadRequest: answer, UserError: answer, DatabaseError: answer, Exception: answer}
