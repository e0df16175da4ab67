"""Failing traces → promptfoo eval cases, so the same failure cannot ship twice.

Every case is deterministic (no ``llm-rubric``): a CI run must fail for the regression and
pass for the fix without a grading model. Cases are keyed by prompt hash + failure type;
the earliest trace wins and human labels from every duplicate are merged into it. Export
merges with what is already on disk, so running it again never adds duplicates and, for the
same input, rewrites byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.redact import Redactor
from bot.trace_rules import FAILURE_TYPES, FailureRules, TraceEvent, failure_types

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


class EvalExportError(Exception):
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


class EvalCase(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    description: str
    vars: dict[str, str]
    assert_: list[dict[str, Any]] = Field(alias="assert", min_length=1)
    metadata: CaseMetadata

    @property
    def dedupe_key(self) -> tuple[str, str]:
        return (_prompt_key(self.metadata.prompt_hash, self.vars.get("question", "")), self.metadata.failure_type)

    @property
    def sort_key(self) -> tuple[int, str, str]:
        kind = self.metadata.failure_type
        rank = FAILURE_TYPES.index(kind) if kind in FAILURE_TYPES else len(FAILURE_TYPES)
        return (rank, self.dedupe_key[0], self.metadata.request_id)

    def to_promptfoo(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "vars": dict(self.vars),
            "assert": [_ordered_assert(a) for a in self.assert_],
            "metadata": self.metadata.model_dump(exclude_none=True),
        }


def _ordered_assert(check: Mapping[str, Any]) -> dict[str, Any]:
    # Fixed key order, so a case read back from the JSONL (sorted keys) renders the same YAML.
    first = [key for key in ("type", "value", "threshold") if key in check]
    return {key: check[key] for key in first + sorted(set(check) - set(first))}


@dataclass(frozen=True)
class ExportResult:
    paths: list[Path]
    written: int  # cases new to the folder
    deduplicated: int  # cases that matched one already there (or another in the same batch)
    total: int  # cases in the folder after the export


def _prompt_key(prompt_hash: str | None, question: str) -> str:
    # Traces without a prompt hash still dedupe, by what the user asked.
    return prompt_hash or "q:" + hashlib.sha256(question.encode()).hexdigest()[:16]


def _distinctive_sentence(output: str) -> str | None:
    """The longest sentence free of redaction markers: specific enough to catch the same answer again."""
    pieces = re.split(r"(?<=[.!?])\s+|\n+", output)
    pieces += [p for piece in pieces for p in re.split(r"\[(?:email|phone|secret|card|redacted)\]", piece)]
    candidates = [p.strip() for p in pieces if "[" not in p and len(p.strip()) >= 8]
    return max(candidates, key=len) if candidates else None


def _asserts_for(kind: str, trace: TraceEvent, label: Label, rules: FailureRules, redactor: Redactor) -> list[dict[str, Any]]:
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
        claim = label.unsupported_claim or _distinctive_sentence(redactor.redact(trace.output or ""))
        if claim and (label.unsupported_claim or not expected or kind == "hallucination"):
            asserts.append({"type": "not-icontains", "value": redactor.redact(claim)})
        if expected:
            asserts.append({"type": "icontains", "value": redactor.redact(expected)})
    return asserts


def _build_case(kind: str, trace: TraceEvent, label: Label, *, incident_id: str, rules: FailureRules,
                redactor: Redactor) -> EvalCase | None:
    asserts = _asserts_for(kind, trace, label, rules, redactor)
    if not asserts:
        return None
    question = redactor.redact(trace.question)
    short = question if len(question) <= 60 else question[:57] + "..."
    return EvalCase.model_validate({
        "description": f"{incident_id} {kind}: {short}",
        "vars": {"question": question},
        "assert": asserts,
        "metadata": CaseMetadata(
            incident_id=incident_id,
            request_id=trace.request_id,
            bundle=trace.bundle_version,
            failure_type=kind,
            prompt_hash=trace.prompt_hash,
            first_seen=trace.timestamp.isoformat(),
            labelled=label != Label(),
            notes=redactor.redact(label.notes) if label.notes else None,
        ),
    })


def cases_from_traces(
    traces: Iterable[TraceEvent],
    *,
    incident_id: str,
    labels: Mapping[str, Label] = {},
    rules: FailureRules = FailureRules(),
    redactor: Redactor | None = None,
) -> list[EvalCase]:
    """One case per (prompt hash, failure type). A label's failure type replaces the detector's
    verdict; a label with an answer on a trace the rules call healthy counts as negative feedback."""
    redactor = redactor or Redactor()
    groups: dict[tuple[str, str], list[tuple[TraceEvent, Label]]] = {}
    for trace in traces:
        label = labels.get(trace.request_id, Label())
        kinds = [label.failure_type] if label.failure_type else failure_types(trace, rules)
        if not kinds and (label.expected or label.unsupported_claim):
            kinds = ["negative_feedback"]
        for kind in kinds:
            if kind in EXPORTABLE_FAILURE_TYPES:
                groups.setdefault((_prompt_key(trace.prompt_hash, trace.question), kind), []).append((trace, label))
    cases = []
    for (_, kind), members in groups.items():
        members.sort(key=lambda m: (m[0].timestamp, m[0].request_id))
        merged = Label()
        for _trace, label in members:
            merged = merged.merged_with(label)
        case = _build_case(kind, members[0][0], merged, incident_id=incident_id, rules=rules, redactor=redactor)
        if case is not None:
            cases.append(case)
    return sorted(cases, key=lambda c: c.sort_key)


def _read_existing(path: Path) -> list[EvalCase]:
    if not path.exists():
        return []
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(EvalCase.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise EvalExportError(f"{path}:{number}: not an eval case: {exc}") from exc
    return cases


def _preferred(old: EvalCase, new: EvalCase) -> EvalCase:
    # A human label upgrades a case; otherwise the earliest trace stays, so re-exports are stable.
    if new.metadata.labelled != old.metadata.labelled:
        return new if new.metadata.labelled else old
    return new if new.metadata.first_seen < old.metadata.first_seen else old


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
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
                    "headers": {"Content-Type": "application/json"},
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


def _tests_yaml(tests: list[dict[str, Any]]) -> str:
    """The promptfoo test list. Block YAML reads best in review, but PyYAML needs ~45 s for 70,000
    cases; past ``BLOCK_STYLE_LIMIT`` each case is one JSON flow mapping per line, still YAML."""
    if len(tests) <= BLOCK_STYLE_LIMIT:
        return _yaml(tests)
    return "".join("- " + json.dumps(t, ensure_ascii=False) + "\n" for t in tests)


def write_eval_files(cases: Iterable[EvalCase], out_dir: Path, *, target_url: str) -> ExportResult:
    """Merge ``cases`` into ``out_dir`` and (re)write tests.yaml, cases.jsonl and promptfooconfig.yaml."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl_path = out_dir / "cases.jsonl"
    merged = {case.dedupe_key: case for case in _read_existing(jsonl_path)}
    written = deduplicated = 0
    for case in cases:
        key = case.dedupe_key
        if key in merged:
            deduplicated += 1
            merged[key] = _preferred(merged[key], case)
        else:
            merged[key] = case
            written += 1
    ordered = sorted(merged.values(), key=lambda c: c.sort_key)
    tests = [case.to_promptfoo() for case in ordered]
    paths = [out_dir / "tests.yaml", jsonl_path, out_dir / "promptfooconfig.yaml"]
    _write_atomically(paths[0], _tests_yaml(tests))
    _write_atomically(jsonl_path, "".join(json.dumps(t, sort_keys=True, ensure_ascii=False) + "\n" for t in tests))
    _write_atomically(paths[2], _yaml(promptfoo_config(target_url)))
    return ExportResult(paths=paths, written=written, deduplicated=deduplicated, total=len(ordered))
