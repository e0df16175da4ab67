"""An incident's failing traces exported from the database as eval cases, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import select

from bot.evals.asserts import AssertContext
from bot.evals.cases import CaseLine
from bot.evals.export import export_incident, export_since
from bot.evals.suite import collect_incident, suite_cases
from bot.evals.suite_files import export_suite
from bot.evals.target import EvalTarget
from bot.otlp.genai import CONTENT_OFF
from bot.postmortem import store
from bot.postmortem.assemble import EVALS_EXPORTED_KIND
from bot.slack.eval_blocks import incident_cases
from bot.store.db import transaction
from bot.store.models import TimelineEvent, Trace
from bot.traces import ingest as traces
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import Warroom
from tests.otlp.spans import Recorder, protobuf_body
from tests.postmortem.test_assemble import EMAIL, section, seed_incident

TARGET = "http://127.0.0.1:9201"




def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def export_events(warroom: Warroom, incident_id: int) -> list[TimelineEvent]:
    with transaction(warroom.runtime.engine) as session:
        return list(session.execute(select(TimelineEvent).where(TimelineEvent.incident_id == incident_id,
                                                                TimelineEvent.kind == EVALS_EXPORTED_KIND)).scalars())


def test_failing_traces_become_deduplicated_promptfoo_cases_with_the_human_label(warroom: Warroom,
                                                                                 tmp_path: Path) -> None:
    seeded = seed_incident(warroom)
    with transaction(warroom.runtime.engine) as session:
        result = export_incident(session, seeded.incident_id, tmp_path / "evals", target_url=TARGET)
    # 12 failing traces: 9 hallucinations over 3 prompts and 3 schema failures over 2 -> 5 cases.
    assert (result.written, result.deduplicated, result.total) == (5, 0, 5)
    assert sorted(p.name for p in result.paths) == ["cases.jsonl", "promptfooconfig.yaml", "tests.yaml"]
    tests = yaml.safe_load((tmp_path / "evals" / "tests.yaml").read_text())
    assert [t["metadata"]["failure_type"] for t in tests] == ["hallucination"] * 3 + ["schema_invalid"] * 2
    ref = f"INC-{seeded.opened:%Y%m%d}-{seeded.incident_id:04d}"
    assert {t["metadata"]["incident_id"] for t in tests} == {ref}
    refund = next(t for t in tests if t["metadata"]["prompt_hash"] == "h-refund")
    assert refund["metadata"]["labelled"] is True and refund["metadata"]["notes"] == "pinned in the channel"
    assert {"type": "icontains", "value": "Refunds are available within 30 days."} in refund["assert"]
    assert refund["vars"]["question"] == "What is the refund policy? I'm [email]"
    assert {"type": "is-json"} in tests[-1]["assert"]
    for path in result.paths:
        assert EMAIL not in path.read_text()
    assert len((tmp_path / "evals" / "cases.jsonl").read_text().splitlines()) == 5


def test_exporting_twice_changes_no_file_and_records_the_export_once(warroom: Warroom, tmp_path: Path) -> None:
    seeded = seed_incident(warroom)
    out = tmp_path / "evals"
    with transaction(warroom.runtime.engine) as session:
        export_incident(session, seeded.incident_id, out, target_url=TARGET)
    first = snapshot(out)
    with transaction(warroom.runtime.engine) as session:
        again = export_incident(session, seeded.incident_id, out, target_url=TARGET)
    assert snapshot(out) == first
    assert (again.written, again.deduplicated, again.total) == (0, 5, 5)
    [event] = export_events(warroom, seeded.incident_id)
    assert event.text == "5 eval cases exported to evals" and event.data["cases"] == 5


def test_the_postmortem_counts_the_exported_cases(warroom: Warroom, tmp_path: Path) -> None:
    seeded = seed_incident(warroom)
    with transaction(warroom.runtime.engine) as session:
        assert "Eval cases added: 0" in store.generate(session, seeded.incident_id).draft
        export_incident(session, seeded.incident_id, tmp_path / "evals", target_url=TARGET)
    with transaction(warroom.runtime.engine) as session:
        draft = store.generate(session, seeded.incident_id).draft
    assert "Eval cases added: 5 (regressions from this incident now fail the eval suite)" in section(draft,
                                                                                                     "Follow-ups")
    assert "5 eval cases exported" in section(draft, "Timeline")


def test_a_trace_a_human_labelled_wrong_is_exported_even_if_the_rules_passed_it(warroom: Warroom,
                                                                                tmp_path: Path) -> None:
    seeded = seed_incident(warroom)
    with transaction(warroom.runtime.engine) as session:
        healthy = session.execute(select(Trace).where(Trace.request_id == "llm-gateway-hallucination-ok-0")
                                  ).scalar_one()
        healthy.incident_id = seeded.incident_id
        healthy.label = {"expected": "We are open 8 to 6 on weekdays.", "notes": "hours changed in March"}
        bad_label = session.execute(select(Trace).where(Trace.request_id == "llm-gateway-hallucination-json-2")
                                    ).scalar_one()
        bad_label.label = {"failure_type": "rudeness"}  # not a known type: ignored, the trace still exports
    with transaction(warroom.runtime.engine) as session:
        result = export_incident(session, seeded.incident_id, tmp_path / "evals", target_url=TARGET)
    assert result.total == 6
    tests = yaml.safe_load((tmp_path / "evals" / "tests.yaml").read_text())
    feedback = next(t for t in tests if t["metadata"]["failure_type"] == "negative_feedback")
    assert feedback["assert"] == [{"type": "icontains", "value": "We are open 8 to 6 on weekdays."}]
    assert any(t["metadata"]["prompt_hash"] == "h-json2" for t in tests)


def test_a_label_on_a_later_duplicate_upgrades_the_case_of_the_earliest_trace(warroom: Warroom,
                                                                             tmp_path: Path) -> None:
    seeded = seed_incident(warroom)
    with transaction(warroom.runtime.engine) as session:  # hal-5 and hal-6 gave the same warranty answer
        traces.label_trace(session, "llm-gateway-hallucination-hal-6", unsupported_claim="a lifetime",
                           expected="The warranty lasts two years.", actor="U0SAM")
    with transaction(warroom.runtime.engine) as session:
        export_incident(session, seeded.incident_id, tmp_path / "evals", target_url=TARGET)
    tests = yaml.safe_load((tmp_path / "evals" / "tests.yaml").read_text())
    warranty = next(t for t in tests if t["metadata"]["prompt_hash"] == "h-warranty")
    assert warranty["metadata"]["request_id"] == "llm-gateway-hallucination-hal-5"
    assert warranty["metadata"]["labelled"] is True
    assert warranty["assert"] == [{"type": "not-icontains", "value": "a lifetime"},
                                  {"type": "icontains", "value": "The warranty lasts two years."}]


def test_export_since_takes_resolved_incidents_only(warroom: Warroom, tmp_path: Path) -> None:
    resolved = seed_incident(warroom)
    seed_incident(warroom, group="still-burning", resolve=False)
    with transaction(warroom.runtime.engine) as session:
        result = export_since(session, resolved.opened, tmp_path / "evals", target_url=TARGET)
    assert (result.written, result.total) == (5, 5)
    rows = [json.loads(line) for line in (tmp_path / "evals" / "cases.jsonl").read_text().splitlines()]
    assert {row["metadata"]["request_id"].rsplit("-", 2)[0] for row in rows} == {"llm-gateway-hallucination"}

    later = resolved.opened + timedelta(minutes=14)  # after its resolution: nothing is due
    with transaction(warroom.runtime.engine) as session:
        nothing = export_since(session, later, tmp_path / "empty", target_url=TARGET)
    assert (nothing.written, nothing.total) == (0, 0)
    assert (tmp_path / "empty" / "promptfooconfig.yaml").exists()
    assert yaml.safe_load((tmp_path / "empty" / "tests.yaml").read_text()) == []


def test_a_case_from_spans_without_message_content_says_why_it_has_no_input(warroom: Warroom, tmp_path: Path) -> None:
    """OTLP instrumentations leave message content off by default: the answer still fails and
    becomes a case, whose description and metadata say why its prompt is empty, in the export and
    in the service's suite (what `/incident evals` lists)."""
    opened = warroom.alertmanager(am_payload([am_alert(service="llm-gateway")], group="llm-gateway"))
    incident_id = opened.json()["incident_id"]
    recorder = Recorder()
    recorder.answer(question=None, output=None, hallucination=0.97, tools=[("search", False)])
    recorder.answer(question="Where is my order 9999?", output="It shipped via Mars.", hallucination=0.95)
    response = warroom.post("/v1/traces", content=protobuf_body(recorder.spans()),
                            headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200, response.text

    with transaction(warroom.runtime.engine) as session:
        export_incident(session, incident_id, tmp_path / "evals", target_url=TARGET)
    tests = yaml.safe_load((tmp_path / "evals" / "tests.yaml").read_text())
    blind = [t for t in tests if not t["vars"]["question"]]
    assert [t["metadata"]["failure_type"] for t in blind] == ["tool_error"]  # a hallucination needs an output
    assert blind[0]["description"].endswith(f"tool_error: no input: {CONTENT_OFF}")
    assert blind[0]["metadata"]["input_missing"] == CONTENT_OFF
    [asked] = [t for t in tests if t["vars"]["question"]]
    assert "input_missing" not in asked["metadata"] and asked["description"].endswith("Where is my order 9999?")
    lines = [CaseLine.read(line) for line in (tmp_path / "evals" / "cases.jsonl").read_text().splitlines()]
    assert len(lines) == len(tests)  # read back as cases: the export stays mergeable

    with transaction(warroom.runtime.engine) as session:
        collect_incident(session, incident_id)
        export_suite(session, "llm-gateway", tmp_path / "suite", target=EvalTarget(TARGET + "/v1/answer"),
                     bundle="b-43", ctx=AssertContext())
        cases = suite_cases(session, "llm-gateway", incident_id=incident_id)
    blind_cases = [c for c in cases if not c.question]
    assert {c.failure_type for c in blind_cases} == {"hallucination", "tool_error"}
    assert {c.data.get("input_missing") for c in blind_cases} == {CONTENT_OFF}
    suite = yaml.safe_load((tmp_path / "suite" / "tests.yaml").read_text())
    described = {t["metadata"]["case_id"]: t["description"] for t in suite}
    assert all(described[c.case_id].endswith(f"(unlabelled): no input: {CONTENT_OFF}") for c in blind_cases)
    # `/incident evals` in Slack says it too, where the question would be.
    listing = str(incident_cases(incident_id, cases, {})["blocks"])
    assert listing.count("*Q:* _(no input: ") == len(blind_cases) and "Where is my order 9999?" in listing
