"""What people do to an incident from an edge (Slack today), each in its own transaction.

`bot.incidents.service` holds the rules and takes the caller's session; these functions take the
engine, open one transaction, apply one rule and commit, so the Slack listeners only parse,
authorise (they know the channel's members), call one of these and render the answer. The
incident returned is detached but loaded (sessions do not expire on commit): fine to render.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bot.automation.service import set_switch
from bot.effects import OpenRoom, PostMessage
from bot.evals.suite import SuiteCase, collect_incident, incident_case_counts, suite_cases
from bot.incidents import merge as merging
from bot.incidents import service, timeline
from bot.incidents.budget import ErrorBudget
from bot.people import Names
from bot.postmortem.store import current_text, generate
from bot.redact import Redactor
from bot.releases import cause
from bot.releases.cause import Cause
from bot.said import Person, said
from bot.slo.spec import SLO
from bot.store import outbox
from bot.store.db import transaction
from bot.store.models import Followup, Incident, TimelineEvent
from bot.traces import ingest as traces

# --- reading -------------------------------------------------------------------------------


def in_channel(engine: Engine, channel_id: str | None) -> int | None:
    """The incident whose channel this is (the newest, should a channel be reused), if any."""
    if not channel_id:
        return None
    with transaction(engine) as session:
        incident = service.by_channel(session, channel_id)
        return incident.id if incident else None


def existing(engine: Engine, incident_id: int) -> Incident:
    """The incident, or `NotFound` worded for the user."""
    with transaction(engine) as session:
        return service.get(session, incident_id)


def channel_of(engine: Engine, incident_id: int) -> str | None:
    """The incident's channel (None before its room is set up): what the permission check needs."""
    return existing(engine, incident_id).channel_id


def firing_alerts(engine: Engine, incident_id: int) -> int:
    with transaction(engine) as session:
        return service.alert_counts(session, incident_id)["firing"]


def with_alert_counts(engine: Engine, incident_id: int) -> tuple[Incident, dict[str, int]]:
    """The incident and how many of its alerts fire and are resolved (`/incident status`)."""
    with transaction(engine) as session:
        return service.get(session, incident_id), service.alert_counts(session, incident_id)


def followups(engine: Engine, incident_id: int) -> list[Followup]:
    with transaction(engine) as session:
        return service.followups(session, incident_id)


def open_incidents(engine: Engine, *, limit: int) -> list[Incident]:
    with transaction(engine) as session:
        return service.list_incidents(session, status="open", limit=limit)


def recent_timeline(engine: Engine, incident_id: int, *, limit: int) -> list[TimelineEvent]:
    """The last ``limit`` timeline events, oldest first."""
    with transaction(engine) as session:
        return list(reversed(timeline.events(session, incident_id, limit=limit, newest_first=True)))


def eval_cases(engine: Engine, incident_id: int, *, redactor: Redactor) -> tuple[list[SuiteCase], dict[str, int]]:
    """The incident's eval cases (its service's suite) and their counts by kind.

    Collecting is idempotent: new failures (and labels) since the last look join the suite now."""
    with transaction(engine) as session:
        incident = service.get(session, incident_id)
        collect_incident(session, incident_id, redactor=redactor)
        cases = suite_cases(session, incident.service or "unknown", incident_id=incident_id)
        return cases, incident_case_counts(session, incident_id)


# --- changing ------------------------------------------------------------------------------


def _change(engine: Engine, incident_id: int, apply: Callable[[Any, Incident], Any]) -> Incident:
    """Lock the incident (one change at a time per incident), apply, commit."""
    with transaction(engine) as session:
        incident = service.get_for_update(session, incident_id)
        apply(session, incident)
        return incident


def declare(engine: Engine, *, title: str, severity: int, actor: str, runbook_id: str | None,
            service_name: str | None = None, description: str | None = None) -> int:
    """Open an incident by hand; its number. Its room is set up by the worker."""
    with transaction(engine) as session:
        incident = service.declare(session, title=title, severity=severity, actor=actor, service=service_name,
                                   description=description, runbook_id=runbook_id)
        assert incident.id is not None
        return incident.id


def acknowledge(engine: Engine, incident_id: int, *, actor: str) -> Incident:
    return _change(engine, incident_id, lambda s, i: service.acknowledge(s, i, actor=actor))


def set_severity(engine: Engine, incident_id: int, severity: int, *, actor: str) -> Incident:
    return _change(engine, incident_id, lambda s, i: service.set_severity(s, i, severity, actor=actor))


def post_status(engine: Engine, incident_id: int, text: str, *, actor: str) -> Incident:
    return _change(engine, incident_id, lambda s, i: service.post_status(s, i, text, actor=actor))


def add_note(engine: Engine, incident_id: int, text: str, *, actor: str) -> Incident:
    return _change(engine, incident_id, lambda s, i: service.add_note(s, i, text, actor=actor))


def name_cause(engine: Engine, incident_id: int, words: str, *, actor: str) -> Cause:
    """`/incident cause`: a listed change (``v42``, ``#12``) or the responder's words (`bot.releases.cause`)."""
    named: list[Cause] = []
    _change(engine, incident_id, lambda s, i: named.append(cause.name(s, i, words, actor=actor)))
    return named[0]


def set_commander(engine: Engine, incident_id: int, user_id: str, *, actor: str) -> Incident:
    return _change(engine, incident_id, lambda s, i: service.set_commander(s, i, user_id, actor=actor))


def add_followup(engine: Engine, incident_id: int, text: str, *, actor: str, owner: str | None) -> Incident:
    return _change(engine, incident_id, lambda s, i: service.add_followup(s, i, text, actor=actor, owner=owner))


def reopen(engine: Engine, incident_id: int, *, actor: str, reason: str = "") -> Incident:
    return _change(engine, incident_id, lambda s, i: service.reopen(s, i, actor=actor, reason=reason))


def close(engine: Engine, incident_id: int, *, actor: str) -> Incident:
    return _change(engine, incident_id, lambda s, i: service.close(s, i, actor=actor))


def resolve(engine: Engine, incident_id: int, *, actor: str, summary: str | None) -> tuple[Incident, int]:
    """Resolve; the incident and how many of its alerts were still firing (said in the answer)."""
    firing: list[int] = []

    def apply(session: Any, incident: Incident) -> None:
        firing.append(service.alert_counts(session, incident_id)["firing"])
        service.resolve(session, incident, actor=actor, summary=summary or None)
    return _change(engine, incident_id, apply), firing[0]


def merge(engine: Engine, into_id: int, ids: Sequence[int], *, actor: str) -> merging.Merged:
    """``/incident merge``: the incidents ``ids`` go into ``into_id`` (`bot.incidents.merge`)."""
    with transaction(engine) as session:
        return merging.merge(session, into_id, ids, actor=actor)


def split(engine: Engine, incident_id: int, group: str, *, actor: str, choose_runbook: merging.ChooseRunbook | None,
          default_severity: int) -> merging.Split:
    """``/incident split``: the named alert group gets an incident and a room of its own."""
    with transaction(engine) as session:
        return merging.split(session, incident_id, group, actor=actor, choose_runbook=choose_runbook,
                             default_severity=default_severity)


def set_automation(engine: Engine, incident_id: int, *, on: bool, actor: str) -> str:
    """``/incident auto on|off``; the sentence that says what changed (or that nothing did)."""
    said: list[str] = []
    _change(engine, incident_id, lambda s, i: said.append(set_switch(s, i, on=on, actor=actor)))
    return said[0]


def promote(engine: Engine, incident_id: int, *, actor: str) -> None:
    """Record that a thread incident got its own channel (the caller made it) and set that room up."""
    with transaction(engine) as session:
        incident = service.get(session, incident_id)
        timeline.record(session, incident, "promoted", said(Person(actor), " promoted the incident to its own channel"),
                        actor=actor)
        outbox.enqueue(session, OpenRoom(incident_id=incident_id), key=f"room:{incident_id}:promoted",
                       incident_id=incident_id)
        service.refresh_card(session, incident, by=actor)  # the thread card loses its Promote button


def pin(engine: Engine, incident_id: int, *, text: str, at: datetime, channel: str, ts: str, pinner: str | None,
        author: str | None) -> bool:
    """A message someone marked as mattering (📌) joins the timeline, once per message; whether it
    is new. The event is the pinner's decision: they are its actor, the author is kept."""
    with transaction(engine) as session:
        incident = service.get(session, incident_id)
        recorded = timeline.record(session, incident, "pinned", text, actor=pinner or author, at=at,
                                   dedupe_key=pin_key(channel, ts),
                                   data={"channel": channel, "ts": ts, "pinned_by": pinner, "author": author}).id()
        return recorded is not None


def unpin(engine: Engine, *, channel: str | None, ts: str | None) -> bool:
    """The 📌 was taken back: the message leaves the timeline; whether it was there."""
    with transaction(engine) as session:
        return timeline.remove(session, pin_key(channel, ts))


def pin_key(channel: str | None, ts: str | None) -> str:
    return f"pin:{channel}:{ts}"


def label_trace(engine: Engine, request_id: str, *, incident_id: int | None, failure_type: str | None,
                expected: str | None, claim: str | None, notes: str | None, actor: str,
                redactor: Redactor) -> None:
    """Store a person's label on a failing trace; in an incident, also on its timeline, and the
    label reaches the service's eval suite at once."""
    with transaction(engine) as session:
        traces.label_trace(session, request_id, incident_id=incident_id, failure_type=failure_type, expected=expected,
                           unsupported_claim=claim, notes=notes, actor=actor)
        if incident_id is None:
            return
        incident = service.get(session, incident_id)
        timeline.record(session, incident, "trace_labelled",
                        said(Person(actor), f" labelled trace {request_id} as {failure_type}",
                             f"; expected: {expected}" if expected else None),
                        actor=actor, data={"request_id": request_id})
        collect_incident(session, incident_id, redactor=redactor)


def draft_postmortem(engine: Engine, incident_id: int, *, actor: str, title: str,
                     blocks: Callable[[str], list[dict[str, Any]]], templates_dir: Path | None,
                     names: Names | None, slos: Sequence[SLO], redactor: Redactor,
                     budget: ErrorBudget | None = None) -> None:
    """Draft the postmortem from the record and post it in the incident channel (``blocks`` lays
    the draft out for Slack; ``title`` is the message's plain text), on the timeline. ``budget``:
    the process's error budget (Prometheus, when set, is asked here, before the transaction)."""
    if budget is not None:
        budget.fetch(engine, incident_id)
    with transaction(engine) as session:
        collect_incident(session, incident_id, redactor=redactor)  # the draft counts this incident's eval cases
        text = current_text(generate(session, incident_id, templates_dir=templates_dir, names=names, slos=slos,
                                     redactor=redactor, budget=budget))
        outbox.enqueue(session, PostMessage(incident_id=incident_id, text=title, blocks=blocks(text)),
                       incident_id=incident_id)
        timeline.record(session, service.get(session, incident_id), "postmortem",
                        said(Person(actor), " drafted the postmortem"), actor=actor)
