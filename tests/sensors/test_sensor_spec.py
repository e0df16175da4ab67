"""Sensors in the SLO file: read with defaults, and every mistake reported at its line by `warroom slo check`."""

from __future__ import annotations

from datetime import timedelta

from typer.testing import CliRunner

from bot.cli import app
from bot.sensors.spec import load_sensors
from bot.slo.spec import check_slos
from bot.slo.tracerule import TraceRule

GOOD = """\
slos:
  - service: llm-gateway
    name: provenance
    sli: provenance_coverage
    objective: 95
sensors:
  - name: token-drift
    service: llm-gateway
    kind: drift
    field: tokens
    runbook: quality-drift
  - name: relevance-drift
    service: llm-gateway
    kind: drift
    field: scores.relevance
    window: 30m
    baseline: 1d
    by_bundle: false
  - name: tool-error-spike
    service: llm-gateway
    kind: spike
    trace: {field: tool_calls, op: any_not_ok}
    for: 30m
    severity: critical
"""


def test_sensors_are_read_with_their_defaults(tmp_path):
    path = tmp_path / "slos.yaml"
    path.write_text(GOOD)
    assert check_slos(path) == []
    drift, relevance, spike = load_sensors(path)
    assert (drift.kind, drift.field, drift.window, drift.baseline, drift.warn, drift.alert, drift.by_bundle) == (
        "drift", "tokens", timedelta(hours=1), timedelta(days=7), 0.1, 0.25, True)
    assert (relevance.field, relevance.window, relevance.by_bundle) == ("scores.relevance", timedelta(minutes=30),
                                                                        False)
    assert spike.trace == TraceRule("tool_calls", "any_not_ok")
    assert (spike.factor, spike.days, spike.sustained, spike.severity) == (2.0, 7, timedelta(minutes=30), "critical")


def test_each_sensor_mistake_is_reported_at_its_line(tmp_path):
    path = tmp_path / "slos.yaml"
    path.write_text("""\
slos: []
sensors:
  - name: aa
    service: llm-gateway
    kind: drift
    field: mood
  - name: bb
    service: llm-gateway
    kind: drift
    field: tokens
    warn: 0.3
    alert: 0.2
    window: soon
  - name: cc
    service: llm-gateway
    kind: spike
    factor: 1
  - name: dd
    service: llm-gateway
    kind: weather
  - name: aa
    service: llm-gateway
    kind: drift
    field: tokens
    colour: red
""")
    p = str(path)
    assert [str(problem) for problem in check_slos(path)] == [
        f"{p}:6: field must be one of tokens, latency_ms, cost, hallucination_score, answer_length, "
        "retrieved_documents or scores.<evaluation name> (got 'mood')",
        f"{p}:11: warn (0.3) must not be above alert (0.2)",
        f"{p}:13: window: not a duration: 'soon' (use e.g. 30s, 5m, 1h, 1d)",
        f"{p}:14: a spike sensor needs a trace rule: trace: {{field, op, value}} (the failure it counts)",
        f"{p}:17: factor must be a number above 1 (got 1)",
        f"{p}:20: kind must be one of drift, spike (got 'weather')",
        f"{p}:25: unknown key 'colour' for a drift sensor (known: alert, baseline, bins, by_bundle, description, "
        "field, kind, labels, min_samples, name, runbook, service, warn, window)",
    ]


def test_slo_check_prints_sensor_problems_with_file_and_line(tmp_path):
    path = tmp_path / "slos.yaml"
    path.write_text("slos: []\nsensors:\n  - name: x\n    service: s1\n    kind: drift\n    field: vibes\n")
    result = CliRunner().invoke(app, ["slo", "check", str(path)])
    assert result.exit_code != 0
    assert f"{path}:6: field must be one of" in result.output
