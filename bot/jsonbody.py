"""Turn untrusted request bytes into JSON values, or a `BadRequest` that says what is wrong.

Alertmanager retries every 5xx for a whole group interval, so anything a sender can put in a body
must end here as a 4xx: invalid UTF-8, invalid JSON, NaN/Infinity, lone surrogate escapes (valid
JSON, but no database can store them), absurd nesting, strings over the length limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bot.errors import WarroomError

MAX_DEPTH = 32


@dataclass
class BadRequest(WarroomError):
    status: int
    message: str
    problems: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.problems:
            body["problems"] = self.problems
        return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"body is not valid UTF-8 (byte {exc.start})") from None


def parse_json(raw: bytes, *, max_string: int) -> Any:
    """Parse one JSON document and check it is storable."""
    text = decode_utf8(raw)
    if not text.strip():
        raise BadRequest(400, "body is empty; expected a JSON object")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest(400, f"JSON nesting is deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    if len(text) <= max_string and "\\u" not in text and isinstance(value, (dict, list)) \
            and _nesting_within(text, value, MAX_DEPTH):
        # The common case, without visiting every string: none can be longer than the whole text,
        # and JSON can spell a lone surrogate or a NUL only as a \u escape (a raw control
        # character is invalid JSON, which json.loads refused).
        return value
    check_storable(value, max_string=max_string)  # finds the problem, if any, and names its field
    return value


def _nesting_within(text: str, value: Any, limit: int) -> bool:
    """No value deeper than ``limit`` (the document is level 0), as `check_storable` counts."""
    if text.count("{") + text.count("[") <= limit:  # cannot nest deeper than it has brackets
        return True
    level, depth = [value], 0
    while level:
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            if depth == limit and children:
                return False
            below.extend(child for child in children if isinstance(child, (dict, list)))
        level, depth = below, depth + 1
    return True


def check_storable(value: Any, *, max_string: int, where: str = "") -> None:
    """Depth, surrogates and string lengths, walked without recursion."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(400, f"JSON nesting is deeper than {MAX_DEPTH} levels", [{"field": path or "$",
                                                                                       "message": "too deep"}])
        if isinstance(item, str):
            _check_string(item, path, max_string)
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                _check_string(key, child_path, max_string)
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, list):
            for i, child in enumerate(item):
                stack.append((child, f"{path}.{i}" if path else str(i), depth + 1))


def _check_string(text: str, path: str, max_string: int) -> None:
    if len(text) > max_string:
        raise BadRequest(422, "value too long", [{"field": path or "$",
                                                  "message": f"longer than {max_string} characters ({len(text)})"}])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(400, "lone surrogate escape in a string", [{
            "field": path or "$", "message": "contains a lone UTF-16 surrogate (\\ud800-\\udfff)"}]) from None
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL.
        raise BadRequest(422, "NUL character in a string", [{"field": path or "$",
                                                             "message": "contains a NUL (\\u0000) character"}])


def pydantic_problems(exc: Any) -> list[dict[str, str]]:
    """pydantic's ValidationError as ``[{"field": "alerts.0.labels", "message": "..."}]``."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "$"
        problems.append({"field": loc, "message": err["msg"]})
    return problems
