"""Scrub credentials and personal data from text before it leaves warroom.

Failing traces end up in Slack, postmortems and eval files that live in git; timeline lines,
action results and log lines can carry a token someone pasted or a control plane echoed. So
everything shown passes through a ``Redactor`` first:

* ``redact`` (trace text): credentials, long hex strings, emails, card numbers, phone numbers;
* ``redact_credentials`` (timeline, pages, API, Slack, logs): credentials only, so the emails
  and numbers people type in an incident stay readable.

Known secret values (``WARROOM_SECRET_*``, the Slack and alert tokens) are masked whole and in
part: any run of ``FRAGMENT_MIN`` characters of one is masked wherever it appears, so an echo of
half a token or a snippet cut in its middle shows nothing usable.

The defaults lean towards recall for secrets (a false positive costs a word, a leak costs a
rotation) and towards precision for numbers (card numbers must pass the Luhn check, phone
numbers need a phone-like shape) so order ids and dates stay readable. Each default rule has a
name; ``disabled`` turns rules off by name, ``extra_patterns`` adds site rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.errors import ConfigError

SECRET_LABEL = "[secret]"
# A run this long of a known secret is masked; ~60 bits of a random token, and longer than the
# words a token may share with ordinary text ("production" in an Unleash token).
FRAGMENT_MIN = 12

Kind = Literal["credential", "heuristic", "personal", "site"]


class RedactionPatternError(ConfigError, ValueError):
    """A redaction setting is unusable: a bad regular expression or an unknown rule name."""


Hint = Callable[[str], object]


@dataclass(frozen=True)
class _Rule:
    name: str
    kind: Kind
    pattern: re.Pattern[str]
    replace: Callable[[re.Match[str]], str]
    # Something every match contains (a literal, a digit): a search for it is far cheaper than
    # the pattern, and most text has none (an eval export redacts ~100,000 strings). None: no hint.
    hint: Hint | None = None
    # The literals the hint looks for, when it is made of literals: the redactor searches those of
    # all the credential rules at once, so clean text costs one search instead of one per rule.
    literals: tuple[str, ...] = ()

    def apply(self, text: str) -> str:
        if self.hint is not None and not self.hint(text):
            return text
        return self.pattern.sub(self.replace, text)


def _hint(*literals: str) -> Hint:
    # ``in`` beats a regex on one literal; an alternation beats a Python loop over several.
    if len(literals) == 1:
        literal = literals[0]
        return lambda text: literal in text
    return re.compile("|".join(re.escape(literal) for literal in literals)).search


def _gate(literals: Iterable[str]) -> Hint:
    """True when ``text`` holds any of ``literals``.

    A regex alternation tries every position whose character starts one of its literals, so
    literals that start with a common letter are looked for with ``in`` instead.
    """
    unique = set(literals)
    common = tuple(sorted(literal for literal in unique if literal[0] in "etaoinshr"))
    rare = re.compile("|".join(re.escape(literal) for literal in sorted(unique - set(common)))).search

    def gate(text: str) -> bool:
        if rare(text) is not None:
            return True
        for literal in common:  # a plain loop: a generator costs more than the search here
            if literal in text:
                return True
        return False

    return gate


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


# Tokens may follow any punctuation, "_" included, but not a letter or digit ("task-…" is no key).
_START = r"(?<![A-Za-z0-9])"


def _credential(name: str, pattern: str, *literals: str, replace: Callable[[re.Match[str]], str] | None = None,
                flags: int = 0) -> _Rule:
    return _Rule(name, "credential", re.compile(pattern, flags), replace or _constant(SECRET_LABEL),
                 _hint(*literals), literals)


# Order matters: whole blocks, URLs and labelled values before the tokens they may contain,
# the generic bearer rule last among credentials (it would take a label or half a token),
# credentials before emails (a basic-auth URL has an "@"), cards before phones (both are digit
# runs; the card rule is stricter).
_DEFAULT_RULES: tuple[_Rule, ...] = (
    # Cut off before its END line, a key block is redacted to the end of the text.
    _credential("private-key",
                r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)",
                "PRIVATE KEY", replace=_constant("[private key]"), flags=re.DOTALL),
    _credential("slack-webhook", r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]+",
           "://"),
    # scheme://user:password@host → scheme://[secret]@host
    _credential("basic-auth-url", r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/:@]*:[^\s/@]+@", "://",
                replace=lambda match: f"{match.group('prefix')}{SECRET_LABEL}@"),
    # A secret access key is 40 characters of base64 that only its context gives away: a label
    # ("aws_secret_access_key = …", "SecretAccessKey": "…") or the access key id just before it.
    _credential("aws-secret-key",
                r"(?P<prefix>(?:secret|Secret|SECRET)[_ .-]?(?:(?:access|Access|ACCESS)[_ .-]?)?(?:key|Key|KEY)"
                r"[\"']?\s*[:=]\s*[\"']?"
                r"|" + _START + r"(?:AKIA|ASIA)[0-9A-Z]{16}[^A-Za-z0-9/+]{1,20})"
                r"[A-Za-z0-9/+]{40,}",
                "ecret", "ECRET", "AKIA", "ASIA", replace=_keep_prefix(SECRET_LABEL)),
    # Distinctive prefixes: a token cut short after a few characters still goes.
    _credential("github", _START + r"(?:gh[pousr]_[A-Za-z0-9]{8,}|github_pat_[A-Za-z0-9_]{8,})", "_"),
    _credential("gitlab", _START + r"glpat-[A-Za-z0-9_-]{8,}", "glpat-"),
    _credential("slack", _START + r"(?:xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,})", "xox", "xapp-"),
    _credential("stripe", _START + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}|" + _START + r"whsec_[A-Za-z0-9]{20,}",
           "_"),
    # OpenAI (sk-…, sk-proj-…) and Anthropic (sk-ant-…) keys share the prefix.
    _credential("openai-anthropic", _START + r"sk-[A-Za-z0-9_-]{16,}", "k-"),
    _credential("huggingface", _START + r"hf_[A-Za-z0-9]{20,}", "_"),
    _credential("google", _START + r"AIza[0-9A-Za-z_-]{30,}", "AIza"),
    _credential("aws-access-key", _START + r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|APKA)[0-9A-Z]{16}(?![0-9A-Z])",
           "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "APKA"),
    _credential("jwt", _START + r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", "yJ"),
    # Last of the credentials: it would take a label or a piece of a token another rule knows.
    # A token has a digit, a capital or a symbol: "Bearer authentication" is prose.
    _credential("bearer", _START + r"(?P<prefix>[Bb]earer\s+)(?=[a-z]*[A-Z0-9_.~+/=-])[A-Za-z0-9_.~+/=-]{8,}", "earer",
                replace=_keep_prefix(SECRET_LABEL)),
    _Rule("hex", "heuristic", re.compile(r"\b[0-9a-fA-F]{32,}\b"), _constant(SECRET_LABEL)),
    _Rule("email", "personal", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
          _constant("[email]"), _hint("@"), ("@",)),
    _Rule("card", "personal", re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])"), _card,
          re.compile(r"\d(?:[ -]?\d){5}").search),
    _Rule(
        "phone", "personal",
        re.compile(
            r"(?<![\w+])(?<![\w][-.])(?:\+\d{8,15}"
            r"|(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4})(?![\w]|[-.]\d)"
        ),
        _constant("[phone]"),
        re.compile(r"\d{3}[\s.-]?\d{3}").search,  # every phone match ends in two such digit groups
    ),
)

RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in _DEFAULT_RULES)


def _compile_extra(patterns: Iterable[object]) -> tuple[_Rule, ...]:  # from a settings file: checked here
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
        rules.append(_Rule(f"extra #{index}", "site", compiled, _constant("[redacted]")))
    return tuple(rules)


_ANCHOR = 4


def _anchors(value: str) -> list[int]:
    """Offsets of ``_ANCHOR``-long blocks of ``value`` such that every FRAGMENT_MIN-long run holds one."""
    reach = FRAGMENT_MIN - _ANCHOR  # a run starting at r holds the blocks starting in [r, r + reach]

    def rarity(offset: int) -> tuple[int, int]:
        char = value[offset]
        return (0 if char.islower() or char.isspace() else 1 if char.isdigit() else 2), offset

    offsets: list[int] = []
    uncovered = 0  # the first run start no block holds yet
    while uncovered <= len(value) - FRAGMENT_MIN:
        best = max(range(uncovered, uncovered + reach + 1), key=rarity)
        offsets.append(best)
        uncovered = best + 1
    return offsets


class KnownSecrets:
    """Masks given secret values, whole or any ``FRAGMENT_MIN``-long run of one.

    Each secret gets a few short blocks ("anchors") placed so that every such run holds one whole;
    text holding none of them is done with one regex search. Anchors start, where the secret
    allows, with a character that ordinary text has few of (a capital, a symbol), which keeps that
    search fast. Each anchor found is grown to the longest stretch text and secret share there.
    """

    def __init__(self, values: Iterable[str]) -> None:
        unique = sorted({v for v in values if v}, key=len, reverse=True)
        self._short = [v for v in unique if len(v) < FRAGMENT_MIN]
        self._blocks = [(v, offset, v[offset:offset + _ANCHOR]) for v in unique if len(v) >= FRAGMENT_MIN
                        for offset in _anchors(v)]
        literals = sorted({block for _, _, block in self._blocks} | set(self._short))
        self._hint = re.compile("|".join(re.escape(literal) for literal in literals)).search if literals else None

    def __bool__(self) -> bool:
        return bool(self._short or self._blocks)

    def mask(self, text: str, label: str = SECRET_LABEL) -> str:
        spans = self._spans(text)
        if not spans:
            return text
        pieces: list[str] = []
        cursor = -1  # where the last masked stretch ends
        for start, end in sorted(spans):
            if start > cursor:  # overlapping or adjacent stretches extend the last one
                pieces += [text[max(cursor, 0):start], label]
            cursor = max(cursor, end)
        pieces.append(text[cursor:])
        return "".join(pieces)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        if self._hint is None or self._hint(text) is None:
            return []
        spans = []
        for value in self._short:
            at = text.find(value)
            while at != -1:
                spans.append((at, at + len(value)))
                at = text.find(value, at + len(value))
        for value, offset, block in self._blocks:
            at = text.find(block)
            while at != -1:
                start, secret_start = at, offset
                while start > 0 and secret_start > 0 and text[start - 1] == value[secret_start - 1]:
                    start, secret_start = start - 1, secret_start - 1
                end, secret_end = at + len(block), offset + len(block)
                while end < len(text) and secret_end < len(value) and text[end] == value[secret_end]:
                    end, secret_end = end + 1, secret_end + 1
                if end - start >= FRAGMENT_MIN:
                    spans.append((start, end))
                at = text.find(block, at + 1)
        return spans


class Redactor:
    """``Redactor(extra_patterns=[r"ACME-\\d+"], disabled=["phone"], known_secrets=[token])``.

    Extra patterns are replaced by ``[redacted]``; ``disabled`` names default rules to skip
    (``RULE_NAMES``); known secrets are masked whole and in part.
    """

    def __init__(self, extra_patterns: Iterable[str] = (), *, disabled: Iterable[str] = (),
                 known_secrets: Iterable[str] = ()) -> None:
        off = set(disabled)
        unknown = sorted(off - set(RULE_NAMES))
        if unknown:
            raise RedactionPatternError(f"unknown redaction rule(s) {', '.join(map(repr, unknown))}; "
                                        f"the rules are {', '.join(RULE_NAMES)}")
        defaults = tuple(r for r in _DEFAULT_RULES if r.name not in off)
        credentials = tuple(r for r in defaults if r.kind == "credential")
        site = _compile_extra(extra_patterns)
        rest = tuple(r for r in defaults if r.kind != "credential")
        # Site rules run after the credential rules (a site rule that takes a piece of a token
        # must not leave the rest unrecognisable) and before the others (so that a site rule
        # wins over a broader phone or card rule on the same text).
        self._rules = credentials + site + rest
        self._credentials, self._site, self._rest = credentials, site, rest
        known = KnownSecrets(known_secrets)
        self._mask_known = known.mask if known else None
        # Every credential rule has literals: clean text is told apart with one search.
        self._gate = _gate({literal for rule in credentials for literal in rule.literals}) if credentials else None

    def redact(self, text: str) -> str:
        """Everything: credentials, long hex strings, emails, cards and phone numbers (trace text)."""
        text = self.redact_credentials(text)
        for rule in self._rest:
            text = rule.apply(text)
        return text

    def redact_credentials(self, text: str) -> str:
        """Known secrets, credentials and site patterns only (timeline, pages, Slack, logs)."""
        if self._mask_known is not None:
            text = self._mask_known(text)
        if self._gate is not None and self._gate(text):
            for rule in self._credentials:
                text = rule.apply(text)
        for rule in self._site:
            text = rule.apply(text)
        return text

    def redact_obj(self, value: Any, *, credentials_only: bool = False) -> Any:
        """Redact every string inside dicts, lists and tuples; keys and non-strings are kept as they are."""
        if isinstance(value, str):
            return self.redact_credentials(value) if credentials_only else self.redact(value)
        if isinstance(value, Mapping):
            return {key: self.redact_obj(item, credentials_only=credentials_only) for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact_obj(item, credentials_only=credentials_only) for item in value]
        if isinstance(value, tuple):
            return tuple(self.redact_obj(item, credentials_only=credentials_only) for item in value)
        return value


# The default rules with no site settings and no known secrets. A process builds its own from the
# settings (`bot.runtime.redactor_for`) and passes it to every surface; this one serves code called
# without one (tests, scripts) and the Slack text helpers' cut (`bot.slack.text.cut`). A Redactor
# never changes after it is built, so sharing it is safe.
DEFAULT = Redactor()
