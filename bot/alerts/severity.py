"""Severity 1 (worst) to 4 from alert labels.

Order of precedence: a ``severity`` label (generic, Pyrra's ``critical``/``warning``), then Sloth's
``sloth_severity`` (``page`` → 2, ``ticket`` → 3); values are looked up case-insensitively in the
configurable map (``WARROOM_SEVERITY_MAP``); anything unknown gets the default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SEVERITY_LABELS = ("severity", "sloth_severity", "priority")


def severity_from_labels(labels: Mapping[str, str], mapping: Mapping[str, int], default: int) -> int:
    for name in SEVERITY_LABELS:
        value = labels.get(name, "").strip().lower()
        if value in mapping:
            return mapping[value]
    return default


def worst(severities: Iterable[int], default: int) -> int:
    return min(severities, default=default)
