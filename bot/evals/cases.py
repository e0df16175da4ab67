"""Failing traces → promptfoo eval cases, so the same failure cannot ship twice.

Every case is deterministic (no ``llm-rubric``): a CI run must fail for the regression and
pass for the fix without a grading model. Cases are keyed by prompt hash + failure type;
the earliest trace wins and human labels from every duplicate are merged into it. Export
merges with what is already on disk, so running it again never adds duplicates and, for the
same input, rewrites byte-identical files.

Exports run over the traces of a whole incident (100,000 is not unusual), so cases are built
straight into their JSONL line (`CaseLine`) by a `CaseCollector` that sees each trace once, in
time order, and keeps only one line per case; the pydantic `EvalCase` is for reading files back
and for callers that want objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot import redact
from bot.errors import ConfigError
from bot.redact import Redactor
from bot.traces.rules import FAILURE_TYPES, FailureRules, TraceEvent, failure_types

# Cost cannot be asserted through promptfoo's http provider (it returns no cost, and the
# `cost` assertion then errors), so cost failures stay in the postmortem, not in evals.
EXPORTABLE_FAILURE_TYPES = tuple(kind for kind in FAILURE_TYPES if kind != "cost")

# The scenario's wording ("unsupported claim") for what the detector calls a hallucination.
_FAILURE_TYPE_ALIASES = {"unsupported_claim": "hallucination", "unsupported claim": "hallucination"}

# Text a model tends to echo when a tool blew up instead of answering.
_TOOL_ERROR_JS = (
    r"!/(tool|function)( call)? (error|failed)|traceback \(most recent call last\)|"
    r"exception:|internal server error|error calling tool/i.test(output)"
)


class EvalExportError(ConfigError):
    """Existing eval files could not be read back; nothing was written."""


class Label(BaseModel):
    """A human's correction of one trace (keyed by request_id)."""

    failure_type: str | None = None
    expected: str | None = None
    unsupported_claim: str | None = None
    notes: str | None = None

    @field_validator("failure_type")
    @classmethod
    def _known_failure_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _FAILURE_TYPE_ALIASES.get(value.strip().lower(), value.strip().lower())
        if value not in FAILURE_TYPES:
            raise ValueError(f"unknown failure type {value!r}; expected one of {', '.join(FAILURE_TYPES)}")
        return value

    def merged_with(self, later: Label) -> Label:
        """Fields set here win; gaps are filled from ``later``."""
        mine = self.model_dump(exclude_none=True)
        return Label(**{**later.model_dump(exclude_none=True), **mine})


class CaseMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    incident_id: str
    request_id: str
    bundle: str | None = None
    failure_type: str
    prompt_hash: str | None = None
    first_seen: str
    labelled: bool = False
    notes: str | None = None
    input_missing: str | None = None  # why the case has no question (see `no_input_reason`)


class EvalCase(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    description: str
    vars: dict[str, str]
    assert_: list[dict[str, Any]] = Field(alias="assert", min_length=1)
    metadata: CaseMetadata

    def to_line(self) -> CaseLine:
        return CaseLine.of(self.to_promptfoo())

    def to_promptfoo(self) -> dict[str, Any]:
        return _readable({
            "description": self.description,
            "vars": dict(self.vars),
            "assert": self.assert_,
            "metadata": self.metadata.model_dump(exclude_none=True),
        })


_METADATA_ORDER = tuple(CaseMetadata.model_fields)


def _readable(case: Mapping[str, Any]) -> dict[str, Any]:
    """A case in reading order (description, vars, assert, metadata), whatever order it came in."""
    metadata = case["metadata"]
    keys = [k for k in _METADATA_ORDER if k in metadata] + sorted(set(metadata) - set(_METADATA_ORDER))
    return {
        "description": case["description"],
        "vars": dict(case["vars"]),
        "assert": [_ordered_assert(a) for a in case["assert"]],
        "metadata": {k: metadata[k] for k in keys},
    }


def _ordered_assert(check: Mapping[str, Any]) -> dict[str, Any]:
    # Fixed key order, so a case read back from the JSONL (sorted keys) renders the same YAML.
    first = [key for key in ("type", "value", "threshold") if key in check]
    return {key: check[key] for key in first + sorted(set(check) - set(first))}



def _jsonl(case: Mapping[str, Any]) -> str:
    """A case as one line: keys sorted, compact, UTF-8 as it is. orjson, because a big export writes
    tens of thousands of them against a time budget (bench/README.md, "Evals")."""
    return orjson.dumps(case, option=orjson.OPT_SORT_KEYS).decode()

_RANK = {kind: rank for rank, kind in enumerate(FAILURE_TYPES)}  # file order: by failure type first


@dataclass(frozen=True, slots=True)
class CaseLine:
    """One case as its cases.jsonl line, with what merging and ordering need, parsed once."""

    key: tuple[str, str]  # (prompt, failure type): one case per key in a folder
    sort_key: tuple[int, str, str]
    labelled: bool
    first_seen: str
    json: str  # keys sorted, no newline

    @classmethod
    def of(cls, case: Mapping[str, Any]) -> CaseLine:
        metadata = case["metadata"]
        return cls._make(metadata["failure_type"], metadata.get("prompt_hash"), case["vars"].get("question", ""),
                         metadata["request_id"], bool(metadata.get("labelled")), metadata["first_seen"],
                         _jsonl(case))

    @classmethod
    def read(cls, text: str) -> CaseLine:
        """A line of cases.jsonl, validated (ValidationError when it is not a case) and kept as written."""
        case = EvalCase.model_validate_json(text)
        meta = case.metadata
        return cls._make(meta.failure_type, meta.prompt_hash, case.vars.get("question", ""), meta.request_id,
                         meta.labelled, meta.first_seen, text.strip())

    @classmethod
    def _make(cls, kind: str, prompt_hash: str | None, question: str, request_id: str, labelled: bool,
              first_seen: str, text: str) -> CaseLine:
        prompt = prompt_key(prompt_hash, question)
        return cls(key=(prompt, kind), sort_key=(_RANK.get(kind, len(FAILURE_TYPES)), prompt, request_id),
                   labelled=labelled, first_seen=first_seen, json=text)

    def case(self) -> dict[str, Any]:
        return dict(json.loads(self.json))


@dataclass(frozen=True)
class ExportResult:
    paths: list[Path]
    written: int  # cases new to the folder
    deduplicated: int  # cases that matched one already there (or another in the same batch)
    total: int  # cases in the folder after the export


def prompt_key(prompt_hash: str | None, question: str) -> str:
    """What makes two traces the same prompt; without a prompt hash, what the user asked."""
    return prompt_hash or "q:" + hashlib.sha256(question.encode()).hexdigest()[:16]


def _distinctive_sentence(output: str) -> str | None:
    """The longest sentence free of redaction markers: specific enough to catch the same answer again."""
    pieces = re.split(r"(?<=[.!?])\s+|\n+", output)
    pieces += [p for piece in pieces for p in re.split(r"\[(?:email|phone|secret|card|redacted|private key)\]", piece)]
    candidates = [p.strip() for p in pieces if "[" not in p and len(p.strip()) >= 8]
    return max(candidates, key=len) if candidates else None


_NO_LABEL = Label()
# A trace without input whose sender said nothing about it (OTLP ingest says why: `bot.otlp.genai`).
NO_INPUT = "the trace carried no input"
INPUT_MISSING_ATTRIBUTE = "input_missing"  # under the event's ``attributes``
_REASON_LIMIT = 300


def no_input_reason(question: str, attributes_reason: Any, redactor: Redactor) -> str | None:
    """Why a case has no question, or None when it has one: the reason stored with the trace
    (from a sender, so redacted and bounded), else `NO_INPUT`. An eval case without a question
    cannot replay the failure; its description and metadata say so instead of an unexplained
    empty prompt."""
    if question.strip():
        return None
    if isinstance(attributes_reason, str) and attributes_reason.strip():
        reason = " ".join(redactor.redact(attributes_reason).split())
        return reason if len(reason) <= _REASON_LIMIT else reason[:_REASON_LIMIT - 3] + "..."
    return NO_INPUT


@dataclass(frozen=True, slots=True)
class TraceFacts:
    """The fields of a trace a case is built from (of a `TraceEvent`, or read from the database)."""

    request_id: str
    timestamp: datetime  # UTC
    question: str
    output: str | None
    expected: str | None
    bundle_version: str | None
    prompt_hash: str | None
    input_missing: str | None = None  # the reason stored with a trace that has no input, if any

    @classmethod
    def of_event(cls, event: TraceEvent) -> TraceFacts:
        return cls(event.request_id, event.timestamp, event.question, event.output, event.expected,
                   event.bundle_version, event.prompt_hash, event.attributes.get(INPUT_MISSING_ATTRIBUTE))



def case_kinds(detected: Sequence[str], label: Label | None) -> list[str]:
    """The failure types a trace makes cases for: a human's label overrides the detector, and a
    correction on a trace the rules call healthy counts as negative feedback."""
    if label is not None and label.failure_type:
        return [label.failure_type]
    if not detected and label is not None and (label.expected or label.unsupported_claim):
        return ["negative_feedback"]
    return [kind for kind in detected if kind in EXPORTABLE_FAILURE_TYPES]


def _asserts_for(kind: str, trace: TraceFacts, label: Label, rules: FailureRules,
                 redactor: Redactor) -> list[dict[str, Any]]:
    expected = label.expected or trace.expected
    asserts: list[dict[str, Any]] = []
    if kind == "schema_invalid":
        asserts.append({"type": "is-json"})
    elif kind == "tool_error":
        asserts.append({"type": "javascript", "value": _TOOL_ERROR_JS})
    elif kind == "latency":
        threshold = float(rules.latency_ms_threshold)
        asserts.append({"type": "latency", "threshold": int(threshold) if threshold.is_integer() else threshold})
    elif kind in ("hallucination", "negative_feedback"):
        # A sentence of the redacted output needs no second pass; a human's claim does.
        claim = (redactor.redact(label.unsupported_claim) if label.unsupported_claim
                 else _distinctive_sentence(redactor.redact(trace.output or "")))
        if claim and (label.unsupported_claim or not expected or kind == "hallucination"):
            asserts.append({"type": "not-icontains", "value": claim})
        if expected:
            asserts.append({"type": "icontains", "value": redactor.redact(expected)})
    return asserts


def _given(facts: TraceFacts) -> Callable[[], TraceFacts]:
    """Facts already read, in the shape CaseCollector.add takes for facts it reads only when needed."""
    return lambda: facts


def build_case(kind: str, trace: TraceFacts, label: Label | None, *, incident_id: str, rules: FailureRules,
               redactor: Redactor) -> dict[str, Any] | None:
    """The promptfoo test for ``trace`` failing as ``kind``; None when there is nothing to assert."""
    labelled = label is not None and label != _NO_LABEL
    label = label or _NO_LABEL
    asserts = _asserts_for(kind, trace, label, rules, redactor)
    if not asserts:
        return None
    question = redactor.redact(trace.question)
    short = question if len(question) <= 60 else question[:57] + "..."
    missing = no_input_reason(question, trace.input_missing, redactor)
    metadata = {
        "incident_id": incident_id, "request_id": trace.request_id, "bundle": trace.bundle_version,
        "failure_type": kind, "prompt_hash": trace.prompt_hash, "first_seen": trace.timestamp.isoformat(),
        "labelled": labelled, "notes": redactor.redact(label.notes) if label.notes else None,
        "input_missing": missing,
    }
    described = f"no input: {missing}" if missing else short
    return {"description": f"{incident_id} {kind}: {described}", "vars": {"question": question}, "assert": asserts,
            "metadata": {k: v for k, v in metadata.items() if v is not None}}


@dataclass(slots=True)
class _Case:
    kind: str
    first: Any  # how to load the earliest trace again (see CaseCollector.lines)
    label: Label | None  # the labels of every trace of the case, earliest first
    line: CaseLine | None  # None: the earliest trace gives nothing to assert for this kind
    stale: bool = False  # a later trace brought a label: the line is rebuilt at the end


class CaseCollector:
    """Cases from traces added in (timestamp, request_id) order, one per (prompt, failure type).

    The earliest trace of a case is its example and is built at once; a later one only adds its
    human label (fields already set by an earlier label win). So memory holds one line per case,
    not the traces, and a case is rebuilt only when a later trace was labelled.
    """

    def __init__(self, *, incident_id: str, rules: FailureRules = FailureRules(),
                 redactor: Redactor | None = None) -> None:
        self.incident_id, self.rules, self.redactor = incident_id, rules, redactor or redact.DEFAULT
        self._cases: dict[tuple[str, str], _Case] = {}

    def add(self, ref: Any, *, prompt_key: str, kinds: Sequence[str], label: Label | None,
            facts: Callable[[], TraceFacts]) -> None:
        """One trace: ``ref`` finds it again, ``facts`` reads it (called only for a new case)."""
        first: TraceFacts | None = None
        for kind in kinds:
            case = self._cases.get((prompt_key, kind))
            if case is None:
                first = first or facts()
                self._cases[(prompt_key, kind)] = _Case(kind, ref, label, self._line(kind, first, label))
            elif label is not None:
                case.label = case.label.merged_with(label) if case.label else label
                case.stale = True

    def lines(self, load: Callable[[list[Any]], Mapping[Any, TraceFacts]]) -> list[CaseLine]:
        """Every case, in file order; ``load(refs)`` reads again the traces whose case is stale."""
        stale = [case for case in self._cases.values() if case.stale]
        if stale:
            loaded = load([case.first for case in stale])
            for case in stale:
                case.line = self._line(case.kind, loaded[case.first], case.label)
        return sorted((c.line for c in self._cases.values() if c.line is not None), key=lambda line: line.sort_key)

    def _line(self, kind: str, trace: TraceFacts, label: Label | None) -> CaseLine | None:
        case = build_case(kind, trace, label, incident_id=self.incident_id, rules=self.rules, redactor=self.redactor)
        return CaseLine.of(case) if case is not None else None


def cases_from_traces(
    traces: Iterable[TraceEvent],
    *,
    incident_id: str,
    labels: Mapping[str, Label] = {},
    rules: FailureRules = FailureRules(),
    redactor: Redactor | None = None,
) -> list[EvalCase]:
    """One case per (prompt hash, failure type): the earliest trace, with every trace's label merged in."""
    collector = CaseCollector(incident_id=incident_id, rules=rules, redactor=redactor)
    for trace in sorted(traces, key=lambda t: (t.timestamp, t.request_id)):
        facts = TraceFacts.of_event(trace)
        label = labels.get(trace.request_id)
        collector.add(facts, prompt_key=prompt_key(trace.prompt_hash, trace.question),
                      kinds=case_kinds(failure_types(trace, rules), label), label=label, facts=_given(facts))
    lines = collector.lines(load=lambda refs: {ref: ref for ref in refs})
    return [EvalCase.model_validate(line.case()) for line in lines]


def _read_existing(path: Path) -> list[CaseLine]:
    if not path.exists():
        return []
    lines = []
    with path.open(encoding="utf-8") as rows:
        for number, row in enumerate(rows, start=1):
            if not row.strip():
                continue
            try:
                lines.append(CaseLine.read(row))  # a hand edit that broke a case stops the export here
            except ValidationError as exc:
                raise EvalExportError(f"{path}:{number}: not an eval case: {exc}") from exc
    return lines


def _preferred(old: CaseLine, new: CaseLine) -> CaseLine:
    # A human label upgrades a case; otherwise the earliest trace stays, so re-exports are stable.
    if new.labelled != old.labelled:
        return new if new.labelled else old
    return new if new.first_seen < old.first_seen else old


def _write_atomically(path: Path, chunks: Iterable[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.writelines(chunks)
    os.replace(tmp, path)


def promptfoo_config(target_url: str) -> dict[str, Any]:
    return {
        "description": "warroom: regressions found in incident traces",
        "prompts": ["{{question}}"],
        "providers": [
            {
                "id": "http",
                "label": "llm-service",
                "config": {
                    "url": target_url.rstrip("/") + "/v1/answer",
                    "method": "POST",
                    # Tagged as eval traffic (bot.evals.target): answered, but never a production trace.
                    "headers": {"Content-Type": "application/json", "X-Warroom-Eval": "export"},
                    "body": {"question": "{{question}}"},
                    "transformResponse": "json.output",
                },
            }
        ],
        "tests": "file://tests.yaml",
    }


def _yaml(data: Any) -> str:
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120, default_flow_style=False))


BLOCK_STYLE_LIMIT = 2_000


def _tests_yaml(lines: list[CaseLine]) -> Iterable[str]:
    """The promptfoo test list. Block YAML reads best in review, but PyYAML's block writer is far too
    slow for a big export; past ``BLOCK_STYLE_LIMIT`` each case is its JSONL line as a flow mapping, still YAML."""
    if len(lines) <= BLOCK_STYLE_LIMIT:
        return [_yaml([_readable(line.case()) for line in lines])]
    return ("- " + line.json + "\n" for line in lines)


def write_eval_files(cases: Iterable[EvalCase | CaseLine], out_dir: Path, *, target_url: str) -> ExportResult:
    """Merge ``cases`` into ``out_dir`` and (re)write tests.yaml, cases.jsonl and promptfooconfig.yaml."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl_path = out_dir / "cases.jsonl"
    merged = {line.key: line for line in _read_existing(jsonl_path)}
    written = deduplicated = 0
    for case in cases:
        line = case if isinstance(case, CaseLine) else case.to_line()
        if line.key in merged:
            deduplicated += 1
            merged[line.key] = _preferred(merged[line.key], line)
        else:
            merged[line.key] = line
            written += 1
    ordered = sorted(merged.values(), key=lambda line: line.sort_key)
    paths = [out_dir / "tests.yaml", jsonl_path, out_dir / "promptfooconfig.yaml"]
    _write_atomically(paths[0], _tests_yaml(ordered))
    _write_atomically(jsonl_path, (line.json + "\n" for line in ordered))
    _write_atomically(paths[2], [_yaml(promptfoo_config(target_url))])
    return ExportResult(paths=paths, written=written, deduplicated=deduplicated, total=len(ordered))
