"""Alertmanager-style label matchers: ``name="value"``, ``name=~"regex"``, ``name!="v"``, ``name!~"re"``.

Parsing follows Alertmanager's classic matcher syntax (``pkg/labels``): a label name, one of four
operators, then a value that is either double-quoted (with the OpenMetrics escapes ``\\"``, ``\\\\``
and ``\\n``; any other backslash stays literal, so ``"\\d+"`` is the regex ``\\d+``) or unquoted up to
the end of the text. Regexes are fully anchored, and a label that is absent matches as ``""``.

We are stricter than Alertmanager in one place on purpose: ``name=>x`` is an error ("unknown
operator '=>'") instead of the equality matcher ``name="">x"``, because in a runbook that is far
more likely a typo than an intent. Quote a value that starts with ``=``, ``!``, ``~``, ``<`` or ``>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from bot.errors import ConfigError


class MatcherError(ConfigError, ValueError):
    """A matcher that does not parse; ``column`` is 1-based in the text given to the parser."""

    def __init__(self, message: str, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class Op(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Every character that can be part of an operator, so "=>" or "==" is read as one bad operator.
_OPERATOR_CHARS = "=!~<>"
_UNESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            op = Op(self.op)
        except ValueError:
            raise MatcherError(f"unknown operator '{self.op}'") from None
        if not _LABEL_NAME.fullmatch(self.name):
            raise MatcherError(f"invalid label name '{self.name}'")
        object.__setattr__(self, "op", op)
        if op in (Op.REGEX, Op.NOT_REGEX):
            object.__setattr__(self, "_pattern", _compile_anchored(self.value))

    @property
    def is_equality(self) -> bool:
        """True for ``=``: the only operator that pins a label to a single value."""
        return self.op is Op.EQUAL

    @property
    def is_regex(self) -> bool:
        return self._pattern is not None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self._pattern is not None:
            found = self._pattern.fullmatch(actual) is not None
            return found if self.op is Op.REGEX else not found
        return (actual == self.value) if self.op is Op.EQUAL else (actual != self.value)

    def as_silence_matcher(self) -> dict[str, str | bool]:
        """The shape Alertmanager's ``POST /api/v2/silences`` expects for one matcher."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.op in (Op.EQUAL, Op.REGEX),
        }

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op.value}"{escaped}"'


def _compile_anchored(regex: str, column: int = 1) -> re.Pattern[str]:
    # Alertmanager wraps the value as ^(?:re)$; fullmatch gives the same anchoring without
    # Python's "$ also matches before a trailing newline" quirk.
    try:
        re.compile(regex)  # alone first, so error positions count from the user's text
        return re.compile(f"(?:{regex})")
    except re.error as exc:
        raise MatcherError(f"invalid regex: {exc}", column) from None


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``slo="hallucination-rate"`` or ``service=~chat-.*``."""
    pos = _skip_space(text, 0)
    name_match = _LABEL_NAME.match(text, pos)
    if name_match is None:
        found = "end of text" if pos >= len(text) else f"'{text[pos]}'"
        raise MatcherError(f"expected a label name, found {found}", pos + 1)
    name = name_match.group()

    pos = _skip_space(text, name_match.end())
    op_end = pos
    while op_end < len(text) and text[op_end] in _OPERATOR_CHARS:
        op_end += 1
    operator = text[pos:op_end]
    if not operator:
        found = "end of text" if pos >= len(text) else f"'{text[pos]}'"
        raise MatcherError(f"expected an operator (=, !=, =~, !~) after '{name}', found {found}", pos + 1)
    try:
        op = Op(operator)
    except ValueError:
        raise MatcherError(f"unknown operator '{operator}'", pos + 1) from None

    value_start = _skip_space(text, op_end)
    value = _parse_value(text, value_start)
    if op in (Op.REGEX, Op.NOT_REGEX):
        _compile_anchored(value, value_start + 1)
    return Matcher(name, op, value)


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a comma-separated list, optionally in braces: ``{slo="x", service=~"chat-.*"}``."""
    inner = text.strip()
    offset = len(text) - len(text.lstrip())
    if inner.startswith("{"):
        inner, offset = inner[1:], offset + 1
    if inner.endswith("}"):
        inner = inner[:-1]
    matchers: list[Matcher] = []
    for start, part in _split_outside_quotes(inner):
        if not part.strip():
            continue
        try:
            matchers.append(parse_matcher(part))
        except MatcherError as exc:
            raise MatcherError(exc.message, exc.column + offset + start) from None
    return matchers


def _split_outside_quotes(text: str) -> list[tuple[int, str]]:
    parts: list[tuple[int, str]] = []
    start, quoted, escaped = 0, False, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append((start, text[start:i]))
            start = i + 1
    parts.append((start, text[start:]))
    return parts


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _parse_value(text: str, pos: int) -> str:
    if pos < len(text) and text[pos] == '"':
        value, end = _unescape(text, pos + 1, quoted=True)
        if end is None:
            raise MatcherError("unterminated quoted value", pos + 1)
        rest = _skip_space(text, end)
        if rest < len(text):
            raise MatcherError(f"unexpected text after quoted value: '{text[rest:]}'", rest + 1)
        return value
    value, _ = _unescape(text.rstrip(), pos, quoted=False)
    return value


def _unescape(text: str, pos: int, *, quoted: bool) -> tuple[str, int | None]:
    """Decode from ``pos``; return the value and the index after the closing quote (None if unclosed)."""
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            following = text[pos + 1]
            # Unknown escapes keep their backslash: "\d" in a regex must stay "\d".
            out.append(_UNESCAPES.get(following, "\\" + following))
            pos += 2
            continue
        if char == '"':
            if quoted:
                return "".join(out), pos + 1
            raise MatcherError("unescaped double quote in unquoted value", pos + 1)
        out.append(char)
        pos += 1
    return "".join(out), None
