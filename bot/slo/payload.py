"""Alertmanager webhook bodies (``version: "4"``) for alerts the built-in watcher raised.

They go through the same ``/webhooks/alertmanager`` intake as Prometheus' alerts, so they are
shaped the way Alertmanager shapes them: group key with Go-quoted label values, firing alerts
with the zero ``endsAt``, common labels as the intersection over the alerts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bot.slo.labels import GROUP_BY

if TYPE_CHECKING:
    from bot.slo.burn import BurnAlert

ZERO_TIME = "0001-01-01T00:00:00Z"


def to_alertmanager_payload(
    alerts: Sequence[BurnAlert], *, receiver: str = "warroom-watcher", external_url: str = "",
    group_by: Sequence[str] = GROUP_BY,
) -> dict[str, Any]:
    """One notification for one group (alerts sharing ``alertname``, ``sloth_service``,
    ``sloth_slo``, ``sloth_severity``, or the ``group_by`` labels given: the quality sensors
    group by their own); raises ``ValueError`` for an empty or mixed list."""
    from bot.alerts.fingerprint import fingerprint  # the lead's module; shared with the intake

    if not alerts:
        raise ValueError("an Alertmanager notification needs at least one alert")
    group_labels = _group_labels(alerts[0].labels, group_by)
    if any(_group_labels(a.labels, group_by) != group_labels for a in alerts):
        raise ValueError("alerts belong to different groups; send one payload per group")
    ordered = sorted(alerts, key=lambda a: (a.labels.get("job", ""), a.labels.get("instance", ""),
                                            sorted(a.labels.items())))
    return {
        "receiver": _quote_meta(receiver),
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "alerts": [
            {
                "status": alert.status,
                "labels": dict(sorted(alert.labels.items())),
                "annotations": dict(sorted(alert.annotations.items())),
                "startsAt": rfc3339(alert.starts_at),
                "endsAt": ZERO_TIME if alert.status == "firing" or alert.ends_at is None else rfc3339(alert.ends_at),
                "generatorURL": "",
                "fingerprint": fingerprint(alert.labels),
            }
            for alert in ordered
        ],
        "groupLabels": group_labels,
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key(group_labels),
        "truncatedAlerts": 0,
    }


def group_key(group_labels: Mapping[str, str], route_key: str = "{}") -> str:
    """``{}:{alertname="X", sloth_slo="y"}``, as Alertmanager's dispatcher builds it."""
    pairs = ", ".join(f"{name}={go_quote(value)}" for name, value in sorted(group_labels.items()))
    return f"{route_key}:{{{pairs}}}"


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: printable characters kept, the rest escaped."""
    escapes = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t",
               "\v": r"\v", "\\": r"\\", '"': r"\""}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def rfc3339(moment: datetime) -> str:
    """UTC with ``Z`` and only the fractional digits needed, like Go's RFC3339Nano."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _group_labels(labels: Mapping[str, str], group_by: Sequence[str] = GROUP_BY) -> dict[str, str]:
    return {name: labels[name] for name in group_by if name in labels}


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in rest)}


def _quote_meta(name: str) -> str:
    # Alertmanager passes the receiver name through Go's regexp.QuoteMeta.
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", name)
