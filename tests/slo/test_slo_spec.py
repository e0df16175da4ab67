from __future__ import annotations

from pathlib import Path

import pytest

from bot.slo.spec import SLOFileError, check_slos, load_slos
from bot.slo.tracerule import TraceRule

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "slos.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slos.yaml"
    path.write_text(text)
    return path


def test_example_file_defines_the_five_llm_gateway_slos() -> None:
    assert check_slos(EXAMPLE) == []
    slos = {slo.name: slo for slo in load_slos(EXAMPLE)}
    assert set(slos) == {"hallucination-rate", "schema-valid-rate", "error-rate", "tool-call-success", "latency"}
    assert all(slo.service == "llm-gateway" for slo in slos.values())
    assert slos["hallucination-rate"].objective == 99.5
    assert slos["hallucination-rate"].error_budget == 0.005
    assert slos["error-rate"].error_budget == 0.001  # not 0.000999...
    assert slos["schema-valid-rate"].objective == 99
    assert slos["hallucination-rate"].runbook == "hallucination-spike"
    assert slos["hallucination-rate"].id == "llm-gateway-hallucination-rate"


def test_slos_without_a_trace_rule_get_their_sli_types_default(tmp_path: Path) -> None:
    path = write(tmp_path, """\
slos:
  - {service: svc, name: a1, sli: hallucination_rate, objective: 99}
  - {service: svc, name: b1, sli: schema_valid_rate, objective: 99}
  - {service: svc, name: c1, sli: tool_call_success, objective: 99}
  - {service: svc, name: d1, sli: latency_over_threshold, objective: 95, threshold_ms: 2000}
  - {service: svc, name: e1, sli: cost_over_budget, objective: 99, budget: 0.02}
""")
    rules = {slo.name: slo.trace for slo in load_slos(path)}
    assert rules["a1"] == TraceRule("hallucination_score", ">", 0.5)
    assert rules["b1"] == TraceRule("schema_valid", "==", False)
    assert rules["c1"] == TraceRule("tool_calls", "any_not_ok")
    assert rules["d1"] == TraceRule("latency_ms", ">", 2000)
    assert rules["e1"] == TraceRule("cost", ">", 0.02)


def test_a_rule_judges_a_month_of_traces_as_it_judges_each_one() -> None:
    """The sensors judge their history in one call per rule (`TraceRule.outcomes`): the verdicts
    must be those of `applies` and `is_bad`, trace by trace, for every kind of rule and value."""
    events = [{}, {"hallucination_score": None}, {"hallucination_score": 0.9}, {"hallucination_score": 0.2},
              {"hallucination_score": "high"}, {"hallucination_score": True}, {"schema_valid": False},
              {"schema_valid": 0}, {"schema_valid": True}, {"status": "ok"}, {"status": "error"}, {"status": 3},
              {"latency_ms": 2500}, {"latency_ms": [1]}, {"tool_calls": [{"ok": False}]}, {"tool_calls": []},
              {"citations": ["a"], "retrieval_ids": ["b"]}, {"citations": ["b"], "retrieval_ids": ["b"]},
              {"citations": [], "retrieval_ids": []}]
    rules = [TraceRule("hallucination_score", op, 0.5) for op in (">", ">=", "<", "<=", "==", "!=")] + [
        TraceRule("schema_valid", "==", False), TraceRule("status", "!=", "ok"), TraceRule("latency_ms", ">", 2000),
        TraceRule("tool_calls", "any_not_ok"), TraceRule("citations", "cites_no_retrieved")]
    for rule in rules:
        one_by_one = [(i, rule.is_bad(e)) for i, e in enumerate(events) if rule.applies(e)]
        assert rule.outcomes(enumerate(events)) == one_by_one, rule
    assert TraceRule("status", "!=", "ok").outcomes(enumerate(events)) == [(9, False), (10, True), (11, True)]


def test_trace_rules_judge_telemetry_events() -> None:
    hallucination = TraceRule("hallucination_score", ">", 0.5)
    assert hallucination.is_bad({"hallucination_score": 0.91})
    assert not hallucination.is_bad({"hallucination_score": 0.5})
    assert not hallucination.is_bad({"schema_valid": False})  # says nothing about hallucinations
    tools = TraceRule("tool_calls", "any_not_ok")
    assert tools.is_bad({"tool_calls": [{"name": "search", "ok": True}, {"name": "web_search", "ok": False}]})
    assert tools.is_bad({"tool_calls": [{"name": "search", "status": "timeout"}]})
    assert not tools.is_bad({"tool_calls": [{"name": "search", "ok": True}]})
    assert TraceRule("schema_valid", "==", False).is_bad({"schema_valid": False})


def test_each_mistake_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, """\
slos:
  - service: llm-gateway
    name: -bad-name
    sli: hallucination_rate
    objective: 100
    period: 7d
  - service: llm-gateway
    name: errors
    sli: error_rate
    objective: 99.9
    colour: red
    prometheus:
      errors: sum(rate(llm_requests_total{status="error"}[5m]))
      total: sum(rate(llm_requests_total[{{window}}]))
    labels:
      slo: other
  - service: llm-gateway
    name: latency
    sli: latency_over_threshold
    objective: 95
  - service: llm-gateway
    name: errors
    sli: mood
    objective: 99
    trace: {field: status, op: "~"}
""")
    p = str(path)
    assert [str(problem) for problem in check_slos(path)] == [
        f"{p}:3: name must match ^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$ (got '-bad-name')",
        f"{p}:5: objective must be a percentage above 0 and below 100 (got 100)",
        f"{p}:6: period must be one of 30d, 28d (got '7d')",
        f"{p}:11: unknown key 'colour' (known: alertname, budget, description, labels, name, objective, "
        "period, prometheus, runbook, service, sli, threshold_ms, trace)",
        f"{p}:13: prometheus.errors must contain {{{{window}}}} where the range goes",
        f"{p}:16: label 'slo' is set by warroom and cannot be overridden",
        f"{p}:17: SLO 'latency' needs prometheus queries or a trace rule or threshold_ms",
        f"{p}:23: sli must be one of hallucination_rate, schema_valid_rate, tool_call_success, error_rate, "
        "latency_over_threshold, cost_over_budget, provenance_coverage (got 'mood')",
        f"{p}:25: trace.op must be one of >, >=, <, <=, ==, !=, any_not_ok, cites_no_retrieved (got '~')",
    ]
    with pytest.raises(SLOFileError) as error:
        load_slos(path)
    assert len(error.value.problems) == 9


def test_duplicate_slo_points_at_the_first_definition(tmp_path: Path) -> None:
    path = write(tmp_path, """\
slos:
  - {service: svc, name: quality, sli: hallucination_rate, objective: 99}
  - {service: other, name: quality, sli: hallucination_rate, objective: 99}
  - {service: svc, name: quality, sli: schema_valid_rate, objective: 99}
""")
    assert [str(p) for p in check_slos(path)] == [
        f"{path}:4: duplicate SLO 'quality' for service 'svc' (first defined on line 2)"
    ]


def test_broken_yaml_and_wrong_shape_are_reported_with_lines(tmp_path: Path) -> None:
    broken = write(tmp_path, "slos:\n  - service: svc\n    name: [unclosed\n")
    [problem] = check_slos(broken)
    assert problem.path == str(broken) and problem.line == 4 and problem.message.startswith("invalid YAML")
    flat = write(tmp_path, "service: svc\nname: quality\n")
    assert [str(p) for p in check_slos(flat)] == [f"{flat}:1: expected a mapping with a list under 'slos'"]
