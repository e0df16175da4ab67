"""Generated rules are checked and unit-tested by the real ``promtool`` (no servers needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.slo.rules import alertmanager_snippet, prometheus_rules, slo_rules_main
from bot.slo.spec import load_slos
from bot.slo.windows import WindowError, WindowSet

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "slos.yaml"
SLO_FILE = """\
slos:
  - service: llm-gateway
    name: hallucination-rate
    sli: hallucination_rate
    objective: 99
    period: {period}
    runbook: hallucination-spike
    labels: {{team: ml}}
    prometheus:
      errors: sum(rate(llm_answers_total{{service="llm-gateway",outcome="hallucination"}}[{{{{window}}}}]))
      total: sum(rate(llm_answers_total{{service="llm-gateway"}}[{{{{window}}}}]))
"""


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def rules_for(tmp_path: Path, period: str = "30d") -> Path:
    slo_path = tmp_path / "slos.yaml"
    slo_path.write_text(SLO_FILE.format(period=period))
    rules = tmp_path / "rules.yml"
    rules.write_text(prometheus_rules(load_slos(slo_path)))
    return rules


THRESHOLDS = {
    ("page", "30d"): "14.4× over 1h and 5m, or 6× over 6h and 30m",
    ("ticket", "30d"): "3× over 1d and 2h, or 1× over 3d and 6h",
    ("page", "28d"): "13.44× over 1h and 5m, or 5.6× over 6h and 30m",
    ("ticket", "28d"): "2.8× over 1d and 2h, or 0.93× over 3d and 6h",
}


def expected_alert(severity: str, burn: str, period: str = "30d") -> dict[str, Any]:
    """``burn``: the burn rate measured over the long window of the pair that fired."""
    return {
        "exp_labels": {"sloth_id": "llm-gateway-hallucination-rate", "sloth_service": "llm-gateway",
                       "sloth_slo": "hallucination-rate", "service": "llm-gateway", "slo": "hallucination-rate",
                       "team": "ml", "sloth_severity": severity},
        "exp_annotations": {
            "title": f"({severity}) llm-gateway hallucination-rate SLO error budget burn rate is too fast.",
            "summary": (f"llm-gateway hallucination-rate: error budget burning {burn}× ({severity} threshold "
                        f"{THRESHOLDS[severity, period]}; objective 99 % over {period})."),
            "burn_rate": burn,
            "runbook": "hallucination-spike",
        },
    }


def run_promtool_test(tmp_path: Path, rules: Path, bad_per_min: int, expected: list[dict[str, Any]]) -> None:
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'llm_answers_total{service="llm-gateway",outcome="hallucination"}',
                 "values": f"0+{bad_per_min}x480"},
                {"series": 'llm_answers_total{service="llm-gateway",outcome="good"}',
                 "values": f"0+{100 - bad_per_min}x480"},
            ],
            "alert_rule_test": [{"eval_time": "70m", "alertname": "LLMSLOErrorBudgetBurn", "exp_alerts": expected}],
        }],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(test, allow_unicode=True))
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_rules_pass_promtool_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(prometheus_rules(load_slos(EXAMPLE)))
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    # 3 Prometheus-backed SLOs x (8 SLI + 6 meta + 2 alert rules); trace-only SLOs are listed as skipped
    assert "SUCCESS: 48 rules found" in result.stdout
    assert "Skipped (trace rule only, watched by warroom itself): llm-gateway-tool-call-success" in rules.read_text()


def test_sloth_conventions_for_names_and_labels(tmp_path: Path) -> None:
    groups = yaml.safe_load(rules_for(tmp_path).read_text())["groups"]
    assert [g["name"] for g in groups] == [
        "sloth-slo-sli-recordings-llm-gateway-hallucination-rate",
        "sloth-slo-meta-recordings-llm-gateway-hallucination-rate",
        "sloth-slo-alerts-llm-gateway-hallucination-rate",
    ]
    records = [r["record"] for r in groups[0]["rules"]]
    assert records == [f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")]
    assert groups[0]["rules"][2]["labels"]["sloth_window"] == "1h"
    assert "[1h]" in groups[0]["rules"][2]["expr"]
    assert {r["record"] for r in groups[1]["rules"]} >= {"slo:objective:ratio", "slo:error_budget:ratio",
                                                          "slo:time_period:days"}
    page, ticket = groups[2]["rules"]
    assert page["alert"] == ticket["alert"] == "LLMSLOErrorBudgetBurn"
    assert (page["labels"]["sloth_severity"], ticket["labels"]["sloth_severity"]) == ("page", "ticket")
    assert page["for"] == "0s"


def test_page_above_fourteen_point_four_times_reports_the_measured_burn_rate(tmp_path: Path) -> None:
    # 20 % hallucinations against a 1 % budget: 20x, above 14.4x on both 1h and 5m
    run_promtool_test(tmp_path, rules_for(tmp_path), 20,
                      [expected_alert("page", "20.0"), expected_alert("ticket", "20.0")])


def test_page_through_the_six_hour_pair_reports_the_measured_burn_rate(tmp_path: Path) -> None:
    # 8 %: 8x is under 14.4x but over 6x (30m and 6h windows)
    run_promtool_test(tmp_path, rules_for(tmp_path), 8,
                      [expected_alert("page", "8.0"), expected_alert("ticket", "8.0")])


def test_a_burn_just_over_the_threshold_is_reported_as_measured_not_as_the_factor(tmp_path: Path) -> None:
    # 15 %: 15x, over 14.4x; the card and the summary say 15.0, not 14.4
    run_promtool_test(tmp_path, rules_for(tmp_path), 15,
                      [expected_alert("page", "15.0"), expected_alert("ticket", "15.0")])


def test_nothing_fires_while_within_budget(tmp_path: Path) -> None:
    run_promtool_test(tmp_path, rules_for(tmp_path), 1, [])


def test_28_day_period_keeps_the_budget_percentages(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, period="28d")
    text = rules.read_text()
    for factor in ("13.44 * 0.01", "5.6 * 0.01", "2.8 * 0.01", "0.933333333 * 0.01"):
        assert factor in text
    run_promtool_test(tmp_path, rules, 20,
                      [expected_alert("page", "20.0", "28d"), expected_alert("ticket", "20.0", "28d")])


def test_scaled_windows_change_ranges_not_thresholds(tmp_path: Path) -> None:
    slo_path = tmp_path / "slos.yaml"
    slo_path.write_text(SLO_FILE.format(period="30d"))
    windows = WindowSet.scaled(60, alert_for="10s")
    text = prometheus_rules(load_slos(slo_path), windows=windows)
    groups = yaml.safe_load(text)["groups"]
    ranges = {r["record"]: (r["expr"], r["labels"]["sloth_window"]) for r in groups[0]["rules"]}
    # Every window shrinks 60 times, in order; the period too; names and labels stay nominal.
    for nominal, scaled in (("5m", "5s"), ("30m", "30s"), ("1h", "1m"), ("2h", "2m"), ("6h", "6m"),
                            ("1d", "24m"), ("3d", "72m")):
        expr, label = ranges[f"slo:sli_error:ratio_rate{nominal}"]
        assert f"[{scaled}]" in expr and label == nominal
    expr, label = ranges["slo:sli_error:ratio_rate30d"]
    assert "[12h]" in expr and label == "30d"
    assert "14.4 * 0.01" in groups[2]["rules"][0]["expr"]
    assert groups[2]["rules"][0]["for"] == "10s"
    (tmp_path / "rules.yml").write_text(text)
    assert promtool("check", "rules", str(tmp_path / "rules.yml")).returncode == 0
    with pytest.raises(WindowError, match="bad --window '4h=1s'"):
        WindowSet.from_overrides(["4h=1s"])
    with pytest.raises(WindowError, match="not a duration"):
        WindowSet.from_overrides(["1h=soon"])


def test_scaling_one_window_alone_is_refused_because_it_breaks_their_order() -> None:
    with pytest.raises(WindowError, match="window 30m=30m is longer than 1h=30s; scale every window together"):
        WindowSet.from_overrides(["1h=30s"])
    with pytest.raises(WindowError, match="5m window shorter than 1s"):
        WindowSet.scaled(600)


def test_the_period_ratio_stays_one_to_one_when_the_scale_changes(tmp_path: Path) -> None:
    # Prometheus keeps the old series after a reload; with the scaled range in `sloth_window` the
    # 30-day ratio then failed with "many-to-many matching not allowed". promtool replays that.
    slo_path = tmp_path / "slos.yaml"
    slo_path.write_text(SLO_FILE.format(period="30d"))
    unscaled = yaml.safe_load(prometheus_rules(load_slos(slo_path)))
    scaled = yaml.safe_load(prometheus_rules(load_slos(slo_path), windows=WindowSet.scaled(60)))
    assert [r["labels"] for r in unscaled["groups"][0]["rules"]] == [r["labels"] for r in scaled["groups"][0]["rules"]]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(scaled))
    five_minutes = ('slo:sli_error:ratio_rate5m{sloth_id="llm-gateway-hallucination-rate", '
                    'sloth_service="llm-gateway", sloth_slo="hallucination-rate", sloth_window="5m"}')
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            # An earlier, unscaled rule file recorded the same series; the ratio stays one series.
            "input_series": [{"series": 'llm_answers_total{service="llm-gateway", outcome="good"}',
                              "values": "0+60x30"},
                             {"series": 'llm_answers_total{service="llm-gateway", outcome="hallucination"}',
                              "values": "0+0x30"},
                             {"series": five_minutes.replace("}", ', team="ml", service="llm-gateway", '
                                                                  'slo="hallucination-rate"}'), "values": "0x10"}],
            "promql_expr_test": [{"expr": 'count(slo:sli_error:ratio_rate30d)', "eval_time": "20m",
                                  "exp_samples": [{"labels": "{}", "value": 1}]}],
        }],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_prints_a_rule_file_and_asks_for_the_alertmanager_snippet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WARROOM_ALERT_TOKEN", raising=False)
    assert slo_rules_main(EXAMPLE, [], "http://127.0.0.1:8000/webhooks/alertmanager") == 0
    out, err = capsys.readouterr()
    rules = tmp_path / "stdout.yml"
    rules.write_text(out)
    assert promtool("check", "rules", str(rules)).returncode == 0
    assert err.startswith("note: WARROOM_ALERT_TOKEN is not set")
    am = tmp_path / "alertmanager.yml"
    am.write_text(err.split("\n", 1)[1])
    result = subprocess.run(["amtool", "check-config", str(am)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    route = yaml.safe_load(am.read_text())["route"]
    assert route["group_by"] == ["alertname", "sloth_service", "sloth_slo", "sloth_severity"]
    assert (route["group_wait"], route["group_interval"]) == ("30s", "5m")
    # Without a placeholder: the development token warroom accepts in development.
    [webhook] = yaml.safe_load(am.read_text())["receivers"][0]["webhook_configs"]
    assert webhook["http_config"]["authorization"]["credentials"] == "dev-alert-token"

    assert slo_rules_main(EXAMPLE, [], None) == 0
    assert capsys.readouterr().err == ""


def test_rehearsal_route_goes_to_a_file_with_the_environment_token_and_short_timings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARROOM_ALERT_TOKEN", "from-the-env")
    am = tmp_path / "alertmanager.yml"
    assert slo_rules_main(EXAMPLE, [], "http://127.0.0.1:8080/webhooks/alertmanager", time_scale=60,
                          alertmanager_out=am) == 0
    out, err = capsys.readouterr()
    assert err == f"wrote the Alertmanager route and receiver to {am}\n"
    assert "Windows scaled for a rehearsal: 5m=5s, 30m=30s, 1h=1m" in out
    result = subprocess.run(["amtool", "check-config", str(am)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(am.read_text())
    assert (config["route"]["group_wait"], config["route"]["group_interval"]) == ("1s", "5s")
    [webhook] = config["receivers"][0]["webhook_configs"]
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials": "from-the-env"}

    assert slo_rules_main(EXAMPLE, [], "http://127.0.0.1:8080/webhooks/alertmanager", alertmanager_out=am,
                          credentials_file="/etc/alertmanager/warroom-token") == 0
    [webhook] = yaml.safe_load(am.read_text())["receivers"][0]["webhook_configs"]
    assert webhook["http_config"]["authorization"] == {"type": "Bearer",
                                                       "credentials_file": "/etc/alertmanager/warroom-token"}
    assert "from-the-env" not in am.read_text()

    assert slo_rules_main(EXAMPLE, [], None, alertmanager_out=am) == 2
    assert "--alertmanager-out needs --alertmanager-webhook" in capsys.readouterr().err


def test_cli_reports_file_problems_and_bad_windows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "slos.yaml"
    bad.write_text("slos:\n  - {service: svc, name: quality, sli: hallucination_rate, objective: 101}\n")
    assert slo_rules_main(bad, [], None) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{bad}:2: objective must be a percentage above 0 and below 100 (got 101)\n"
    assert slo_rules_main(EXAMPLE, ["1h"], None) == 2
    assert "bad --window '1h'" in capsys.readouterr().err


def test_alertmanager_snippet_sends_resolved_with_the_bearer_token() -> None:
    config = yaml.safe_load(alertmanager_snippet("http://127.0.0.1:8000/webhooks/alertmanager", token="s3cret"))
    [webhook] = config["receivers"][0]["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["credentials"] == "s3cret"
