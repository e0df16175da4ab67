"""``/incident merge`` and ``/incident split``: move alert groups between incidents by hand.

Correlation (`bot.alerts.correlation`) puts a cause's groups in one incident when it can tell;
these are for when it could not (two services, a group that came after the window) or joined one
too many. Each undoes the other: a merged group can be split out again, a split one merged back.

What belongs to an incident is its alert rows (``alert.incident_id``: the counts, the card's
groups and the intake's "did the incident's last group resolve?") and, for each group, the
incident its next notification goes to (``alert_group.current_incident_id``). Both move together.
A merge also moves the merged incident's linked traces; a split leaves them where they are, since
a trace is linked by service and time, not by alert group.

Locks are taken in the alert intake's order (`bot.alerts.store`): the groups (by
``group_key_hash``), then the correlation keys (by ``key_hash``), then the incidents (by id). A
notification being applied to one of these groups meanwhile is waited for, and one that comes
after sees the groups where the merge or split left them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col

from bot.alerts import correlation
from bot.clock import utcnow
from bot.effects import ArchiveChannel
from bot.errors import NotFound, UserError
from bot.incidents import lifecycle, metrics, service, timeline
from bot.incidents.service import GroupSummary
from bot.said import said, who
from bot.store import outbox
from bot.store.models import Alert, AlertGroup, Correlation, Incident, Trace, saved_id

NAME_LENGTH = 200  # Incident.service and Incident.slo, as the intake cuts them
MAX_NAMED = 8  # groups named in one timeline line; the rest are counted

# (labels, annotations) -> (runbook id, severity override or None): the runtime's runbook choice.
ChooseRunbook = Callable[[dict[str, str], dict[str, str]], tuple[str | None, int | None]]


@dataclass(frozen=True)
class Merged:
    into: int
    merged: list[int]
    groups: list[str]  # the names of the groups that moved
    severity: int  # the incident's severity after the merge


@dataclass(frozen=True)
class Split:
    source: int
    new_incident: int
    group: str
    source_resolved: bool  # the group was the last one firing: the incident it left resolved


# --- merge ---------------------------------------------------------------------------------


def merge(session: Session, into_id: int, ids: Sequence[int], *, actor: str) -> Merged:
    """Merge each incident of ``ids`` into ``into_id``: its groups and alerts move there, it
    resolves as "merged into #N", its channel is told so and archived."""
    others = list(dict.fromkeys(ids))
    if not others:
        raise UserError("Name the incidents to merge into this one: `/incident merge 41 42`.")
    if into_id in others:
        raise UserError(f"Incident #{into_id} cannot be merged into itself.")
    everyone = [into_id, *others]
    for incident_id in everyone:
        service.get(session, incident_id)  # NotFound, worded for the user, before any lock
    _lock_groups(session, col(AlertGroup.current_incident_id).in_(everyone))
    session.execute(select(col(Correlation.id)).where(col(Correlation.incident_id).in_(everyone))
                    .order_by(col(Correlation.key_hash)).with_for_update())
    locked = {i.id: i for i in session.execute(select(Incident).where(col(Incident.id).in_(everyone))
                                               .order_by(col(Incident.id)).with_for_update()
                                               .execution_options(populate_existing=True)).scalars()}
    target = locked[into_id]
    if not lifecycle.is_open(target.status):
        raise UserError(f"Incident #{into_id} is {target.status}: only an open incident takes others in "
                        f"(reopen it first: `/incident reopen {into_id}`).")
    for incident_id in others:
        if not lifecycle.is_open(locked[incident_id].status):
            merged_into = locked[incident_id].merged_into_id
            why = f"it was merged into #{merged_into}" if merged_into else f"it is {locked[incident_id].status}"
            raise UserError(f"Incident #{incident_id} cannot be merged: {why}. Only open incidents can be merged.")

    now = utcnow()
    moved: list[str] = []
    for incident_id in others:
        moved += _merge_one(session, locked[incident_id], target, actor=actor, at=now)
    service.refresh_card(session, target)
    return Merged(into=into_id, merged=others, groups=moved, severity=target.severity)


def _merge_one(session: Session, merged: Incident, target: Incident, *, actor: str, at: datetime) -> list[str]:
    merged_id, target_id = saved_id(merged), saved_id(target)
    groups = service.alert_groups(session, merged_id)
    session.execute(update(Alert).where(col(Alert.incident_id) == merged_id).values(incident_id=target_id))
    session.execute(update(AlertGroup).where(col(AlertGroup.current_incident_id) == merged_id)
                    .values(current_incident_id=target_id))
    # Later groups with the merged incident's key join the incident it went into.
    session.execute(update(Correlation).where(col(Correlation.incident_id) == merged_id)
                    .values(incident_id=target_id))
    # Its failing traces are evidence of the same cause: the postmortem, the impact and the eval
    # export of the incident it went into read them from there.
    traces = session.connection().execute(update(Trace).where(col(Trace.incident_id) == merged_id)
                                          .values(incident_id=target_id)).rowcount

    severity_before = target.severity
    target.severity = min(target.severity, merged.severity)
    target.alerts_unlisted = max(target.alerts_unlisted, merged.alerts_unlisted)
    target.monitoring_gap = target.monitoring_gap or merged.monitoring_gap
    names = [g.name for g in groups]
    raised = f"; severity SEV{severity_before} → SEV{target.severity}" if target.severity != severity_before else ""
    moved = f"; {traces} linked trace(s) moved with it" if traces else ""
    timeline.record(session, target, "merged",
                    said(f"Merged #{merged_id} ({merged.title}) into this incident by ", who(actor),
                         f": {groups_text(names, 'its groups', 'it had no alert groups')}{moved}{raised}"),
                    actor=actor, at=at, echo=True, data={"incident": merged_id, "groups": [g.group_id for g in groups],
                                                         "traces": traces})

    # The merged incident ends here: its people are told where to go before its channel goes.
    where = f" (<#{target.channel_id}>)" if target.channel_id else ""
    timeline.record(session, merged, "merged_into",
                    said(f"Merged into #{target_id}{where} by ", who(actor),
                         ". Follow the incident there; this channel will be archived."),
                    actor=actor, at=at, echo=True, data={"incident": target_id})
    _resolve_merged(session, merged, target_id, actor=actor, at=at)
    return names


def _resolve_merged(session: Session, incident: Incident, into_id: int, *, actor: str, at: datetime) -> None:
    """`service.resolve` without its postmortem nudge (the merged incident's story goes on in the
    other one) and with the channel archived, as `service.close` does."""
    lifecycle.check(incident.status, lifecycle.RESOLVED)
    incident.status, incident.resolved_at, incident.resolved_by = lifecycle.RESOLVED, at, actor
    incident.summary, incident.merged_into_id = f"merged into #{into_id}", into_id
    took = metrics.human(metrics.mttr(incident))
    timeline.record(session, incident, "resolved", said("Resolved by ", who(actor), f" (MTTR {took}): "
                                                        f"merged into #{into_id}"), actor=actor, at=at)
    service.cancel_waiting_actions(session, incident)
    service.refresh_card(session, incident)  # the card and the announcement say "merged into #N"
    outbox.enqueue(session, ArchiveChannel(incident_id=saved_id(incident)), key=f"archive:{incident.id}:merged",
                   incident_id=incident.id)


# --- split ---------------------------------------------------------------------------------


def split(session: Session, incident_id: int, group: str, *, actor: str, choose_runbook: ChooseRunbook | None,
          default_severity: int = 3) -> Split:
    """Give the alert group named ``group`` (as the card names it, or its id) of incident
    ``incident_id`` an incident and room of its own."""
    source = service.get(session, incident_id)
    if not lifecycle.is_open(source.status):
        raise UserError(f"Incident #{incident_id} is {source.status}: only an open incident's groups can be split "
                        "out.")
    groups = service.alert_groups(session, incident_id)
    chosen = _find_group(groups, group, incident_id)
    if len(groups) < 2:
        raise UserError(f"{chosen.name} is incident #{incident_id}'s only alert group: there is nothing to split "
                        "it from.")
    # The group, then the incident (the intake's order); read again under the locks.
    _lock_groups(session, col(AlertGroup.id) == chosen.group_id)
    source = service.get_for_update(session, incident_id)
    session.refresh(source)
    alerts = list(session.execute(select(Alert).where(col(Alert.group_id) == chosen.group_id,
                                                      col(Alert.incident_id) == incident_id)
                                  .order_by(col(Alert.id))).scalars())
    if not alerts or not lifecycle.is_open(source.status):
        raise UserError(f"{chosen.name} left incident #{incident_id} meanwhile; look at its card again.")
    group_row = session.get(AlertGroup, chosen.group_id)
    assert group_row is not None

    now = utcnow()
    new = _open_for(session, group_row, alerts, chosen.name, source_id=incident_id, actor=actor, at=now,
                    choose_runbook=choose_runbook, default_severity=default_severity)
    new_id = saved_id(new)
    session.execute(update(Alert).where(col(Alert.group_id) == chosen.group_id, col(Alert.incident_id) == incident_id)
                    .values(incident_id=new_id))
    group_row.current_incident_id = new_id
    if source.group_id == chosen.group_id:  # the incident was opened by this group: it is now led by the next
        source.group_id = next(g.group_id for g in groups if g.group_id != chosen.group_id)
    session.flush()
    timeline.record(session, source, "split",
                    said(f"Split alert group {chosen.name} out into incident #{new_id} by ", who(actor)),
                    actor=actor, at=now, echo=True, data={"incident": new_id, "group_id": chosen.group_id})
    service.open_room(session, new)
    resolved = _resolve_if_quiet(session, source, new_id, actor=actor, at=now)
    if not resolved:
        service.refresh_card(session, source)
    return Split(source=incident_id, new_incident=new_id, group=chosen.name, source_resolved=resolved)


def _find_group(groups: list[GroupSummary], wanted: str, incident_id: int) -> GroupSummary:
    text = wanted.strip().strip("`\"'").strip()
    if not text:
        raise UserError("Name the alert group to split out, as the card names it: "
                        "`/incident split schema-valid-rate (ticket)`.")
    found = [g for g in groups if g.name.casefold() == text.casefold()]
    if not found and text.isdigit():
        found = [g for g in groups if g.group_id == int(text)]
    known = ", ".join(f"{g.name} (id {g.group_id})" for g in groups) or "none"
    if not found:
        raise NotFound(f"Incident #{incident_id} has no alert group {text}. Its groups: {known}.")
    if len(found) > 1:
        raise UserError(f"Incident #{incident_id} has {len(found)} groups named {text}: name one by its id. "
                        f"Its groups: {known}.")
    return found[0]


def _open_for(session: Session, group: AlertGroup, alerts: list[Alert], name: str, *, source_id: int, actor: str,
              at: datetime, choose_runbook: ChooseRunbook | None, default_severity: int) -> Incident:
    """The group's new incident, as the intake would have opened it for these alerts."""
    firing = [a for a in alerts if a.status == "firing"] or alerts
    labels = _common([a.labels or {} for a in firing])
    annotations = _common([a.annotations or {} for a in firing])
    runbook_id, override = choose_runbook(labels, annotations) if choose_runbook else (None, None)
    severity = override or min((a.severity for a in firing), default=default_severity)
    title = _title(labels, annotations, firing[0])
    incident = Incident(
        title=title, severity=severity, service=_cut(correlation.label_value(labels, "service")),
        slo=_cut(correlation.label_value(labels, "slo")), group_id=group.id, source=group.source, labels=labels,
        annotations=annotations, links=_links(alerts), runbook_id=runbook_id, opened_at=at, updated_at=at,
        alerts_unlisted=group.alerts_unlisted, monitoring_gap=any(a.monitoring_gap for a in alerts))
    session.add(incident)
    session.flush()
    timeline.record(session, incident, "opened",
                    said(f"Incident opened by splitting alert group {name} out of incident #{source_id} by ",
                         who(actor), f": {title}"), actor=actor, at=at, data={"incident": source_id})
    return incident


def _resolve_if_quiet(session: Session, incident: Incident, split_to: int, *, actor: str, at: datetime) -> bool:
    """The group split out was the incident's last firing one: nothing is left to wait for, so it
    resolves as it would have when that group resolved (a truncated group may hide alerts: not then)."""
    incident_id = saved_id(incident)
    firing = session.execute(select(col(Alert.id)).where(col(Alert.incident_id) == incident_id,
                                                         col(Alert.status) == "firing").limit(1)).first()
    truncated = session.execute(select(col(AlertGroup.id)).where(col(AlertGroup.current_incident_id) == incident_id,
                                                                 col(AlertGroup.alerts_unlisted) > 0).limit(1)).first()
    if firing or truncated:
        return False
    service.resolve(session, incident, actor=actor, at=at,
                    summary=f"its last firing alert group was split out into #{split_to}")
    return True


# --- shared --------------------------------------------------------------------------------


def _lock_groups(session: Session, where: ColumnElement[bool]) -> None:
    """Lock the groups ``where`` says in ``group_key_hash`` order, the intake's (on SQLite the
    transaction's writer lock already keeps the intake out)."""
    session.execute(select(col(AlertGroup.id)).where(where).order_by(col(AlertGroup.group_key_hash)).with_for_update())


def groups_text(names: list[str], some: str, none: str) -> str:
    if not names:
        return none
    shown = ", ".join(names[:MAX_NAMED])
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return f"{some} {shown}{more}"


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    """What every map says alike: the group's common labels (or annotations), as Alertmanager's
    ``commonLabels`` would give them."""
    if not maps:
        return {}
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def _title(labels: dict[str, str], annotations: dict[str, str], alert: Alert) -> str:
    """As the intake titles a new incident: its title or summary annotation, else the alert name
    with its service and SLO."""
    for key in ("title", "summary"):
        text = annotations.get(key) or (alert.annotations or {}).get(key)
        if text:
            return text.strip()[:300]
    name = labels.get("alertname") or (alert.labels or {}).get("alertname") or "Alert"
    where = [v for v in (correlation.label_value(labels, "service"), correlation.label_value(labels, "slo")) if v]
    return f"{name} ({' · '.join(where)})" if where else name


def _links(alerts: list[Alert]) -> list[dict[str, str]]:
    """The runbook, dashboard and source links of the group's alerts, each once."""
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for alert in alerts:
        extra: dict[str, Any] = alert.extra or {}
        for title, url in (("Runbook", (alert.annotations or {}).get("runbook_url", "")),
                           ("Dashboard", str(extra.get("dashboardURL", ""))),
                           ("Panel", str(extra.get("panelURL", ""))), ("Source query", alert.generator_url or "")):
            if url.startswith(("http://", "https://")) and url not in seen and len(links) < 12:
                seen.add(url)
                links.append({"title": title, "url": url})
    return links


def _cut(text: str | None) -> str | None:
    return text[:NAME_LENGTH] if text else text

