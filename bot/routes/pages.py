"""Pages for people (``/incidents``, ``/incidents/{id}``) and the postmortem editor.

Reading needs a signed-in person or a bearer token, and never writes (a postmortem not stored yet
is rendered, not stored). The edit and regenerate forms need a signed-in person and the form's
CSRF token (see `bot.routes.access`); each change is on the timeline with who made it. What a
page shows is read by `bot.incidents.read_model` and `bot.postmortem.editor`; rendering is
`bot.routes.html`; failures (an unknown incident, a bad id) are pages too (`bot.routes.errors`).
The postmortem's JSON API is in `bot.routes.api`.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from bot.incidents import lifecycle, read_model
from bot.people import Names, display, named_mentions, person
from bot.postmortem import editor
from bot.postmortem.assemble import PINNED_KIND
from bot.redact import Redactor
from bot.routes.access import form_of, people_only, person_of, readers_only
from bot.routes.common import incident_id_of
from bot.routes.errors import Route, page_style, text_style
from bot.routes.html import render
from bot.runtime import Runtime
from bot.said import Said


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _names(request: Request) -> Names | None:
    """People's names for Slack user ids (`bot.people`), when Slack is configured."""
    return _runtime(request).people


def _redactor(request: Request) -> Redactor:
    """This app's redactor (`Runtime.redactor`): what a postmortem shows and keeps is redacted with it."""
    return _runtime(request).redactor


def drafting(request: Request) -> editor.Drafting:
    """How this process renders postmortem drafts (call it off the event loop: the SLO file is read once)."""
    runtime = _runtime(request)
    return editor.Drafting(templates_dir=runtime.settings.templates_dir, names=_names(request), slos=runtime.slos,
                          redactor=runtime.redactor, budget=runtime.budget)


# ---- the list and the incident page ----

async def incidents_page(request: Request) -> HTMLResponse:
    status = request.query_params.get("status") or None
    if status and status not in (*lifecycle.STATUSES, "open"):
        status = None
    rows = await run_in_threadpool(read_model.incident_rows, _runtime(request).engine, status=status)
    return render(request, "incidents.html", rows=rows, status=status, statuses=lifecycle.STATUSES)


async def incident_page(request: Request) -> HTMLResponse:
    incident_id = incident_id_of(request)
    names = _names(request)
    page = await run_in_threadpool(read_model.incident_page, _runtime(request).engine, incident_id)
    return render(request, "incident.html", **vars(page), pinned_kind=PINNED_KIND,
                  who=lambda actor: person(actor, names), with_names=lambda text: named_mentions(text, names),
                  line=lambda event: display(Said.from_row(event.text, event.data), names))


# ---- the postmortem: page, Markdown and form ----

async def postmortem_page(request: Request) -> HTMLResponse:
    incident_id = incident_id_of(request)
    shown = await run_in_threadpool(lambda: editor.view(_runtime(request).engine, incident_id, drafting(request)))
    return render(request, "postmortem.html", incident=shown.incident, ref=shown.ref, pm=shown.pm, text=shown.text,
                  draft_changed=shown.draft_changed, saved=request.query_params.get("saved"))


async def postmortem_markdown(request: Request) -> Response:
    incident_id = incident_id_of(request)
    shown = await run_in_threadpool(lambda: editor.view(_runtime(request).engine, incident_id, drafting(request)))
    return Response(shown.text, media_type="text/markdown; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


async def postmortem_form(request: Request) -> Response:
    form, person = form_of(request), person_of(request)
    incident_id = incident_id_of(request)
    if "text" not in form:
        return PlainTextResponse("the form needs a 'text' field", status_code=400)
    await run_in_threadpool(lambda: editor.edit(_runtime(request).engine, incident_id, form["text"], drafting(request),
                                                by=person.user_id))
    return RedirectResponse(f"/incidents/{incident_id}/postmortem?saved=1", status_code=303)


async def postmortem_regenerate(request: Request) -> Response:
    person = person_of(request)
    incident_id = incident_id_of(request)
    await run_in_threadpool(lambda: editor.regenerate(_runtime(request).engine, incident_id, drafting(request),
                                                      by=person.user_id))
    return RedirectResponse(f"/incidents/{incident_id}/postmortem", status_code=303)


routes = [
    Route("/incidents", readers_only(incidents_page, page=True), methods=["GET"], errors=page_style),
    Route("/incidents/{incident_id:int}", readers_only(incident_page, page=True), methods=["GET"], errors=page_style),
    Route("/incidents/{incident_id:int}/postmortem", readers_only(postmortem_page, page=True), methods=["GET"],
          errors=page_style),
    Route("/incidents/{incident_id:int}/postmortem", people_only(postmortem_form), methods=["POST"],
          errors=page_style),
    Route("/incidents/{incident_id:int}/postmortem/regenerate", people_only(postmortem_regenerate), methods=["POST"],
          errors=page_style),
    Route("/incidents/{incident_id:int}/postmortem.md", readers_only(postmortem_markdown, page=True), methods=["GET"],
          errors=text_style),
]
