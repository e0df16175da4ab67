"""Playbooks: declarative HTTP actions a responder can run from the incident channel.

A playbook file is data an operator reviews like code: typed params, who may run it, whether a
second person must approve, the requests to send, how to verify the effect and how to undo it.
``check_playbooks`` points at the exact line of each mistake (``path:line: message``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2 import meta
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.errors import ConfigError
from bot.problems import Problem
from bot.yamlsource import LineMap, YamlSyntaxError, load_yaml

from .jsonpath import parse_path
from .render import CONTEXT_NAMES, sandbox
from .targets import check_targets, load_targets

TARGETS_FILE = "targets.yaml"
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ParamSpec(_Strict):
    type: Literal["string", "int", "bool", "enum"] = "string"
    pattern: str | None = None
    choices: list[str] | None = None
    default: Any = None
    from_label: str | None = None
    required: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        if self.type == "enum" and not self.choices:
            raise ValueError("an enum param needs choices")
        return self


class Expect(_Strict):
    status: list[int] | None = None  # None: any 2xx
    json_: dict[str, Any] = Field(default_factory=dict, alias="json")


class Step(_Strict):
    name: str
    method: Method = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: float = Field(default=10.0, gt=0, le=120)
    expect: Expect = Field(default_factory=Expect)
    save: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_body(self) -> Step:
        if self.json_ is not None and self.body is not None:
            raise ValueError("a step sends either json or body, not both")
        return self


class Verify(_Strict):
    method: Method = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    expect: Expect = Field(default_factory=Expect)
    interval: float = Field(default=0.5, gt=0, le=60)
    timeout: float = Field(default=30.0, gt=0, le=3600)


class Playbook(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")
    description: str = ""
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    confirm: bool = False
    approval: Literal["none", "second-person"] = "none"
    allowed: list[str] = Field(default_factory=list)
    destructive: bool = False
    # May warroom run it on its own, when a runbook's `auto:` says so? Needs undo, verify, no approval.
    unattended: bool = False
    target: str | None = None
    steps: list[Step] = Field(min_length=1)
    verify: Verify | None = None
    undo: list[Step] = Field(default_factory=list)
    # Polled after the undo steps, like ``verify`` after the steps; it can read ``saved.*``.
    undo_verify: Verify | None = None


class PlaybookError(ConfigError, ValueError):
    """A playbook file is broken; ``problems`` says where."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_playbooks(directory: str | Path) -> dict[str, Playbook]:
    """Every playbook in ``directory``, by name; raises PlaybookError listing all problems."""
    playbooks: dict[str, Playbook] = {}
    problems: list[Problem] = []
    for path in _playbook_files(Path(directory)):
        playbook, found = _load_one(path)
        problems.extend(found)
        if playbook is not None:
            playbooks[playbook.name] = playbook
    if problems:
        raise PlaybookError(sorted(problems))
    return playbooks


def check_playbooks(directory: str | Path, targets: set[str] | None = None) -> list[Problem]:
    """Problems in the folder's playbooks, sorted by file and line; empty when all is well.

    ``targets`` defaults to the names in the folder's targets.yaml (when present)."""
    directory = Path(directory)
    problems: list[Problem] = []
    if targets is None and (directory / TARGETS_FILE).exists():
        problems = check_targets(directory / TARGETS_FILE)
        if not problems:
            targets = set(load_targets(directory / TARGETS_FILE, environ={}))
    seen: dict[str, Path] = {}
    for path in _playbook_files(directory):
        playbook, found = _load_one(path, targets)
        problems.extend(found)
        if playbook is None:
            continue
        if playbook.name in seen:
            problems.append(Problem(str(path), 1,
                                    f"playbook name {playbook.name!r} is also used by {seen[playbook.name]}"))
        seen[playbook.name] = path
    return sorted(problems)


def _playbook_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name != TARGETS_FILE)


def _load_one(path: Path, targets: set[str] | None = None) -> tuple[Playbook | None, list[Problem]]:
    where = str(path)
    try:
        data, lines = load_yaml(path.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        return None, [Problem(where, exc.line, str(exc))]
    if not isinstance(data, dict):
        return None, [Problem(where, 1, "a playbook must be a mapping of fields (name, steps, ...)")]
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        return None, [_problem_from(where, lines, err) for err in exc.errors()]
    problems = _check_semantics(playbook, data, where, lines, targets)
    return (None if problems else playbook), problems


def _problem_from(where: str, lines: LineMap, err: Any) -> Problem:
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    # Pydantic appends the union/validator branch name to locations; keep only real keys.
    loc = tuple(p for p in loc if p not in ("str", "int", "list[int]", "dict[str,any]"))
    label = _dotted(loc) or "playbook"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "is required"
    elif err["type"] == "string_pattern_mismatch" and loc == ("name",):
        message = "use lowercase letters, digits and dashes, starting with a letter (like disable-tool)"
    return Problem(where, lines.line_of(loc), f"{label}: {message}")


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _check_semantics(
    playbook: Playbook, data: dict[str, Any], where: str, lines: LineMap, targets: set[str] | None
) -> list[Problem]:
    problems: list[Problem] = []
    if playbook.unattended:
        missing = [why for why, bad in (
            ("undo steps", not playbook.undo), ("a verify step", playbook.verify is None),
            ("approval: none (no second person)", playbook.approval != "none"),
            ("destructive: false", playbook.destructive)) if bad]
        if missing:
            problems.append(Problem(where, lines.line_of(("unattended",)),
                                    f"unattended: a playbook warroom may run on its own needs {', '.join(missing)}"))
    if targets is not None and playbook.target is not None and playbook.target not in targets:
        problems.append(Problem(where, lines.line_of(("target",)),
                                f"target: unknown target {playbook.target!r} "
                                f"(known: {', '.join(sorted(targets)) or 'none'})"))
    for name, spec in playbook.params.items():
        if spec.default is not None and spec.choices and str(spec.default) not in spec.choices:
            problems.append(Problem(where, lines.line_of(("params", name, "default")),
                                    f"params.{name}.default: {spec.default!r} is not one of the choices"))
    for section in ("steps", "undo"):
        for index, step in enumerate(data.get(section) or []):
            if not isinstance(step, dict):
                continue
            for var, path in (step.get("save") or {}).items():
                try:
                    parse_path(str(path))
                except ValueError as exc:
                    problems.append(Problem(where, lines.line_of((section, index, "save", var)),
                                            f"{section}[{index}].save.{var}: {exc}"))
    for loc, text in _template_strings(data, ()):
        problem = _check_template(text, set(playbook.params))
        if problem:
            problems.append(Problem(where, lines.line_of(loc), f"{_dotted(loc)}: {problem}"))
    return problems


def _template_strings(value: Any, loc: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    if loc and loc[0] in ("name", "description", "params", "allowed", "approval", "target"):
        return []
    if isinstance(value, str):
        return [(loc, value)] if ("{{" in value or "{%" in value or "{#" in value) else []
    found: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "{" in key:
                found.append(((*loc, key), key))
            found.extend(_template_strings(item, (*loc, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_template_strings(item, (*loc, index)))
    return found


def _check_template(text: str, param_names: set[str]) -> str | None:
    try:
        tree = sandbox().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return f"template error: {exc.message}"
    unknown = meta.find_undeclared_variables(tree) - CONTEXT_NAMES
    if unknown:
        return f"template uses unknown name {sorted(unknown)[0]!r} (use {', '.join(sorted(CONTEXT_NAMES))})"
    for node in tree.find_all(jinja2.nodes.Getattr):
        if isinstance(node.node, jinja2.nodes.Name) and node.node.name == "params" and node.attr not in param_names:
            return f"template uses params.{node.attr}, which is not declared under params"
    return None
