"""An incident's impact measured from the traffic it hit, not guessed: requests served, the
failing fraction and the users or sessions affected, over the incident's window, with where the
figures came from. (The error budget consumed is `bot.incidents.budget`'s.)

Failing means bad by the SLO's trace rule when the incident's SLO is known (the same rule the
built-in watcher and the guard use), else warroom's failure rules (``Trace.failed``). Users and
sessions are counted from an id the traces carry in their attributes (``user_id``/``user.id``/
``enduser.id``, else ``session_id``/``session.id``); the ids themselves are never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlmodel import Session, col

from bot.slo.spec import SLO
from bot.store.models import Incident, Trace

# Trace attributes that name a person or a session (warroom's own, then OpenTelemetry's names).
PEOPLE_FIELDS = {"users": ("user_id", "user.id", "enduser.id"), "sessions": ("session_id", "session.id")}


@dataclass(frozen=True)
class Figures:
    requests: int
    failing: int
    people_affected: int | None  # None: the traces carry no user or session id
    people_kind: str | None  # "users" | "sessions"
    source: str  # where the figures come from, in words

    @property
    def failing_fraction(self) -> float | None:
        return self.failing / self.requests if self.requests else None


def from_traces(session: Session, incident: Incident, slo: SLO | None, start: datetime,
                end: datetime) -> Figures | None:
    """None when the service sent no traces in the window (nothing to measure, not "no impact")."""
    if not incident.service:
        return None
    field = slo.trace.field if slo and slo.trace else None
    columns = [Trace.failed, Trace.data["attributes"]]
    if field:
        columns.append(Trace.data[field])
    rows = session.execute(select(*columns).where(col(Trace.service) == incident.service, col(Trace.timestamp) >= start,
                                                  col(Trace.timestamp) <= end)).all()
    if not rows:
        return None
    requests = 0
    people: dict[str, set[str]] = {kind: set() for kind in PEOPLE_FIELDS}
    failing = 0
    for row in rows:
        failed = bool(row[0])
        if slo is not None and slo.trace is not None and field:
            event = {field: row[-1]}
            if not slo.trace.applies(event):
                continue
            failed = slo.trace.is_bad(event)
        requests += 1
        if failed:
            failing += 1
            attributes = row[1] if isinstance(row[1], dict) else {}
            for kind, names in PEOPLE_FIELDS.items():
                found = next((attributes[n] for n in names if attributes.get(n) not in (None, "")), None)
                if found is not None:
                    people[kind].add(str(found))
    counted = next((k for k in PEOPLE_FIELDS if people[k]), None)
    rule = (f"{slo.name} SLO rule {slo.trace}" if slo is not None and slo.trace is not None
            else "warroom's failure rules")
    return Figures(requests=requests, failing=failing, people_affected=len(people[counted]) if counted else None,
                   people_kind=counted,
                   source=f"{len(rows)} traces from {incident.service} in the incident window; failing by {rule}")


def traffic_line(session: Session, incident: Incident, start: datetime, end: datetime) -> str | None:
    """For the card: "Traffic since it started: 1,204 requests, 8.1 % failing (traces, warroom's
    failure rules)"; two aggregates over the (service, time) index, so a card refresh stays cheap."""
    if not incident.service:
        return None
    total, failed = session.execute(select(func.count(), func.sum(case((col(Trace.failed).is_(True), 1), else_=0)))
                                    .where(col(Trace.service) == incident.service, col(Trace.timestamp) >= start,
                                           col(Trace.timestamp) <= end)).one()
    if not total:
        return None
    line = f"Traffic since it started: {total:,} requests, {int(failed or 0) / total:.1%} failing".replace("%", " %")
    for kind, names in PEOPLE_FIELDS.items():
        person = func.coalesce(*(col(Trace.data)[("attributes", name)].as_string() for name in names))
        people = session.execute(select(func.count(func.distinct(person))).where(
            col(Trace.service) == incident.service, col(Trace.timestamp) >= start, col(Trace.timestamp) <= end,
            col(Trace.failed).is_(True))).scalar_one()
        if people:
            line += f", {people:,} {kind} affected"
            break
    return line + " (from traces, by warroom's failure rules)"
