"""Scrub personal data and credentials from trace text before it leaves the store.

Failing traces end up in Slack, postmortems and eval files that live in git, so anything
user-typed passes through a ``Redactor`` first. The defaults lean towards recall for
secrets (a false positive costs a word, a leak costs a rotation) and towards precision for
numbers (card numbers must pass the Luhn check, phone numbers need a phone-like shape) so
order ids and dates stay readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class RedactionPatternError(ValueError):
    """A user-supplied redaction pattern is not a usable regular expression."""


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    replace: Callable[[re.Match[str]], str]
    # Something every match contains (a literal, a digit): a search for it is far cheaper than
    # the pattern, and most text has none (an eval export redacts ~100,000 strings). None: no hint.
    hint: re.Pattern[str] | None = None

    def apply(self, text: str) -> str:
        if self.hint is not None and self.hint.search(text) is None:
            return text
        return self.pattern.sub(self.replace, text)


def _hint(*literals: str) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(literal) for literal in literals))



def _constant(label: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: label


def _keep_prefix(label: str) -> Callable[[re.Match[str]], str]:
    # "Authorization: Bearer abc…" → "Authorization: Bearer [secret]": the scheme helps the reader.
    return lambda match: f"{match.group('prefix')}{label}"


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and _luhn_valid(digits) else match.group(0)


# Order matters: secrets before emails (tokens can contain "@"-free dots), cards before phones
# (both are digit runs; the card rule is stricter).
_DEFAULT_RULES: tuple[_Rule, ...] = (
    _Rule(re.compile(r"(?P<prefix>\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]{8,}"), _keep_prefix("[secret]"), _hint("earer")),
    _Rule(re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), _constant("[secret]"), _hint("sk-")),
    _Rule(re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}"), _constant("[secret]"), _hint("xox")),
    _Rule(re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), _constant("[secret]"), _hint("AKIA", "ASIA")),
    _Rule(re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), _constant("[secret]"), _hint("eyJ")),
    _Rule(re.compile(r"\b[0-9a-fA-F]{32,}\b"), _constant("[secret]")),
    _Rule(re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), _constant("[email]"), _hint("@")),
    _Rule(re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])"), _card, re.compile(r"\d(?:[ -]?\d){5}")),
    _Rule(
        re.compile(
            r"(?<![\w+])(?<![\w][-.])(?:\+\d{8,15}"
            r"|(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4})(?![\w]|[-.]\d)"
        ),
        _constant("[phone]"),
        re.compile(r"\d{3}[\s.-]?\d{3}"),  # every phone match ends in two such digit groups
    ),
)


def _compile_extra(patterns: Iterable[str]) -> tuple[_Rule, ...]:
    rules = []
    for index, source in enumerate(patterns, start=1):
        if not isinstance(source, str) or not source:
            raise RedactionPatternError(f"redaction pattern #{index} must be a non-empty string, got {source!r}")
        try:
            compiled = re.compile(source)
        except re.error as exc:
            raise RedactionPatternError(f"redaction pattern #{index} {source!r} is not a valid regex: {exc}") from exc
        if compiled.fullmatch(""):
            # A pattern that matches nothing-at-all would stamp "[redacted]" between every character.
            raise RedactionPatternError(f"redaction pattern #{index} {source!r} matches the empty string")
        rules.append(_Rule(compiled, _constant("[redacted]")))
    return tuple(rules)


class Redactor:
    """``Redactor(extra_patterns=[r"ACME-\\d+"])`` adds site-specific patterns, replaced by ``[redacted]``."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        # Extra patterns run first so a site rule wins over a broader default on the same text.
        self._rules = _compile_extra(extra_patterns) + _DEFAULT_RULES

    def redact(self, text: str) -> str:
        for rule in self._rules:
            text = rule.apply(text)
        return text

    def redact_obj(self, value: Any) -> Any:
        """Redact every string inside dicts, lists and tuples; keys and non-strings are kept as they are."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {key: self.redact_obj(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact_obj(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.redact_obj(item) for item in value)
        return value
