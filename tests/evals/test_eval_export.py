from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.evals.cases import NO_INPUT, EvalExportError, ExportResult, Label, cases_from_traces, write_eval_files
from bot.traces.rules import TraceEvent

# Assertion types promptfoo 0.121 accepts (from its BaseAssertionTypes); `not-` prefixes are also valid.
PROMPTFOO_ASSERT_TYPES = {
    "contains", "icontains", "contains-all", "contains-any", "icontains-all", "icontains-any", "equals",
    "regex", "starts-with", "is-json", "contains-json", "javascript", "python", "latency", "cost", "levenshtein",
    "is-sql", "is-xml", "is-html", "word-count", "webhook",
}
TARGET = "http://127.0.0.1:9201"


def trace(request_id: str, minute: int, **fields: Any) -> TraceEvent:
    base: dict[str, Any] = {"request_id": request_id, "timestamp": f"2026-03-14T02:{minute:02d}:00",
                            "service": "llm-gateway", "bundle_version": "v42", "prompt_hash": f"h-{request_id}"}
    return TraceEvent.model_validate({**base, **fields})


def incident_traces() -> list[TraceEvent]:
    return [
        trace("refund", 7, input="What is the refund policy?",
              output="Refunds are available within 90 days, no receipt needed.", hallucination_score=0.9),
        trace("refund-again", 9, prompt_hash="h-refund", input="What is the refund policy?",
              output="Refunds are available within 90 days, no receipt needed.", hallucination_score=0.9),
        trace("json", 8, input="Give the order status as JSON for order 1234", output='{"order_id": "1234"',
              schema_valid=False),
        trace("tool", 10, input="Where is my order 9999?", output="order_lookup tool error: boom",
              tool_calls=[{"name": "order_lookup", "ok": False, "error": "boom"}]),
        trace("slow", 11, input="Do you ship internationally?", output="Yes.", latency_ms=4000),
    ]


def export(out: Path, traces: list[TraceEvent] | None = None, **kwargs: Any) -> ExportResult:
    cases = cases_from_traces(traces if traces is not None else incident_traces(), incident_id="INC-1", **kwargs)
    return write_eval_files(cases, out, target_url=TARGET)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_export_writes_promptfoo_tests_jsonl_and_a_config_for_the_http_provider(tmp_path: Path) -> None:
    result = export(tmp_path)
    assert sorted(p.name for p in result.paths) == ["cases.jsonl", "promptfooconfig.yaml", "tests.yaml"]
    assert (result.written, result.deduplicated, result.total) == (4, 0, 4)

    tests = yaml.safe_load((tmp_path / "tests.yaml").read_text())
    assert [t["metadata"]["failure_type"] for t in tests] == ["hallucination", "schema_invalid", "tool_error",
                                                              "latency"]
    for test in tests:
        assert set(test) == {"description", "vars", "assert", "metadata"}
        assert test["vars"]["question"]
        for check in test["assert"]:
            assert check["type"].removeprefix("not-") in PROMPTFOO_ASSERT_TYPES

    config = yaml.safe_load((tmp_path / "promptfooconfig.yaml").read_text())
    assert config["prompts"] == ["{{question}}"]
    assert config["tests"] == "file://tests.yaml"
    [provider] = config["providers"]
    assert provider["id"] == "http"
    assert provider["config"]["url"] == f"{TARGET}/v1/answer"
    assert provider["config"]["method"] == "POST"
    assert provider["config"]["body"] == {"question": "{{question}}"}
    assert provider["config"]["transformResponse"] == "json.output"


def test_jsonl_has_one_sorted_key_object_per_case_matching_the_yaml(tmp_path: Path) -> None:
    export(tmp_path)
    lines = (tmp_path / "cases.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert all(line == json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
               for line, row in zip(lines, rows, strict=True))
    assert rows == yaml.safe_load((tmp_path / "tests.yaml").read_text())


def test_exporting_twice_writes_identical_bytes_and_no_duplicates(tmp_path: Path) -> None:
    export(tmp_path)
    first = snapshot(tmp_path)
    again = export(tmp_path)
    assert snapshot(tmp_path) == first
    assert (again.written, again.deduplicated, again.total) == (0, 4, 4)


def test_export_order_does_not_depend_on_trace_order(tmp_path: Path) -> None:
    export(tmp_path / "a")
    export(tmp_path / "b", list(reversed(incident_traces())))
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_new_failures_are_merged_into_an_existing_export(tmp_path: Path) -> None:
    export(tmp_path, incident_traces()[:3])
    result = export(tmp_path)
    assert (result.written, result.deduplicated, result.total) == (2, 2, 4)
    descriptions = [t["description"] for t in yaml.safe_load((tmp_path / "tests.yaml").read_text())]
    assert len(descriptions) == len(set(descriptions)) == 4


def test_a_human_label_upgrades_a_case_that_was_exported_before(tmp_path: Path) -> None:
    export(tmp_path)
    export(tmp_path, labels={"refund-again": Label(expected="Refunds are available within 30 days.",
                                                   unsupported_claim="90 days")})
    refund = yaml.safe_load((tmp_path / "tests.yaml").read_text())[0]
    assert refund["assert"] == [
        {"type": "not-icontains", "value": "90 days"},
        {"type": "icontains", "value": "Refunds are available within 30 days."},
    ]
    assert refund["metadata"]["request_id"] == "refund"  # still the earliest trace


def test_a_corrupt_existing_file_is_reported_with_its_line_and_left_untouched(tmp_path: Path) -> None:
    export(tmp_path)
    jsonl = tmp_path / "cases.jsonl"
    jsonl.write_text(jsonl.read_text() + "{not json\n")
    before = snapshot(tmp_path)
    with pytest.raises(EvalExportError, match=r"cases.jsonl:5"):
        export(tmp_path)
    assert snapshot(tmp_path) == before


def test_a_suite_too_large_for_block_yaml_is_still_valid_yaml_matching_the_jsonl(tmp_path: Path) -> None:
    from bot.evals.cases import BLOCK_STYLE_LIMIT
    many = [trace(f"r{i}", i % 60, input=f"Question {i}: what is the refund policy?\tplease",
                  output="Refunds are available within 90 days.", hallucination_score=0.9)
            for i in range(BLOCK_STYLE_LIMIT + 5)]
    result = export(tmp_path, many)
    assert result.total == BLOCK_STYLE_LIMIT + 5
    tests = yaml.safe_load((tmp_path / "tests.yaml").read_text())
    lines = [json.loads(line) for line in (tmp_path / "cases.jsonl").read_text().splitlines()]
    assert tests == lines


PASTED = {
    "huggingface": "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNm12345678",
    "private key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
                   "-----END OPENSSH PRIVATE KEY-----",
    "basic auth": "postgres://app:Hunter2-Zq8vK2@db.internal:5432/orders",
    "stripe": "sk_live_" + "51HxZq8vK2mN4bX7cR1tY5uW9e",
}


def test_credentials_pasted_into_prompts_answers_and_labels_never_reach_the_eval_files(tmp_path: Path) -> None:
    traces = [
        trace("pasted", 7, input=f"why does {PASTED['huggingface']} fail? my key: {PASTED['private key']}",
              output=f"Use {PASTED['basic auth']} and the key {PASTED['stripe']}.", hallucination_score=0.9,
              expected=f"Never repeat {PASTED['stripe']}."),
    ]
    export(tmp_path, traces, labels={"pasted": Label(notes=f"user pasted {PASTED['huggingface']}",
                                                    unsupported_claim=f"the key {PASTED['stripe']}")})
    written = "".join(p.read_text() for p in tmp_path.iterdir())
    assert "hallucination" in written and "[secret]" in written and "[private key]" in written
    for secret in PASTED.values():
        for line in secret.splitlines():
            assert line[-12:] not in written
    assert "Hunter2" not in written


def test_a_case_without_input_says_why_and_a_senders_reason_is_redacted(tmp_path: Path) -> None:
    traces = [
        trace("silent", 7, output="Refunds within 90 days.", hallucination_score=0.9),
        trace("told", 8, output="Shipped via Mars.", hallucination_score=0.9,
              attributes={"input_missing": f"dropped by proxy {PASTED['stripe']}"}),
    ]
    export(tmp_path, traces)
    tests = yaml.safe_load((tmp_path / "tests.yaml").read_text())
    by_request = {t["metadata"]["request_id"]: t for t in tests}
    assert by_request["silent"]["description"] == f"INC-1 hallucination: no input: {NO_INPUT}"
    assert by_request["silent"]["metadata"]["input_missing"] == NO_INPUT
    assert by_request["told"]["metadata"]["input_missing"] == "dropped by proxy [secret]"
    assert all(t["vars"] == {"question": ""} for t in tests)  # still a valid promptfoo test
    assert PASTED["stripe"][-12:] not in "".join(p.read_text() for p in tmp_path.iterdir())
