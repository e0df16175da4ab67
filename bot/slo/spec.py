"""SLO definition files: ``slos: [...]``, each SLO read, checked and pointed at by line.

An SLO says which events are bad for one service: through Prometheus (``prometheus.errors`` and
``prometheus.total``, PromQL with a ``{{window}}`` placeholder) for the generated burn-rate rules,
and/or through a trace rule for warroom's built-in watcher. Names follow Sloth's convention so
the generated labels (``sloth_service``, ``sloth_slo``) look like Sloth's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.problems import Problem
from bot.slo.tracerule import NO_VALUE_OPERATORS, OPERATORS, TraceRule, default_trace_rule
from bot.slo.windows import PERIOD_DAYS
from bot.yamlsource import LineMap, YamlSyntaxError, load_yaml

SLI_KINDS = (
    "hallucination_rate",
    "schema_valid_rate",
    "tool_call_success",
    "error_rate",
    "latency_over_threshold",
    "cost_over_budget",
    "provenance_coverage",
)
DEFAULT_ALERTNAME = "LLMSLOErrorBudgetBurn"
WINDOW_PLACEHOLDER = "{{window}}"

_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
# Labels the generator sets itself; a spec label with one of these names would be overwritten.
_RESERVED_LABELS = {"service", "slo", "alertname", "sloth_id", "sloth_service", "sloth_slo",
                    "sloth_window", "sloth_severity"}
_KEYS = {"service", "name", "sli", "objective", "period", "prometheus", "trace", "threshold_ms",
         "budget", "labels", "description", "runbook", "alertname"}


@dataclass(frozen=True)
class PrometheusSLI:
    errors: str  # PromQL, ``{{window}}`` where the range goes
    total: str

    def ratio(self, window: str) -> str:
        errors = self.errors.replace(WINDOW_PLACEHOLDER, window)
        total = self.total.replace(WINDOW_PLACEHOLDER, window)
        return f"({errors})\n/\n({total})"


@dataclass(frozen=True)
class SLO:
    service: str
    name: str
    sli: str
    objective: float  # percent, 99.5
    period: str = "30d"
    prometheus: PrometheusSLI | None = None
    trace: TraceRule | None = None  # explicit or the SLI type's default
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    runbook: str | None = None
    alertname: str = DEFAULT_ALERTNAME

    @property
    def id(self) -> str:
        return f"{self.service}-{self.name}"

    @property
    def error_budget(self) -> float:
        """Allowed bad ratio: 99.9 % -> 0.001 (decimal arithmetic: 1 - 0.999 is 0.00099999... in floats)."""
        return float((100 - Decimal(repr(self.objective))) / 100)

    @property
    def period_days(self) -> int:
        return PERIOD_DAYS[self.period]


class SLOFileError(ConfigError, ValueError):
    """The SLO file has problems; ``problems`` lists each with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def check_slos(path: Path | str) -> list[Problem]:
    """Every problem of the file: its SLOs and its sensors (``bot.sensors.spec``), by line."""
    from bot.sensors.spec import parse_sensors

    text = Path(path).read_text(encoding="utf-8")
    return sorted(set(parse_slos(text, str(path))[1] + parse_sensors(text, str(path))[1]))


def load_slos(path: Path | str) -> list[SLO]:
    slos, problems = parse_slos(Path(path).read_text(encoding="utf-8"), str(path))
    if problems:
        raise SLOFileError(problems)
    return slos


def parse_slos(text: str, source: str) -> tuple[list[SLO], list[Problem]]:
    try:
        data, lines = load_yaml(text)
    except YamlSyntaxError as exc:
        return [], [Problem(source, exc.line, str(exc))]
    if not isinstance(data, dict) or not isinstance(data.get("slos"), list):
        return [], [Problem(source, lines.line_of(("slos",)), "expected a mapping with a list under 'slos'")]
    reader = _Reader(source, lines)
    slos: list[SLO] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data["slos"]):
        slo = reader.slo(index, item)
        if slo is None:
            continue
        where = ("slos", index, "name")
        if slo.id in seen:
            reader.problem(where, f"duplicate SLO {slo.name!r} for service {slo.service!r} "
                                  f"(first defined on line {seen[slo.id]})")
            continue
        seen[slo.id] = lines.line_of(where)
        slos.append(slo)
    return slos, sorted(reader.problems)


class _Reader:
    def __init__(self, source: str, lines: LineMap) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def problem(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.source, self.lines.line_of(path), message))

    def slo(self, index: int, item: Any) -> SLO | None:
        at = ("slos", index)
        if not isinstance(item, dict):
            self.problem(at, f"slos[{index}]: expected a mapping with service, name, sli, objective")
            return None
        before = len(self.problems)
        for key in item:
            if key not in _KEYS:
                self.problem((*at, key), f"unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
        service = self.name(at, item, "service")
        name = self.name(at, item, "name")
        sli = item.get("sli")
        if sli not in SLI_KINDS:
            self.problem((*at, "sli"), f"sli must be one of {', '.join(SLI_KINDS)} (got {sli!r})")
        objective = item.get("objective")
        if isinstance(objective, bool) or not isinstance(objective, int | float) or not 0 < objective < 100:
            self.problem((*at, "objective"),
                         f"objective must be a percentage above 0 and below 100 (got {objective!r})")
        period = item.get("period", "30d")
        if period not in PERIOD_DAYS:
            self.problem((*at, "period"), f"period must be one of {', '.join(PERIOD_DAYS)} (got {period!r})")
        threshold_ms = self.positive(at, item, "threshold_ms")
        budget = self.positive(at, item, "budget")
        prometheus = self.prometheus(at, item.get("prometheus"))
        trace = self.trace(at, item.get("trace"))
        if trace is None and "trace" not in item and isinstance(sli, str):
            trace = default_trace_rule(sli, threshold_ms=threshold_ms, budget=budget)
        if prometheus is None and trace is None and "prometheus" not in item and "trace" not in item:
            hint = {"latency_over_threshold": " or threshold_ms", "cost_over_budget": " or budget"}.get(str(sli), "")
            self.problem(at, f"SLO {name!r} needs prometheus queries or a trace rule{hint}")
        labels = self.labels(at, item.get("labels", {}))
        alertname = item.get("alertname", DEFAULT_ALERTNAME)
        if not isinstance(alertname, str) or not _METRIC_NAME.match(alertname):
            self.problem((*at, "alertname"), f"alertname must be a Prometheus name (got {alertname!r})")
        description = item.get("description", "")
        runbook = item.get("runbook")
        for key, value in (("description", description), ("runbook", runbook)):
            if value is not None and not isinstance(value, str):
                self.problem((*at, key), f"{key} must be text")
        if len(self.problems) > before:
            return None
        assert isinstance(sli, str) and isinstance(objective, int | float)  # checked above
        return SLO(service=service, name=name, sli=sli, objective=float(objective), period=period,
                   prometheus=prometheus, trace=trace, labels=labels, description=description.strip(),
                   runbook=runbook, alertname=alertname)

    def name(self, at: tuple[str | int, ...], item: dict[str, Any], key: str) -> str:
        value = item.get(key)
        if not isinstance(value, str) or not _NAME.match(value):
            self.problem((*at, key) if key in item else at,
                         f"{key} must match {_NAME.pattern} (got {value!r})")
            return ""
        return value

    def positive(self, at: tuple[str | int, ...], item: dict[str, Any], key: str) -> float | None:
        value = item.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problem((*at, key), f"{key} must be a positive number (got {value!r})")
            return None
        return float(value)

    def prometheus(self, at: tuple[str | int, ...], value: Any) -> PrometheusSLI | None:
        if value is None:
            return None
        where = (*at, "prometheus")
        if not isinstance(value, dict):
            self.problem(where, "prometheus must be a mapping with errors and total queries")
            return None
        queries: dict[str, str] = {}
        for key in ("errors", "total"):
            query = value.get(key)
            if not isinstance(query, str) or not query.strip():
                self.problem(where, f"prometheus.{key} is required: a PromQL query")
            elif WINDOW_PLACEHOLDER not in query:
                self.problem((*where, key), f"prometheus.{key} must contain {WINDOW_PLACEHOLDER} where the range goes")
            else:
                queries[key] = " ".join(query.split())
        for key in value:
            if key not in ("errors", "total"):
                self.problem((*where, key), f"unknown key {key!r} under prometheus (known: errors, total)")
        if len(queries) < 2:
            return None
        return PrometheusSLI(errors=queries["errors"], total=queries["total"])

    def trace(self, at: tuple[str | int, ...], value: Any) -> TraceRule | None:
        if value is None:
            return None
        where = (*at, "trace")
        if not isinstance(value, dict):
            self.problem(where, "trace must be a mapping: {field, op, value}")
            return None
        field_name, op = value.get("field"), value.get("op")
        ok = True
        if not isinstance(field_name, str) or not field_name:
            self.problem(where, "trace.field is required: the trace field to test")
            ok = False
        if op not in OPERATORS:
            self.problem((*where, "op") if "op" in value else where,
                         f"trace.op must be one of {', '.join(OPERATORS)} (got {op!r})")
            ok = False
        elif op not in NO_VALUE_OPERATORS and "value" not in value:
            self.problem(where, f"trace.value is required for op {op!r}")
            ok = False
        if not ok:
            return None
        assert isinstance(field_name, str) and isinstance(op, str)  # checked above
        return TraceRule(field_name, op, value.get("value"))

    def labels(self, at: tuple[str | int, ...], value: Any) -> dict[str, str]:
        where = (*at, "labels")
        if not isinstance(value, dict):
            self.problem(where, "labels must be a mapping of label name to value")
            return {}
        labels: dict[str, str] = {}
        for key, label_value in value.items():
            if not isinstance(key, str) or not _LABEL_NAME.match(key) or key.startswith("__"):
                self.problem((*where, key), f"label name {key!r} is not a valid Prometheus label name")
            elif key in _RESERVED_LABELS:
                self.problem((*where, key), f"label {key!r} is set by warroom and cannot be overridden")
            elif isinstance(label_value, dict | list) or label_value is None:
                self.problem((*where, key), f"label {key!r} must have a text value")
            else:
                labels[key] = str(label_value)
        return labels
