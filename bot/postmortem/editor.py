"""The postmortem as people read and edit it on the web and through the API.

Each call is one transaction. Reading never writes: a postmortem not stored yet is a draft
rendered on request (`store.stored_or_preview`). Edits and regenerations are on the timeline with
who made them (`bot.postmortem.store`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bot.clock import iso
from bot.incidents import service
from bot.incidents.budget import ErrorBudget
from bot.people import Names
from bot.postmortem import store
from bot.postmortem.assemble import incident_ref
from bot.redact import Redactor
from bot.slo.spec import SLO
from bot.store.db import transaction
from bot.store.models import Incident, Postmortem

API_ACTOR = store.API_ACTOR


@dataclass(frozen=True)
class Drafting:
    """How drafts are rendered here: the template folder, people's names, the SLO catalogue."""

    templates_dir: Path | None = None
    names: Names | None = None
    slos: Sequence[SLO] = field(default_factory=tuple)
    redactor: Redactor | None = None  # the process's (`Runtime.redactor`); None: the default rules
    budget: ErrorBudget | None = None  # the process's (`Runtime.budget`: Prometheus when set); None: from traces


@dataclass(frozen=True)
class PostmortemView:
    incident: Incident
    ref: str
    pm: Postmortem
    text: str  # the edit if there is one, else the draft
    draft_changed: bool  # regenerated after the edit: the page says so

    def as_json(self) -> dict[str, Any]:
        """The body of ``/api/incidents/{id}/postmortem`` (documented in README)."""
        pm = self.pm
        return {
            "incident_id": pm.incident_id, "text": self.text, "draft": pm.draft, "edited": pm.edited,
            "generated_at": iso(pm.generated_at), "edited_at": iso(pm.edited_at),
            "draft_changed_since_edit": self.draft_changed,
        }


def _view(incident: Incident, pm: Postmortem) -> PostmortemView:
    return PostmortemView(incident=incident, ref=incident_ref(incident), pm=pm, text=store.current_text(pm),
                          draft_changed=store.draft_changed_since_edit(pm))


def view(engine: Engine, incident_id: int, drafting: Drafting) -> PostmortemView:
    """The stored postmortem, or a draft rendered now and not stored; raises `NotFound`."""
    _ask_prometheus(engine, incident_id, drafting)
    with transaction(engine) as session:
        incident = service.get(session, incident_id)
        return _view(incident, store.stored_or_preview(session, incident_id, templates_dir=drafting.templates_dir,
                                                       names=drafting.names, slos=drafting.slos,
                                                       redactor=drafting.redactor, budget=drafting.budget))


def edit(engine: Engine, incident_id: int, text: str, drafting: Drafting, *, by: str) -> PostmortemView:
    """Store a person's (or the API's) version; empty text goes back to the draft. Raises `NotFound`."""
    with transaction(engine) as session:
        pm = store.save_edit(session, incident_id, text, templates_dir=drafting.templates_dir, names=drafting.names,
                             redactor=drafting.redactor,
                             by=by)
        return _view(service.get(session, incident_id), pm)


def regenerate(engine: Engine, incident_id: int, drafting: Drafting, *, by: str) -> None:
    """Render the draft again from the record; an edit is kept. Raises `NotFound`."""
    _ask_prometheus(engine, incident_id, drafting)
    with transaction(engine) as session:
        store.generate(session, incident_id, templates_dir=drafting.templates_dir, names=drafting.names, by=by,
                       slos=drafting.slos, redactor=drafting.redactor, budget=drafting.budget)


def _ask_prometheus(engine: Engine, incident_id: int, drafting: Drafting) -> None:
    """The budget's figure from Prometheus (when set) is asked for before the draft's transaction."""
    if drafting.budget is not None:
        drafting.budget.fetch(engine, incident_id)
