"""A service's suite as promptfoo files: tests.yaml, cases.jsonl and promptfooconfig.yaml.

The files are rewritten from the database each time, in the suite's stable order, so exporting
twice gives the same bytes and never duplicates a case.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlmodel import Session

from bot.evals.asserts import AssertContext, case_asserts, inert_literal, must_pass
from bot.evals.cases import BLOCK_STYLE_LIMIT, _write_atomically, _yaml
from bot.evals.suite import SuiteCase, suite_cases
from bot.evals.target import EvalTarget, parse_targets, provider
from bot.store.models import Bundle


@dataclass(frozen=True)
class SuiteExport:
    paths: list[Path]
    total: int
    labelled: int


def short(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def suite_test(case: SuiteCase, ctx: AssertContext) -> dict[str, Any]:
    """One promptfoo test. The question goes in as an inert JSON literal (see `bot.evals.asserts`);
    the description is shown, never rendered, but keeps ``{`` out all the same."""
    label = "labelled" if case.labelled else "unlabelled"
    missing = case.data.get("input_missing")
    # A case without a question says why (e.g. OTLP spans sent without message content) rather
    # than showing an empty prompt; it is still a test, so the suite's counts stay those of Slack.
    shown = f"no input: {missing}" if missing and not case.question.strip() else short(case.question)
    question = shown.replace("{", "(").replace("}", ")")
    return {
        "description": f"{case.case_id} {case.failure_type} ({label}): {question}",
        "vars": {"question_json": inert_literal(case.question)},
        "assert": case_asserts(case, ctx),
        "metadata": {
            "case_id": case.case_id, "service": case.service, "failure_type": case.failure_type,
            "labelled": case.labelled, "must_pass": must_pass(case), "incidents": case.incidents,
            "traces": case.trace_count, "request_ids": case.request_ids[:20],
            **({"input_missing": missing} if missing else {}),
        },
    }


def promptfoo_suite_config(service: str, providers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "description": f"warroom: regression suite of {service}",
        "prompts": ["{{question_json}}"],
        "providers": list(providers),
        "tests": "file://tests.yaml",
    }


def write_suite_files(cases: Sequence[SuiteCase], out_dir: Path, *, ctx: AssertContext,
                      providers: Sequence[dict[str, Any]], service: str) -> SuiteExport:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tests = [suite_test(case, ctx) for case in cases]
    paths = [out_dir / "tests.yaml", out_dir / "cases.jsonl", out_dir / "promptfooconfig.yaml"]
    if len(tests) <= BLOCK_STYLE_LIMIT:
        _write_atomically(paths[0], [_yaml(tests)])
    else:  # flow mappings: PyYAML's block style is too slow for big suites (see bot.evals.cases)
        _write_atomically(paths[0], ("- " + orjson.dumps(t).decode() + "\n" for t in tests))
    _write_atomically(paths[1], (orjson.dumps(t, option=orjson.OPT_SORT_KEYS).decode() + "\n" for t in tests))
    _write_atomically(paths[2], [_yaml(promptfoo_suite_config(service, providers))])
    return SuiteExport(paths, len(tests), sum(1 for c in cases if c.labelled))


def target_for(service: str, *, targets_json: str | None, fallback_url: str | None) -> EvalTarget:
    """The configured URL template of ``service``; else ``fallback_url``/v1/answer?bundle={{bundle}}."""
    targets = parse_targets(targets_json)
    if service in targets:
        return targets[service]
    if fallback_url:
        return EvalTarget(fallback_url.rstrip("/") + "/v1/answer?bundle={{bundle}}")
    from bot.evals.target import EvalTargetError
    raise EvalTargetError(f"no eval target for {service!r}: set WARROOM_EVAL_TARGETS or pass --target-url")


def assert_context(bundle: Bundle | None, *, latency_ms: float | None, cost_budget: float | None,
                   schema_dir: Path | None) -> AssertContext:
    """Thresholds from the SLO settings; the response schema and tool contracts from the bundle's
    ``tool_contracts`` (a mapping, or the name of ``<schema_dir>/<name>.json``)."""
    contract: Any = (bundle.components or {}).get("tool_contracts") if bundle is not None else None
    if isinstance(contract, str) and schema_dir is not None:
        path = Path(schema_dir) / f"{contract}.json"
        contract = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    contract = contract if isinstance(contract, dict) else {}
    schema = contract.get("response_schema")
    tools = contract.get("tools")
    return AssertContext(latency_ms=latency_ms, cost_budget=cost_budget,
                         response_schema=schema if isinstance(schema, dict) else None,
                         tool_contracts=tools if isinstance(tools, dict) else {})


def export_suite(session: Session, service: str, out_dir: Path, *, target: EvalTarget, bundle: str,
                 ctx: AssertContext, run_tag: str = "export") -> SuiteExport:
    cases = suite_cases(session, service)
    return write_suite_files(cases, out_dir, ctx=ctx, service=service,
                             providers=[provider(target, service, bundle, run_tag=run_tag)])
