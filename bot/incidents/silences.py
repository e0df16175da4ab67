"""Alertmanager silences (API v2): mute an incident's alert group while people work on it.

Alertmanager refuses a bad silence with 400 (a JSON string: "start time must be before end
time", an invalid matcher …) or, when the body does not fit its schema, 422 (``{"code",
"message"}``). The user can fix those, so they become a `UserError` carrying Alertmanager's
words; an unreachable or failing Alertmanager is an `ExternalError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import iso, utcnow
from bot.errors import ExternalError, NotFound, UserError
from bot.incidents import metrics, service, timeline
from bot.postmortem.assemble import incident_ref
from bot.said import said, who
from bot.store.db import transaction
from bot.store.models import AlertGroup, Incident

MAX_DURATION = timedelta(days=7)
DURATION_HINT = "e.g. `30m`, `2h` or `1h30m`, at most 7 days"
_PART = re.compile(r"(\d+)([dhm])")
_UNIT = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
# Without group labels these still pick out the incident's alert, and nothing much broader.
_FALLBACK_LABELS = ("alertname", "service", "slo")


@dataclass(frozen=True)
class Silence:
    id: str
    ends_at: datetime
    matchers: dict[str, str]


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``1h30m`` → a timedelta; anything else is refused, saying why."""
    value = text.strip().lower()
    if not value:
        raise UserError(f"Say how long to silence for ({DURATION_HINT}).")
    if value.startswith("-"):
        raise UserError(f"A silence cannot last a negative time ({text.strip()}); {DURATION_HINT}.")
    parts = _PART.findall(value)
    units = [unit for _, unit in parts]
    in_order = units == sorted(units, key="dhm".index) and len(set(units)) == len(units)
    if not parts or "".join(n + u for n, u in parts) != value or not in_order:
        raise UserError(f"`{text.strip()}` is not a duration; {DURATION_HINT}.")
    total = sum((int(n) * _UNIT[u] for n, u in parts), timedelta())
    if total <= timedelta():
        raise UserError(f"A silence must last longer than 0 ({DURATION_HINT}).")
    if total > MAX_DURATION:
        # Longer mutes outlive the incident and hide the next one; fix the alert instead.
        raise UserError(f"{text.strip()} is longer than 7 days, the most a silence may last.")
    return total


def create_silence(client: httpx.Client, alertmanager_url: str, *, matchers: dict[str, str], duration: timedelta,
                   created_by: str, comment: str, incident_ref: str, now: datetime) -> str:
    """Create a silence from ``now`` for ``duration``; the id Alertmanager gave it."""
    if not matchers:
        raise UserError("There are no alert labels to silence.")
    body = {
        "matchers": [{"name": name, "value": value, "isRegex": False, "isEqual": True}
                     for name, value in sorted(matchers.items())],
        "startsAt": iso(now),
        "endsAt": iso(now + duration),
        "createdBy": created_by,
        "comment": comment,
        # Read by Alertmanager 0.32+, ignored by older ones (the comment names the incident for them).
        "annotations": {"incident": incident_ref},
    }
    response = _call(client, "POST", f"{_base(alertmanager_url)}/silences", json=body)
    payload = response.json()
    if not isinstance(payload, dict) or not payload.get("silenceID"):
        raise ExternalError(f"Alertmanager accepted the silence but sent no silenceID: {response.text[:200]}")
    # Always the returned id: an update that rewrites history comes back under a new one.
    return str(payload["silenceID"])


def expire_silence(client: httpx.Client, alertmanager_url: str, silence_id: str) -> None:
    """End a silence now. Expiring one that has already ended is fine; an unknown id is `NotFound`."""
    url = f"{_base(alertmanager_url)}/silence/{quote(silence_id, safe='')}"
    try:
        _call(client, "DELETE", url)
    except ExternalError as exc:
        # 0.25 answers an unknown id with 500 "silence not found"; newer versions with 404.
        if "not found" in str(exc).lower():
            raise NotFound(f"Alertmanager has no silence {silence_id}.") from exc
        raise


def incident_matchers(session: Session, incident: Incident) -> dict[str, str]:
    """The labels that pick out the incident's alert group, as equality matchers."""
    group = session.get(AlertGroup, incident.group_id) if incident.group_id else None
    if group is not None and group.group_labels:
        return dict(group.group_labels)
    # A group without group_by labels ({}:{}) would silence everything; name the alert instead.
    labels = {name: incident.labels[name] for name in _FALLBACK_LABELS if incident.labels.get(name)}
    if "alertname" not in labels:
        raise UserError(f"Incident #{incident.id} did not come from an alert, so there is nothing to silence.")
    return labels


def silence_incident(engine: Engine, client: httpx.Client, alertmanager_url: str, incident_id: int, *,
                     duration: timedelta, actor: str, now: datetime | None = None) -> Silence:
    """Silence the incident's alert group and put the silence on its timeline."""
    now = now or utcnow()
    with transaction(engine) as session:
        incident = service.get(session, incident_id)
        matchers = incident_matchers(session, incident)
        ref = incident_ref(incident)
        comment = f"warroom incident #{incident.id} ({ref}): {incident.title}"
    # No transaction is held across the HTTP call: a slow Alertmanager must not lock the incident.
    silence_id = create_silence(client, alertmanager_url, matchers=matchers, duration=duration,
                                created_by=f"warroom/{actor}", comment=comment, incident_ref=ref, now=now)
    silence = Silence(id=silence_id, ends_at=now + duration, matchers=matchers)
    with transaction(engine) as session:
        incident = service.get(session, incident_id)
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted(matchers.items()))
        timeline.record(session, incident, "silenced",
                        said(who(actor), f" silenced the alert group for {metrics.human(duration)} "
                             f"(until {silence.ends_at:%Y-%m-%d %H:%M} UTC; {labels}); silence {silence_id}"),
                        actor=actor, at=now, echo=True,
                        data={"silence_id": silence_id, "ends_at": iso(silence.ends_at), "matchers": matchers})
    return silence


def _base(alertmanager_url: str) -> str:
    return alertmanager_url.rstrip("/") + "/api/v2"


def _call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ExternalError(f"Alertmanager at {url.split('/api/')[0]} did not answer ({type(exc).__name__})") from exc
    if response.status_code in (400, 422):
        raise UserError(f"Alertmanager refused the silence: {_message(response)}")
    if response.status_code == 404:
        raise ExternalError(f"Alertmanager: not found ({_message(response)})")
    if response.status_code >= 300:
        raise ExternalError(f"Alertmanager answered {response.status_code}: {_message(response)}")
    return response


def _message(response: httpx.Response) -> str:
    """Alertmanager's own words: a JSON string (400), or go-swagger's ``{"code", "message"}`` (422)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body)[:300]
    return str(body)[:300]
