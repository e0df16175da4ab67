"""Tiny paths into JSON responses, for ``expect.json`` and ``save``.

``route``, ``tools.web_search``, ``items[0].id`` and ``environments[name=production].enabled``
cover what control planes return; anything fancier belongs in the control plane, not here.
"""

from __future__ import annotations

import re
from typing import Any

from bot.errors import ExternalError

_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]|\[([^=\]]+)=([^\]]*)\]")


class PathNotFound(ExternalError, LookupError):
    """The response has nothing at that path."""


def parse_path(path: str) -> list[str | int | tuple[str, str]]:
    parts: list[str | int | tuple[str, str]] = []
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"bad JSON path {path!r} at character {pos + 1}")
        key, index, filter_key, filter_value = match.groups()
        if key is not None:
            parts.append(key)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append((filter_key, filter_value))
        pos = match.end()
    if not parts:
        raise ValueError("empty JSON path")
    return parts


def lookup(data: Any, path: str) -> Any:
    current = data
    for part in parse_path(path):
        if isinstance(part, tuple):
            key, wanted = part
            items = current if isinstance(current, list) else []
            matches = [item for item in items if isinstance(item, dict) and str(item.get(key)) == wanted]
            if not matches:
                raise PathNotFound(f"{path}: no item with {key}={wanted}")
            current = matches[0]
        elif isinstance(part, int):
            if not isinstance(current, list) or part >= len(current):
                raise PathNotFound(f"{path}: no item [{part}]")
            current = current[part]
        else:
            if not isinstance(current, dict) or part not in current:
                raise PathNotFound(f"{path}: no key {part!r}")
            current = current[part]
    return current
