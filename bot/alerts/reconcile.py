"""Truncated alert groups, reconciled against Alertmanager's API.

Alertmanager's ``max_alerts`` cuts a group's notification to its first alerts, and the notification
that ends the group is cut too, with nothing after it: warroom never sees every alert of such a
group resolve, so the intake never resolves its incident (`bot.alerts.intake`). With
WARROOM_ALERTMANAGER_URL set, a scheduler job asks Alertmanager (``GET /api/v2/alerts``) which of
the group's alerts are still active; when none is, the incident resolves.

The group's alerts are the ones carrying its group labels and matching its route's matchers (read
from the route key in ``groupKey``, ``{}/{severity="page"}:{…}``); alerts of another route with
the same labels also count, so a doubt keeps the incident open. Silenced and inhibited alerts
still fire: they count as active.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.clock import as_utc, utcnow
from bot.errors import ExternalError
from bot.incidents import lifecycle, service, timeline
from bot.store.db import transaction
from bot.store.models import Alert, AlertGroup, Incident

log = logging.getLogger(__name__)

ACTOR = "alertmanager"
_SEGMENT = re.compile(r'\{((?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}')
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*(?:,|$)')


def go_quote(value: str) -> str:
    """A label value as Go's ``strconv.Quote`` writes it, for the printable text label values are."""
    return json.dumps(value, ensure_ascii=False)


def group_filters(group_key: str, group_labels: dict[str, str]) -> list[str]:
    """Alertmanager ``filter`` matchers that select a group's alerts: its group labels, plus its
    route's matchers when the route key reads cleanly (otherwise the labels alone: broader)."""
    filters = [f"{name}={go_quote(value)}" for name, value in sorted(group_labels.items())]
    labels = "{" + ", ".join(f"{name}={go_quote(value)}" for name, value in sorted(group_labels.items())) + "}"
    if group_key.endswith(":" + labels):
        filters += route_matchers(group_key[: -len(labels) - 1])
    return filters


def route_matchers(route_key: str) -> list[str]:
    """``{}/{sloth_severity=~"page|ticket"}`` → ``['sloth_severity=~"page|ticket"']``; ``[]`` for
    anything it cannot read whole."""
    matchers: list[str] = []
    position = 0
    for segment in _SEGMENT.finditer(route_key):
        if segment.start() != position:
            return []
        position = segment.end() + 1  # the "/" between a route and its child
        inside, at = segment.group(1), 0
        while at < len(inside):
            matcher = _MATCHER.match(inside, at)
            if matcher is None:
                return []
            matchers.append(f"{matcher.group(1)}{matcher.group(2)}{matcher.group(3)}")
            at = matcher.end()
    return matchers if position == len(route_key) + 1 else []


def active_alerts(client: httpx.Client, alertmanager_url: str, filters: list[str]) -> list[dict[str, object]]:
    """The alerts Alertmanager holds as active (silenced and inhibited included) matching ``filters``."""
    url = alertmanager_url.rstrip("/") + "/api/v2/alerts"
    params = [("active", "true"), ("silenced", "true"), ("inhibited", "true"), ("unprocessed", "true")]
    try:
        response = client.get(url, params=tuple(params + [("filter", f) for f in filters]))
    except httpx.HTTPError as exc:
        raise ExternalError(f"Alertmanager at {alertmanager_url} did not answer ({type(exc).__name__})") from exc
    if response.status_code != 200:
        raise ExternalError(f"Alertmanager answered {response.status_code} to GET /api/v2/alerts: "
                            f"{response.text[:300]}")
    body = response.json()
    if not isinstance(body, list):
        raise ExternalError("Alertmanager's /api/v2/alerts did not answer a list")
    return body


def open_truncated(session: Session) -> list[tuple[int, str, dict[str, str]]]:
    """``(incident id, groupKey, group labels)`` of every open incident whose group Alertmanager truncated."""
    rows = session.execute(
        select(col(Incident.id), col(AlertGroup.group_key), col(AlertGroup.group_labels))
        .join(AlertGroup, col(AlertGroup.id) == col(Incident.group_id))
        .where(col(Incident.status).in_(lifecycle.OPEN_STATUSES), col(Incident.alerts_unlisted) > 0,
               col(Incident.source) == "alertmanager")
        .order_by(col(Incident.id))).all()
    return [(row.id, row.group_key, dict(row.group_labels or {})) for row in rows]


def reconcile_truncated(engine: Engine, client: httpx.Client, alertmanager_url: str,
                        now: datetime | None = None) -> int:
    """Resolve the open incidents of truncated groups none of whose alerts Alertmanager still
    holds as active; how many. An Alertmanager that fails is logged and asked again next tick."""
    with transaction(engine) as session:
        candidates = open_truncated(session)
    resolved = 0
    for incident_id, group_key, group_labels in candidates:
        asked = utcnow()
        try:
            active = active_alerts(client, alertmanager_url, group_filters(group_key, group_labels))
        except ExternalError as exc:
            log.warning("cannot reconcile incident #%s with Alertmanager (error %s): %s; next tick tries again",
                        incident_id, exc.error_id, exc)
            continue
        if active:
            continue
        with transaction(engine) as session:
            if _resolve(session, incident_id, asked, now or utcnow()):
                resolved += 1
    return resolved


def _resolve(session: Session, incident_id: int, asked: datetime, now: datetime) -> bool:
    incident = service.get_for_update(session, incident_id)
    if not lifecycle.is_open(incident.status) or not incident.alerts_unlisted:
        return False  # resolved, or complete again, meanwhile
    seen = session.execute(select(col(Alert.last_seen_at)).where(col(Alert.incident_id) == incident_id,
                                                            col(Alert.status) == "firing")).scalars()
    if any((as_utc(at) or asked) > asked for at in seen):
        return False  # a notification listed a firing alert after Alertmanager was asked: ask again next tick
    session.execute(update(Alert).where(col(Alert.incident_id) == incident_id, col(Alert.status) == "firing")
                    .values(status="resolved", ends_at=now, last_seen_at=now))
    timeline.record(session, incident, "reconciled",
                    f"Alertmanager lists none of this group's alerts as active any more; its notifications were "
                    f"truncated ({incident.alerts_unlisted} alert(s) not listed), so none could say so",
                    actor=ACTOR, at=now)
    service.resolve(session, incident, actor=ACTOR, at=now)
    return True
