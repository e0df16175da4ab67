"""Incident channel names: a template, then Slack's rules.

Slack accepts lowercase a–z, 0–9, ``-`` and ``_``, at most 80 characters (``conversations.create``
answers ``invalid_name_specials`` / ``invalid_name_maxlength`` otherwise). Unicode is
transliterated where NFKD gives an ASCII base (``é`` → ``e``) and dropped otherwise; the name is
never empty. The default template names the incident (``inc-{id}-{slug}``), so names do not clash
in the first place; on a clash (``name_taken``) the room adds the incident number unless the name
already has it, then ``-2``, ``-3`` …, within the length limit.
"""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import datetime

from bot.config import DEFAULT_CHANNEL_TEMPLATE

MAX_LENGTH = 80
_INVALID = re.compile(r"[^a-z0-9_-]+")
_DASHES = re.compile(r"-{2,}")


def slugify(text: str, limit: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _DASHES.sub("-", _INVALID.sub("-", ascii_text.lower())).strip("-_")
    return slug[:limit].rstrip("-_")


def channel_name(template: str, *, incident_id: int, opened_at: datetime, title: str,
                 service: str | None = None, slo: str | None = None, severity: int = 3) -> str:
    values = {
        "date": opened_at.strftime("%Y%m%d"), "id": str(incident_id), "severity": f"sev{severity}",
        "service": slugify(service or ""), "slo": slugify(slo or ""),
        "slug": slugify("-".join(p for p in (service, slo) if p) or title) or f"incident-{incident_id}",
        "title": slugify(title),
    }
    try:
        raw = template.format(**values)
    except (KeyError, IndexError, ValueError):
        raw = DEFAULT_CHANNEL_TEMPLATE.format(**values)
    return sanitise(raw) or f"inc-{incident_id}"


def names_the_incident(template: str) -> bool:
    """Whether names from ``template`` carry the incident number (a broken template falls back to the default)."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError:
        return True
    return "id" in fields


def clash_name(base: str, *, incident_id: int, attempt: int, template: str) -> str:
    """The name to ask for on ``attempt`` (1: ``base``): after a clash the incident number makes it
    unique at once (a storm of one alert kind would otherwise walk -2, -3, … one Slack call each),
    unless the template already put it in; ``-N`` after that is a fallback."""
    if attempt <= 1:
        return base
    if names_the_incident(template):
        return with_suffix(base, attempt)
    return with_suffix(f"{base[:70]}-{incident_id}", attempt - 1)


def sanitise(name: str) -> str:
    return slugify(name, limit=MAX_LENGTH)


def with_suffix(name: str, attempt: int) -> str:
    """``attempt`` 1 is the name itself; 2 gives ``name-2``, cut so the whole stays within 80."""
    if attempt <= 1:
        return name
    suffix = f"-{attempt}"
    return name[: MAX_LENGTH - len(suffix)].rstrip("-_") + suffix
