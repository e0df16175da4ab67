"""The stored postmortem: one row per incident holding the generated draft and a human's edit.

Regenerating never overwrites what a person wrote. The new draft lands in ``draft``; ``edited``
stays, and ``draft_changed_since_edit`` tells the page to say so. ``generated_at`` moves only
when the draft's text changes, so regenerating an unchanged record raises no false notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session, col

from bot import redact
from bot.clock import as_utc, utcnow
from bot.incidents import service, timeline
from bot.incidents.budget import ErrorBudget
from bot.people import Names
from bot.postmortem.assemble import POSTMORTEM_EDIT_KIND, build_context
from bot.postmortem.render import render_postmortem
from bot.redact import Redactor
from bot.said import said, who
from bot.slo.spec import SLO
from bot.store.db import insert_or_ignore
from bot.store.models import Postmortem

API_ACTOR = "api"  # edits through PUT /api/incidents/{id}/postmortem, which takes the bearer token


def get(session: Session, incident_id: int) -> Postmortem | None:
    if not 0 < incident_id <= service.MAX_ID:
        return None  # no incident has that number; generating says so (NotFound) without a query the DB refuses
    return session.execute(select(Postmortem).where(col(Postmortem.incident_id) == incident_id)).scalar_one_or_none()


def generate(session: Session, incident_id: int, *, templates_dir: Path | None = None,
             redactor: Redactor | None = None, budget_slo: SLO | None = None, names: Names | None = None,
             by: str | None = None, slos: Sequence[SLO] = (), budget: ErrorBudget | None = None) -> Postmortem:
    """Render the draft from the current record and store it; a human edit is kept as it is.

    ``names`` shows people by name instead of Slack user id (`bot.people`); ``by``: the person who
    asked for it on the page; the timeline says so.
    """
    ctx = build_context(session, incident_id, redactor=redactor, budget_slo=budget_slo, names=names, slos=slos,
                        budget=budget)
    text = render_postmortem(ctx, templates_dir, redactor=redactor)
    now = utcnow()
    if by is not None:
        _attribute(session, incident_id, by, "regenerated the postmortem draft")
    # The unique incident_id decides who creates the row when two requests generate at once.
    insert_or_ignore(session, Postmortem, {"incident_id": incident_id, "draft": text, "generated_at": now},
                     ["incident_id"])
    pm = _locked(session, incident_id)
    if pm.draft != text:
        pm.draft, pm.generated_at = text, now
    session.flush()
    return pm


def get_or_generate(session: Session, incident_id: int, *, templates_dir: Path | None = None,
                    names: Names | None = None, redactor: Redactor | None = None) -> Postmortem:
    return get(session, incident_id) or generate(session, incident_id, templates_dir=templates_dir, names=names,
                                                 redactor=redactor)


def stored_or_preview(session: Session, incident_id: int, *, templates_dir: Path | None = None,
                      names: Names | None = None, slos: Sequence[SLO] = (),
                      redactor: Redactor | None = None, budget: ErrorBudget | None = None) -> Postmortem:
    """What a reader sees: the stored record, or a draft rendered now and not stored (a GET never writes)."""
    stored = get(session, incident_id)
    if stored is not None:
        return stored
    service.get(session, incident_id)  # NotFound for an incident that does not exist
    text = render_postmortem(build_context(session, incident_id, names=names, slos=slos, redactor=redactor,
                                           budget=budget),
                             templates_dir, redactor=redactor)
    return Postmortem(incident_id=incident_id, draft=text, generated_at=utcnow())  # never added to the session


def save_edit(session: Session, incident_id: int, text: str, *, templates_dir: Path | None = None,
              names: Names | None = None, by: str | None = None, redactor: Redactor | None = None) -> Postmortem:
    """Store a human's version. Empty text drops the edit, so the page shows the draft again.

    ``by``: who edited (a Slack user id, or "api" for the bearer-token API); the timeline says so.
    """
    service.get(session, incident_id)  # NotFound before anything is written
    get_or_generate(session, incident_id, templates_dir=templates_dir, names=names, redactor=redactor)
    pm = _locked(session, incident_id)
    text = text.replace("\r\n", "\n")  # browsers send textarea lines with CRLF
    if text.strip():
        # A credential pasted into the edit is not kept: the text is shown, exported and posted.
        pm.edited, pm.edited_at = (redactor or redact.DEFAULT).redact_credentials(text), utcnow()
    else:
        pm.edited, pm.edited_at = None, None
    if by is not None:
        _attribute(session, incident_id, by, "edited the postmortem" if pm.edited is not None
                   else "dropped the postmortem edit (back to the generated draft)")
    session.flush()
    return pm


def _attribute(session: Session, incident_id: int, by: str, did: str) -> None:
    by_whom = "The API (bearer token)" if by == API_ACTOR else who(by)
    timeline.record(
        session, service.get(session, incident_id), POSTMORTEM_EDIT_KIND, said(by_whom, f" {did}"), actor=by
    )


def current_text(pm: Postmortem) -> str:
    return pm.edited if pm.edited is not None else pm.draft


def draft_changed_since_edit(pm: Postmortem) -> bool:
    generated, edited = as_utc(pm.generated_at), as_utc(pm.edited_at)
    return pm.edited is not None and edited is not None and generated > edited


def _locked(session: Session, incident_id: int) -> Postmortem:
    # populate_existing: the identity map may hold the row as it was before another writer committed.
    stmt = (select(Postmortem).where(col(Postmortem.incident_id) == incident_id).with_for_update()
            .execution_options(populate_existing=True))
    return session.execute(stmt).scalar_one()
