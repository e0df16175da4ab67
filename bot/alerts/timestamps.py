"""RFC 3339 timestamps as Go writes them: up to nanosecond precision, and a year-1 "zero time"."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(text: str) -> datetime | None:
    """Parse ``text``; ``None`` for Go's zero time (``0001-01-01T00:00:00Z``: "not ended yet")."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:40]!r}")
    year = int(match.group(1))
    if year <= 1:
        return None
    fraction = (match.group(7) or "").ljust(6, "0")[:6]  # Python keeps microseconds
    zone = match.group(8).upper()
    iso = (f"{match.group(1)}-{match.group(2)}-{match.group(3)}"
           f"T{match.group(4)}:{match.group(5)}:{match.group(6)}.{fraction}")
    iso += "+00:00" if zone == "Z" else zone
    try:
        return datetime.fromisoformat(iso).astimezone(timezone.utc)
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {text[:40]!r}: {exc}") from None
