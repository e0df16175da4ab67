"""`warroom evals gate SERVICE:VERSION`: a candidate bundle ships only if the service's suite says so.

One promptfoo run evaluates the suite against the candidate and, when there is one, the last
known-good bundle (two providers, same cases). The gate passes only if

* every labelled case passes on the candidate,
* no case that passes on the last known-good bundle fails on the candidate, and
* the candidate's latency (p95 over the suite's requests) and cost stay within the SLO budgets.

An unlabelled case that fails on both is reported but does not block: nobody has said yet what
the right answer is. A passing gate marks the candidate known-good with the run's id.
"""

from __future__ import annotations

import json
import math
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.clock import iso, utcnow
from bot.errors import NotFound, UserError
from bot.evals.asserts import AssertContext
from bot.evals.promptfoo import PromptfooError, run_promptfoo
from bot.evals.suite import SuiteCase, suite_cases
from bot.evals.suite_files import assert_context, write_suite_files
from bot.evals.target import EvalTarget, EvalTargetError, provider
from bot.releases import bundles
from bot.store.db import transaction
from bot.store.models import Bundle, EvalRun

PASSED, FAILED, ERROR = "passed", "failed", "error"
EXIT_CODES = {PASSED: 0, FAILED: 1, ERROR: 2}


class GateCannotRun(UserError):
    """The gate could not judge the bundle (exit 2): unknown bundle, no target, no cases, promptfoo broke."""


def context_for(settings: Any, bundle: Bundle | None) -> AssertContext:
    return assert_context(bundle, latency_ms=settings.latency_threshold_ms, cost_budget=settings.cost_budget,
                          schema_dir=settings.eval_schema_dir)


def parse_ref(ref: str) -> tuple[str, str]:
    service, sep, version = ref.rpartition(":")
    if not sep or not service or not version:
        raise GateCannotRun(f"give the bundle as SERVICE:VERSION, e.g. llm-gateway:v43 (got {ref!r})")
    return service, version


@dataclass(frozen=True)
class Outcome:
    """One case on one bundle, as promptfoo reported it."""

    ok: bool
    asserted: str
    got: str
    latency_ms: float | None
    cost: float | None


@dataclass(frozen=True)
class CaseVerdict:
    case: SuiteCase
    candidate: Outcome | None
    baseline: Outcome | None
    blocking: bool
    why: str

    def line(self) -> str:
        incidents = ", ".join(f"#{i}" for i in self.case.incidents) or "no incident"
        got = self.candidate.got if self.candidate else "no result"
        asserted = self.candidate.asserted if self.candidate else "a result"
        return (f"{self.case.case_id} ({self.case.failure_type}, incidents {incidents}): {self.why}; "
                f"asserted {_clip(asserted)}; got {_clip(got)!r}")

    def as_json(self) -> dict[str, Any]:
        return {"case_id": self.case.case_id, "failure_type": self.case.failure_type, "labelled": self.case.labelled,
                "incidents": self.case.incidents, "why": self.why, "blocking": self.blocking,
                "asserted": self.candidate.asserted if self.candidate else None,
                "got": self.candidate.got if self.candidate else None,
                "passed_on_baseline": self.baseline.ok if self.baseline else None}


@dataclass
class GateReport:
    service: str
    version: str
    baseline: str | None
    status: str
    run_id: int | None = None
    cases: int = 0
    labelled: int = 0
    passed: int = 0
    failures: list[CaseVerdict] = field(default_factory=list)
    tolerated: list[CaseVerdict] = field(default_factory=list)
    budgets: dict[str, Any] = field(default_factory=dict)
    case_names: list[tuple[str, str]] = field(default_factory=list)  # (case id, failure type), suite order
    incidents: list[int] = field(default_factory=list)  # every incident the suite's cases came from
    message: str = ""
    started_at: str = ""
    finished_at: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def summary(self) -> str:
        ref = f"{self.service}:{self.version}"
        if self.status == ERROR:
            return f"Eval gate for {ref} could not run: {self.message}"
        head = (f"Eval gate {'passed' if self.status == PASSED else 'FAILED'} for {ref} (run #{self.run_id}): "
                f"{self.passed}/{self.cases} cases pass, {self.labelled} labelled"
                + (f", compared with {self.service}:{self.baseline}" if self.baseline
                   else ", no known-good bundle to compare"))
        over = [f"{name} {b['value']:g} over {b['limit']:g}" for name, b in self.budgets.items() if not b["ok"]]
        lines = [head + "."] + [f"- {v.line()}" for v in self.failures] + [f"- budget: {o}" for o in over]
        if self.tolerated:
            lines.append(f"({len(self.tolerated)} unlabelled case(s) fail on the known-good bundle too; not blocking)")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"service": self.service, "bundle": self.version, "baseline": self.baseline, "status": self.status,
                "run_id": self.run_id, "cases": self.cases, "labelled": self.labelled, "passed": self.passed,
                "failures": [v.as_json() for v in self.failures], "tolerated": [v.as_json() for v in self.tolerated],
                "budgets": self.budgets, "message": self.message, "started_at": self.started_at,
                "finished_at": self.finished_at}

    def junit(self) -> str:
        suite = ET.Element("testsuite", name=f"warroom-gate {self.service}:{self.version}", tests=str(self.cases),
                           failures=str(len(self.failures)), errors="1" if self.status == ERROR else "0")
        blocking = {v.case.case_id: v for v in self.failures}
        for case_id, kind in self.case_names:
            test = ET.SubElement(suite, "testcase", classname=self.service, name=f"{case_id} {kind}")
            if case_id in blocking:
                ET.SubElement(test, "failure", message=blocking[case_id].line())
        for name, budget in self.budgets.items():
            test = ET.SubElement(suite, "testcase", classname=self.service, name=f"budget {name}")
            if not budget["ok"]:
                ET.SubElement(test, "failure", message=f"{name} {budget['value']:g} over {budget['limit']:g}")
        if self.status == ERROR:
            test = ET.SubElement(suite, "testcase", classname=self.service, name="gate")
            ET.SubElement(test, "error", message=self.message)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _clip(text: str, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _outcomes(results_path: Path) -> dict[tuple[str, str], Outcome]:
    """(provider label, case id) → what promptfoo saw."""
    report = json.loads(results_path.read_text(encoding="utf-8"))
    found: dict[tuple[str, str], Outcome] = {}
    for row in report["results"]["results"]:
        case_id = ((row.get("testCase") or {}).get("metadata") or {}).get("case_id")
        label = (row.get("provider") or {}).get("label") or (row.get("provider") or {}).get("id")
        if not case_id or not label:
            continue
        grading = row.get("gradingResult") or {}
        failed = [c for c in grading.get("componentResults") or [] if not c.get("pass")]
        asserted = ("; ".join(str(c.get("reason") or "") for c in failed)
                    or str(row.get("error") or grading.get("reason") or ""))
        output = (row.get("response") or {}).get("output")
        found[(str(label), str(case_id))] = Outcome(
            ok=bool(row.get("success")), asserted=asserted.split("\nStack Trace")[0],
            got=output if isinstance(output, str) else json.dumps(output), latency_ms=row.get("latencyMs"),
            cost=row.get("cost"))
    return found


def judge(cases: list[SuiteCase], outcomes: dict[tuple[str, str], Outcome], *, candidate: str,
          baseline: str | None) -> tuple[list[CaseVerdict], list[CaseVerdict], int]:
    """Blocking failures, tolerated ones, and how many cases pass on the candidate."""
    blocking: list[CaseVerdict] = []
    tolerated: list[CaseVerdict] = []
    passed = 0
    for case in cases:
        mine = outcomes.get((candidate, case.case_id))
        theirs = outcomes.get((baseline, case.case_id)) if baseline else None
        if mine is not None and mine.ok:
            passed += 1
            continue
        if mine is None:
            blocking.append(CaseVerdict(case, None, theirs, True, "promptfoo returned no result"))
        elif case.labelled:
            blocking.append(CaseVerdict(case, mine, theirs, True, "labelled case fails"))
        elif theirs is not None and theirs.ok:
            blocking.append(CaseVerdict(case, mine, theirs, True, f"passed on {baseline}, fails now"))
        else:
            tolerated.append(CaseVerdict(case, mine, theirs, False, "unlabelled, fails on the known-good bundle too"))
    return blocking, tolerated, passed


def budgets(outcomes: dict[tuple[str, str], Outcome], candidate: str, ctx: AssertContext) -> dict[str, Any]:
    mine = [o for (label, _), o in outcomes.items() if label == candidate]
    checks: dict[str, Any] = {}
    latencies = sorted(o.latency_ms for o in mine if isinstance(o.latency_ms, (int, float)))
    if ctx.latency_ms and latencies:
        p95 = latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)]
        checks["latency_p95_ms"] = {"value": float(p95), "limit": float(ctx.latency_ms), "ok": p95 <= ctx.latency_ms}
    costs = [o.cost for o in mine if isinstance(o.cost, (int, float))]
    if ctx.cost_budget is not None and costs:
        worst = max(costs)
        checks["cost_max"] = {"value": float(worst), "limit": float(ctx.cost_budget), "ok": worst <= ctx.cost_budget}
    return checks


@dataclass(frozen=True)
class GatePlan:
    service: str
    version: str
    baseline: str | None
    cases: list[SuiteCase]
    ctx: AssertContext


def plan(session: Session, service: str, version: str, settings: Any) -> GatePlan:
    try:
        candidate = bundles.get_bundle(session, service, version)
    except NotFound as exc:
        raise GateCannotRun(f"{exc} Register it first (POST /api/bundles).") from None
    good = bundles.last_known_good(session, service)
    if good is not None and good.version == version:  # re-gating a known-good bundle: compare with the one before
        good = session.execute(
            select(Bundle).where(col(Bundle.service) == service, col(Bundle.known_good).is_(True),
                                 col(Bundle.version) != version)
            .order_by(col(Bundle.deployed_at).desc(), col(Bundle.id).desc()).limit(1)).scalar_one_or_none()
    cases = suite_cases(session, service)
    if not cases:
        raise GateCannotRun(f"{service} has no eval cases yet (collect an incident with `warroom evals collect`)")
    return GatePlan(service, version, good.version if good else None, cases, context_for(settings, candidate))


def run_gate(engine: Engine, ref: str, *, settings: Any, target: EvalTarget | None,
             work_dir: Path | None = None, cache_dir: Path = Path(".cache/promptfoo"),
             max_concurrency: int | None = None, timeout: float = 600,
             on_done: Callable[[Session, GateReport], None] | None = None) -> GateReport:
    """Run the gate; the report is stored as an `EvalRun` whatever the outcome."""
    started = utcnow()
    try:
        service, version = parse_ref(ref)
    except GateCannotRun as exc:
        return GateReport(service=ref, version="", baseline=None, status=ERROR, message=str(exc))
    report = GateReport(service=service, version=version, baseline=None, status=ERROR, started_at=iso(started))
    with transaction(engine) as session:
        run = EvalRun(service=service, bundle_version=version, kind="gate", status="running", started_at=started)
        session.add(run)
        session.flush()
        report.run_id = run.id
    try:
        if target is None:
            raise GateCannotRun(f"no eval target for {service}: set WARROOM_EVAL_TARGETS or pass --target-url")
        with transaction(engine) as session:
            gate_plan = plan(session, service, version, settings)
        report.baseline, report.cases = gate_plan.baseline, len(gate_plan.cases)
        report.labelled = sum(1 for c in gate_plan.cases if c.labelled)
        report.case_names = [(c.case_id, c.failure_type) for c in gate_plan.cases]
        report.incidents = sorted({i for c in gate_plan.cases for i in c.incidents})
        tag = f"gate-{report.run_id}"
        providers = [provider(target, service, version, run_tag=tag)]
        if gate_plan.baseline:
            providers.append(provider(target, service, gate_plan.baseline, run_tag=tag))
        with tempfile.TemporaryDirectory(prefix="warroom-gate-") as scratch:
            folder = Path(work_dir or scratch)
            write_suite_files(gate_plan.cases, folder, ctx=gate_plan.ctx, providers=providers, service=service)
            summary = run_promptfoo(folder, cache_dir=cache_dir, timeout=timeout, max_concurrency=max_concurrency)
            outcomes = _outcomes(summary.results_path)
        candidate_label = f"{service}:{version}"
        baseline_label = f"{service}:{gate_plan.baseline}" if gate_plan.baseline else None
        report.failures, report.tolerated, report.passed = judge(gate_plan.cases, outcomes, candidate=candidate_label,
                                                                 baseline=baseline_label)
        report.budgets = budgets(outcomes, candidate_label, gate_plan.ctx)
        over_budget = any(not b["ok"] for b in report.budgets.values())
        report.status = FAILED if report.failures or over_budget else PASSED
    except (GateCannotRun, EvalTargetError, PromptfooError, OSError, ValueError, KeyError) as exc:
        report.status, report.message = ERROR, str(exc)
    report.finished_at = iso(utcnow())
    with transaction(engine) as session:
        stored = session.get(EvalRun, report.run_id)
        assert stored is not None
        stored.status, stored.summary, stored.report = report.status, report.summary(), report.as_json()
        stored.finished_at = utcnow()
        if report.status == PASSED:
            bundles.mark_known_good(session, service, version, reason=f"eval gate run #{report.run_id} passed "
                                    f"({report.passed}/{report.cases} cases)", run_id=report.run_id)
        if on_done is not None:
            on_done(session, report)
    return report


def write_reports(report: GateReport, *, json_path: Path | None, junit_path: Path | None) -> None:
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.as_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if junit_path is not None:
        junit_path.parent.mkdir(parents=True, exist_ok=True)
        junit_path.write_text(report.junit(), encoding="utf-8")
