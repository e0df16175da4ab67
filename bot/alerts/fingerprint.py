"""Prometheus' alert fingerprint (``model.LabelSet.Fingerprint``), for Alertmanagers that omit it.

FNV-1a 64 over the label names in byte order, feeding ``name 0xFF value 0xFF`` per label, printed
as 16 hex digits. ``{"alertname": "alert1", "lbl1": "val1"}`` gives ``fac0861a85de433a``.
"""

from __future__ import annotations

from collections.abc import Mapping

_OFFSET = 14695981039346656037
_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = b"\xff"


def fingerprint(labels: Mapping[str, str]) -> str:
    h = _OFFSET
    for name in sorted(labels, key=lambda n: n.encode()):
        for chunk in (name.encode(), _SEPARATOR, labels[name].encode(), _SEPARATOR):
            for byte in chunk:
                h ^= byte
                h = (h * _PRIME) & _MASK
    return f"{h:016x}"
