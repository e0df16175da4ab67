"""Runbooks: ``runbooks/<id>.md`` files with YAML front matter, chosen for an alert by label matchers.

A runbook file looks like::

    ---
    id: hallucination-spike
    title: Hallucination rate spike
    match: ['slo="hallucination-rate"']
    severity: 2
    owners: ["@ml-oncall"]
    actions: [fallback, rollback, disable-tool]
    auto:                     # optional: what warroom does itself when the incident opens
      - run: fallback         # an unattended playbook (see bot.automation.rules)
      - propose: rollback     # any playbook: posted for a person's approval, never run alone
    correlate: [service]      # optional: labels whose values make alert groups one incident
    ---
    Markdown shown to responders.

``check_runbooks`` reports every problem with the file and line to fix; ``load_runbooks`` refuses a
folder that has any. ``RunbookSet.match`` picks the runbook for an alert's labels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from bot.automation.rules import AutoRule
from bot.errors import ConfigError
from bot.matchers import Matcher, MatcherError, parse_matcher
from bot.problems import Problem
from bot.yamlsource import LineMap, YamlSyntaxError, load_yaml

DEFAULT_ID = "default"
_FENCE = "---"
_OWNER_KINDS = (
    ("usergroup", re.compile(r"@[a-z0-9][a-z0-9._-]*")),
    ("user", re.compile(r"[UW][A-Z0-9]{2,}")),
    ("email", re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")),
)


class RunbookError(ConfigError):
    """The runbooks folder has problems; ``problems`` lists them all, and so does ``str()``."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    title: str
    url: str


class _FrontMatter(BaseModel):
    """The front matter's shape; strict, so `severity: "2"` or `owners: ml-oncall` is reported, not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str
    title: str
    match: list[str]
    severity: int | None = Field(default=None, ge=1, le=4)
    owners: list[str] = []
    actions: list[str] = []
    links: list[Link] = []
    auto: list[AutoRule] = []
    # None: the global setting (WARROOM_CORRELATE); []: every alert group opens its own incident.
    correlate: list[str] | None = None


class Runbook(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    id: str
    title: str
    matchers: tuple[Matcher, ...]
    severity: int | None
    owners: tuple[str, ...]
    actions: tuple[str, ...]
    links: tuple[Link, ...]
    body: str
    auto: tuple[AutoRule, ...] = ()
    correlate: tuple[str, ...] | None = None
    path: Path

    def matches(self, labels: Mapping[str, str]) -> bool:
        return bool(self.matchers) and all(m.matches(labels) for m in self.matchers)

    @property
    def specificity(self) -> tuple[int, int]:
        """More matchers first, then more exact ``=`` matchers than regex or negative ones."""
        return len(self.matchers), sum(m.is_equality for m in self.matchers)


class RunbookSet:
    def __init__(self, runbooks: list[Runbook]) -> None:
        self._runbooks = sorted(runbooks, key=lambda r: r.path.name)
        self._by_id = {r.id: r for r in self._runbooks}
        if DEFAULT_ID not in self._by_id:
            raise ValueError("a runbook set needs a 'default' runbook")

    def match(self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None) -> Runbook:
        # An explicit `runbook` label (then annotation) lets an alert rule pick its runbook by id.
        for source in (labels, annotations or {}):
            chosen = self._by_id.get(source.get("runbook", ""))
            if chosen is not None:
                return chosen
        candidates = [r for r in self._runbooks if r.id != DEFAULT_ID and r.matches(labels)]
        if not candidates:
            return self._by_id[DEFAULT_ID]
        # _runbooks is in file-name order and max() keeps the first of equals: the tie-break.
        return max(candidates, key=lambda r: r.specificity)

    def get(self, runbook_id: str) -> Runbook | None:
        return self._by_id.get(runbook_id)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self._runbooks]

    def __iter__(self) -> Iterator[Runbook]:
        return iter(self._runbooks)

    def __len__(self) -> int:
        return len(self._runbooks)


def owner_kind(owner: str) -> str | None:
    """``"usergroup"`` for ``@ml-oncall``, ``"user"`` for ``U0123ABC``, ``"email"``, or None."""
    for kind, pattern in _OWNER_KINDS:
        if pattern.fullmatch(owner):
            return kind
    return None


def load_runbooks(directory: Path, playbook_names: set[str] | None = None) -> RunbookSet:
    runbooks, problems = _scan(Path(directory), playbook_names, None)
    if problems:
        raise RunbookError(problems)
    return RunbookSet(runbooks)


def check_runbooks(directory: Path, playbook_names: set[str] | None = None,
                   unattended: set[str] | None = None) -> list[Problem]:
    """``unattended``: the playbooks that say they may run without a person (``unattended: true``);
    an ``auto: - run:`` entry must name one of them."""
    return _scan(Path(directory), playbook_names, unattended)[1]


def _scan(directory: Path, playbook_names: set[str] | None,
          unattended: set[str] | None) -> tuple[list[Runbook], list[Problem]]:
    if not directory.is_dir():
        return [], [Problem(_shown(directory), 1, "not a directory")]
    files = [_RunbookFile(path, playbook_names, unattended) for path in sorted(directory.glob("*.md"))]
    problems = [problem for file in files for problem in file.problems]
    claimants: dict[str, list[_RunbookFile]] = {}
    for file in files:
        if file.declared_id is not None:
            claimants.setdefault(file.declared_id, []).append(file)
    for runbook_id, group in claimants.items():
        # The file named after the id keeps it; the others are the ones to fix.
        keeper = next((f for f in group if f.path.stem == runbook_id), group[0])
        for file in group:
            if file is not keeper:
                message = f"id: duplicate id '{runbook_id}' (also in {keeper.shown})"
                problems.append(Problem(file.shown, file.line_of(("id",)), message))
    runbooks = [file.runbook for file in files if file.runbook is not None]
    if DEFAULT_ID not in claimants and not (directory / "default.md").exists():
        hint = "add one with 'id: default' and 'match: []' for alerts no other runbook matches"
        problems.append(Problem(_shown(directory / "default.md"), 1, f"missing default runbook: {hint}"))
    return runbooks, sorted(problems)


class _RunbookFile:
    """One file read and checked: its problems, the id it declares, and the runbook if it has no problems."""

    def __init__(self, path: Path, playbook_names: set[str] | None, unattended: set[str] | None = None) -> None:
        self.path = path
        self._unattended = unattended
        self.shown = _shown(path)
        self.problems: list[Problem] = []
        self.declared_id: str | None = None
        self.runbook: Runbook | None = None
        self._lines = LineMap()
        self._read(playbook_names)

    def line_of(self, key: tuple[str | int, ...]) -> int:
        return self._lines.line_of(key)

    def _report(self, key: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.shown, self.line_of(key), f"{_field(key)}: {message}"))

    def _read(self, playbook_names: set[str] | None) -> None:
        raw = self.path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problems.append(Problem(self.shown, raw.count(b"\n", 0, exc.start) + 1, "not UTF-8 text"))
            return
        split = _split_front_matter(text)
        if isinstance(split, str):
            self.problems.append(Problem(self.shown, 1, split))
            return
        front_text, body = split
        try:
            data, self._lines = load_yaml(front_text, line_offset=1)  # the opening fence is line 1
        except YamlSyntaxError as exc:
            self.problems.append(Problem(self.shown, exc.line, str(exc)))
            return
        if not isinstance(data, dict):
            self.problems.append(Problem(self.shown, 2, "front matter must be a mapping (id, title, match, ...)"))
            return
        if isinstance(data.get("id"), str):
            self.declared_id = data["id"]
        try:
            front: _FrontMatter | None = _FrontMatter.model_validate(data)
        except ValidationError as exc:
            front = None
            for error in exc.errors():
                loc = tuple(error["loc"])
                self.problems.append(Problem(self.shown, self.line_of(loc), f"{_field(loc)}: {_message(error)}"))
        matchers = self._check_values(data, playbook_names)
        if front is None or self.problems:
            return
        self.runbook = Runbook(
            id=front.id, title=front.title, matchers=tuple(matchers), severity=front.severity,
            owners=tuple(front.owners), actions=tuple(front.actions), links=tuple(front.links),
            body=body, path=self.path, auto=tuple(front.auto),
            correlate=None if front.correlate is None else tuple(front.correlate),
        )

    def _check_values(self, data: dict[str, object], playbook_names: set[str] | None) -> list[Matcher]:
        """Checks beyond types; each runs on whatever part is well-typed, so one pass reports everything."""
        if self.declared_id is not None and self.declared_id != self.path.stem:
            self._report(("id",), f"'{self.declared_id}' must equal the file name '{self.path.stem}'")
        title = data.get("title")
        if isinstance(title, str) and not title.strip():
            self._report(("title",), "must not be empty")
        matchers: list[Matcher] = []
        match = data.get("match")
        for i, item in _strings(match):
            try:
                matchers.append(parse_matcher(item))
            except MatcherError as exc:
                self._report(("match", i), exc.message)
        if isinstance(match, list) and self.declared_id == DEFAULT_ID and match:
            self._report(("match",), "the default runbook catches what no other runbook matches; give it 'match: []'")
        if isinstance(match, list) and self.declared_id not in (None, DEFAULT_ID) and not match:
            self._report(("match",), "only the default runbook may have an empty match list")
        for i, owner in _strings(data.get("owners")):
            if owner_kind(owner) is None:
                self._report(("owners", i), f"'{owner}' is not a user group (@handle), user id (U…) or email")
        for i, action in _strings(data.get("actions")):
            if playbook_names is not None and action not in playbook_names:
                known = ", ".join(sorted(playbook_names)) or "none"
                self._report(("actions", i), f"unknown playbook '{action}' (known: {known})")
        self._check_auto(data.get("auto"), playbook_names)
        links = data.get("links")
        for i, link in enumerate(links if isinstance(links, list) else []):
            url = link.get("url") if isinstance(link, dict) else None
            if isinstance(url, str) and not url.startswith(("https://", "http://")):
                self._report(("links", i, "url"), f"'{url}' is not an http(s) URL")
        return matchers


    def _check_auto(self, auto: object, playbook_names: set[str] | None) -> None:
        for i, entry in enumerate(auto if isinstance(auto, list) else []):
            if not isinstance(entry, dict):
                continue
            for key in ("run", "propose"):
                name = entry.get(key)
                if not isinstance(name, str):
                    continue
                if playbook_names is not None and name not in playbook_names:
                    known = ", ".join(sorted(playbook_names)) or "none"
                    self._report(("auto", i, key), f"unknown playbook '{name}' (known: {known})")
                elif key == "run" and self._unattended is not None and name not in self._unattended:
                    self._report(("auto", i, key), f"'{name}' may not run unattended (its playbook needs "
                                 "'unattended: true', which requires undo steps, a verify step and no second-person "
                                 f"approval); use 'propose: {name}' to offer it for approval instead")
            for j, text in _strings(entry.get("match")):
                try:
                    parse_matcher(text)
                except MatcherError as exc:
                    self._report(("auto", i, "match", j), exc.message)


def _strings(value: object) -> list[tuple[int, str]]:
    return [(i, item) for i, item in enumerate(value) if isinstance(item, str)] if isinstance(value, list) else []


def _split_front_matter(text: str) -> tuple[str, str] | str:
    """Front matter text and the body after the closing fence, untouched (line endings included),
    or what is wrong with the first line."""
    lines = text.removeprefix("\ufeff").splitlines(keepends=True)  # editors on Windows add a BOM
    if not lines or lines[0].rstrip("\r\n") != _FENCE:
        return "missing front matter: the file must start with a '---' line"
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip("\r\n") == _FENCE:
            return "".join(lines[1:index]), "".join(lines[index + 1 :])
    return "front matter is not closed: add a '---' line after it"


def _field(loc: tuple[str | int, ...]) -> str:
    # The line already points at the list item, so indexes would only add noise: "links.url".
    return ".".join(str(part) for part in loc if not isinstance(part, int)) or "front matter"


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        nested = len(error["loc"]) > 1
        allowed = (AutoRule.model_fields if error["loc"][0] == "auto" else Link.model_fields) if nested \
            else _FrontMatter.model_fields
        return f"unknown key (expected one of: {', '.join(allowed)})"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"must be from 1 to 4, not {error['input']!r}"
    readable = {"string_type": "a string", "int_type": "an integer", "list_type": "a list",
                "model_type": "a mapping", "dict_type": "a mapping"}
    if kind in readable:
        return f"must be {readable[kind]}, not {error['input']!r}"
    return str(error["msg"])


def _shown(path: Path) -> str:
    """The path relative to the current directory when it is below it, else as given."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
