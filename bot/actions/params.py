"""Turn untrusted user input (slash-command words, modal fields) into typed playbook params.

Values end up inside URLs, headers and JSON bodies, so besides the declared type, pattern and
choices we refuse what lets a value change the *shape* of a request: template markers, control
characters, path traversal and URL delimiters (``/ ? # @``) -- the last group only unless the
param's own pattern explicitly matches them. Every error names the param.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.errors import UserError

from .playbook import ParamSpec, Playbook

MAX_LENGTH = 200
_TEMPLATE_MARKERS = ("{{", "{%", "{#", "}}", "%}", "#}")
_URL_SHAPERS = ("..", "/", "?", "#", "@", "\\")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParamError(UserError, ValueError):
    """A param value was refused; the message is safe to show to the user."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def validate_params(pb: Playbook, given: Mapping[str, Any], labels: Mapping[str, str] | None = None,
                    defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Typed, checked values for every declared param (alert labels, then ``defaults`` the caller
    derived from its own state, then the playbook's defaults filled in)."""
    unknown = sorted(set(given) - set(pb.params))
    if unknown:
        known = ", ".join(pb.params) or "none"
        raise ParamError(unknown[0], f"{pb.name} has no param {unknown[0]!r} (params: {known})")
    labels = labels or {}
    values: dict[str, Any] = {}
    for name, spec in pb.params.items():
        raw = given.get(name)
        if raw is None and spec.from_label and labels.get(spec.from_label):
            raw = labels[spec.from_label]
        if raw is None and defaults:
            raw = defaults.get(name)
        if raw is None:
            raw = spec.default
        if raw is None:
            if spec.required:
                raise ParamError(name, f"is required ({_describe(spec)})")
            continue
        values[name] = _coerce(name, spec, raw)
    return values


def parse_args(pb: Playbook, text_args: list[str], labels: Mapping[str, str] | None = None,
               defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``/incident disable-tool web_search`` style: positional args in declaration order, or ``name=value``."""
    order = list(pb.params)
    given: dict[str, Any] = {}
    position = 0
    for arg in text_args:
        name, sep, value = arg.partition("=")
        if sep and name in pb.params:
            given[name] = value
            continue
        while position < len(order) and order[position] in given:
            position += 1
        if position >= len(order):
            raise ParamError(arg[:40], f"unexpected extra argument; {pb.name} takes {_usage(pb)}")
        given[order[position]] = arg
        position += 1
    return validate_params(pb, given, labels, defaults)


def _coerce(name: str, spec: ParamSpec, raw: Any) -> Any:
    if spec.type == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ParamError(name, f"expected true or false, got {_show(raw)}")
    if spec.type == "int":
        if isinstance(raw, bool) or not re.fullmatch(r"-?[0-9]{1,18}", str(raw).strip()):
            raise ParamError(name, f"expected a whole number, got {_show(raw)}")
        return int(str(raw).strip())
    text = str(raw)
    _refuse_unsafe(name, spec, text)
    if spec.type == "enum" and text not in (spec.choices or []):
        raise ParamError(name, f"must be one of {', '.join(spec.choices or [])}, got {_show(text)}")
    if spec.pattern and not re.fullmatch(spec.pattern, text):
        raise ParamError(name, f"{_show(text)} does not match the pattern {spec.pattern}")
    return text


def _refuse_unsafe(name: str, spec: ParamSpec, text: str) -> None:
    if not text:
        raise ParamError(name, "must not be empty")
    if len(text) > MAX_LENGTH:
        raise ParamError(name, f"is longer than {MAX_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 or ch in "\u2028\u2029\x85" for ch in text):
        raise ParamError(name, "must not contain newlines or control characters")
    if any(marker in text for marker in _TEMPLATE_MARKERS):
        raise ParamError(name, "must not contain template syntax ({{, {%, {#)")
    pattern_allows = spec.pattern is not None and re.fullmatch(spec.pattern, text) is not None
    if spec.type == "enum" and text in (spec.choices or []):
        pattern_allows = True
    bad = [s for s in _URL_SHAPERS if s in text]
    if bad and not pattern_allows:
        raise ParamError(name, f"must not contain {bad[0]!r}")


def _show(value: Any) -> str:
    text = repr(str(value))
    return text if len(text) <= 60 else text[:57] + "...'"


def _describe(spec: ParamSpec) -> str:
    if spec.type == "enum":
        return "one of " + ", ".join(spec.choices or [])
    return spec.description or spec.type


def _usage(pb: Playbook) -> str:
    return " ".join(f"[{n}]" if not s.required else f"<{n}>" for n, s in pb.params.items()) or "no arguments"
