"""`warroom evals replay`: send every failing input of an incident to a candidate bundle again.

Not the deduplicated cases: all of the incident's failing (and labelled) traces, so the report
counts what users would have seen. Each reply is judged by the same rules that made the original
trace a failure, plus the human label where there is one, and the report says per failure type
how many are fixed, still failing, or newly failing. Requests carry the eval header, so they
never become production traces.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from bot.evals.cases import _distinctive_sentence
from bot.evals.suite import TraceRow, key_facts, split_claims
from bot.evals.target import EVAL_HEADER, EvalTarget
from bot.traces.rules import FailureRules, ToolCall, TraceEvent, failure_types

REPLAY_CONCURRENCY = 8


@dataclass
class ReplayReport:
    bundle: str
    requests: int = 0
    errors: int = 0
    by_type: dict[str, Counter[str]] = field(default_factory=dict)  # type → {fixed, still failing, newly failing}
    first_error: str | None = None

    def add(self, before: Iterable[str], after: Iterable[str]) -> None:
        before, after = set(before), set(after)
        for kind in before | after:
            if kind in before and kind in after:
                verdict = "still failing"
            else:
                verdict = "fixed" if kind in before else "newly failing"
            self.by_type.setdefault(kind, Counter())[verdict] += 1

    @property
    def ok(self) -> bool:
        return self.errors == 0 and not any(c["still failing"] or c["newly failing"] for c in self.by_type.values())

    def as_text(self) -> str:
        lines = [f"Replay of {self.requests} failing input(s) against {self.bundle}"
                 + (f" ({self.errors} request(s) failed: {self.first_error})" if self.errors else "") + ":"]
        for kind in sorted(self.by_type):
            c = self.by_type[kind]
            lines.append(f"  {kind}: {c['fixed']} fixed, {c['still failing']} still failing, "
                         f"{c['newly failing']} newly failing")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "requests": self.requests, "errors": self.errors,
                "by_type": {k: dict(v) for k, v in sorted(self.by_type.items())}}


def judge_reply(row: TraceRow, reply: dict[str, Any], elapsed_ms: float, rules: FailureRules) -> list[str]:
    """How the candidate's reply fails, in the terms the original trace failed in."""
    raw_output = reply.get("output")
    output = raw_output if isinstance(raw_output, str) else json.dumps(raw_output)
    event = TraceEvent(
        request_id=row.request_id, timestamp=datetime.now(timezone.utc), output=output,
        tool_calls=[ToolCall.model_validate(c) for c in reply.get("tool_calls") or []
                    if isinstance(c, dict) and "name" in c],
        latency_ms=reply.get("latency_ms", elapsed_ms),
        schema_valid=reply.get("schema_valid") if isinstance(reply.get("schema_valid"), bool) else None,
        hallucination_score=reply.get("hallucination_score") if isinstance(reply.get("hallucination_score"),
                                                                           float) else None,
    )
    if event.schema_valid is None and "schema_invalid" in row.kinds:
        try:
            json.loads(output)
            event.schema_valid = True
        except ValueError:
            event.schema_valid = False
    found = set(failure_types(event, rules)) - {"negative_feedback"}
    label = row.label
    lowered = output.lower()
    if label is not None and (label.expected or label.unsupported_claim):
        facts = key_facts(label.expected) if label.expected else []
        claims = split_claims(label.unsupported_claim) if label.unsupported_claim else []
        wrong = any(f.lower() not in lowered for f in facts) or any(c.lower() in lowered for c in claims)
        kind = label.failure_type or "hallucination"
        found.discard(kind)
        if wrong:
            found.add(kind)
    elif "hallucination" in row.kinds and event.hallucination_score is None:
        sentence = _distinctive_sentence(row.output or "")
        if sentence and sentence.lower() in lowered:
            found.add("hallucination")
    return sorted(found)


def replay(rows: list[TraceRow], target: EvalTarget, service: str, bundle: str, *, rules: FailureRules,
           run_tag: str, timeout: float = 30.0, client: httpx.Client | None = None) -> ReplayReport:
    url, headers = target.render(bundle)
    headers = {**headers, EVAL_HEADER: run_tag}
    report = ReplayReport(bundle=f"{service}:{bundle}", requests=len(rows))
    own = client is None
    http = client or httpx.Client(timeout=timeout)

    def send(row: TraceRow) -> tuple[TraceRow, dict[str, Any] | None, float, str | None]:
        started = time.monotonic()
        try:
            response = http.post(url, json={"question": row.question}, headers=headers)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return row, None, 0.0, str(exc)
        if not isinstance(body, dict):
            return row, None, 0.0, "the reply is not a JSON object"
        return row, body, (time.monotonic() - started) * 1000, None

    try:
        with ThreadPoolExecutor(max_workers=REPLAY_CONCURRENCY) as pool:
            for row, body, elapsed, error in pool.map(send, rows):
                if body is None:
                    report.errors += 1
                    report.first_error = report.first_error or error
                    continue
                before = [row.label.failure_type] if row.label is not None and row.label.failure_type else row.kinds
                report.add([k for k in before if k != "negative_feedback"], judge_reply(row, body, elapsed, rules))
    finally:
        if own:
            http.close()
    return report
