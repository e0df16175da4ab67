"""`evals replay`: every failing input of the incident re-sent to a candidate bundle (example
service over loopback), reported per failure type as fixed / still failing / newly failing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from bot.evals.replay import replay
from bot.evals.suite import incident_rows
from bot.evals.target import EvalTarget
from bot.serving import serving
from bot.store.db import transaction
from bot.traces.rules import FailureRules
from examples.llm_service import create_app
from tests.evals.suite_support import SERVICE, register_catalogue, seed_incident_from_v42


@pytest.fixture
def llm_service() -> Iterator[str]:
    with serving(create_app(bundle="v42")) as url:
        yield url


def replay_against(engine: Engine, incident: int, url: str, version: str) -> dict[str, dict[str, int]]:
    with transaction(engine) as session:
        rows = list(incident_rows(session, incident))
    assert len(rows) == 4  # all failing traces, not the two deduplicated cases
    report = replay(rows, EvalTarget(url + "/v1/answer?bundle={{bundle}}"), SERVICE, version, rules=FailureRules(),
                    run_tag="test")
    assert report.errors == 0 and report.requests == 4
    return {kind: dict(counts) for kind, counts in report.as_json()["by_type"].items()}


def test_replay_reports_what_the_fix_fixes_and_what_the_paraphrase_does_not(engine: Engine, llm_service: str) -> None:
    register_catalogue(engine)
    incident = seed_incident_from_v42(engine, llm_service)
    assert replay_against(engine, incident, llm_service, "v43") == {
        "hallucination": {"fixed": 3}, "schema_invalid": {"fixed": 1}}
    assert replay_against(engine, incident, llm_service, "v44") == {
        "hallucination": {"still failing": 3}, "schema_invalid": {"fixed": 1}}
    assert replay_against(engine, incident, llm_service, "v42") == {
        "hallucination": {"still failing": 3}, "schema_invalid": {"still failing": 1}}


def test_a_replay_to_a_dead_target_counts_errors_instead_of_verdicts(engine: Engine, llm_service: str) -> None:
    register_catalogue(engine)
    incident = seed_incident_from_v42(engine, llm_service)
    with transaction(engine) as session:
        rows = list(incident_rows(session, incident))
    report = replay(rows, EvalTarget("http://127.0.0.1:9/{{bundle}}"), SERVICE, "v43", rules=FailureRules(),
                    run_tag="test")
    assert report.errors == 4 and not report.ok and "4 request(s) failed" in report.as_text()
