from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.runbooks import RunbookError, check_runbooks, load_runbooks, owner_kind

SHIPPED = Path(__file__).resolve().parent.parent / "runbooks"
PLAYBOOKS = {"fallback", "rollback", "disable-tool", "enable-tool", "unleash-kill-switch"}
SCENARIO_ALERT = {
    "alertname": "LLMHallucinationRateBurn",
    "slo": "hallucination-rate",
    "sloth_slo": "hallucination-rate",
    "service": "llm-gateway",
    "sloth_service": "llm-gateway",
    "sloth_severity": "page",
    "model": "primary-70b",
}


def write(directory: Path, runbook_id: str, match: list[str], body: str = "Do the thing.\n") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    items = "".join(f"\n  - '{m}'" for m in match) if match else " []"
    text = f"---\nid: {runbook_id}\ntitle: {runbook_id} title\nmatch:{items}\n---\n{body}"
    (directory / f"{runbook_id}.md").write_text(text)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty runbooks folder with a default, inside a working directory so paths print as runbooks/…."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "runbooks", "default", [])
    return tmp_path / "runbooks"


@pytest.fixture
def shipped_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return Path(shutil.copytree(SHIPPED, tmp_path / "runbooks"))


def test_shipped_runbooks_have_no_problems() -> None:
    assert check_runbooks(SHIPPED, playbook_names=PLAYBOOKS) == []
    assert load_runbooks(SHIPPED).ids == [
        "cost-blowup", "default", "guardrail-over-blocking", "hallucination-spike",
        "latency-p99", "quality-drift", "retrieval-drift", "schema-valid-drop", "tool-call-failures",
    ]


def test_scenario_alert_gets_the_hallucination_runbook() -> None:
    runbook = load_runbooks(SHIPPED).match(SCENARIO_ALERT)
    assert runbook.id == "hallucination-spike"
    assert runbook.severity == 2
    assert runbook.owners == ("@ml-oncall",)
    assert {"fallback", "rollback", "disable-tool"} <= set(runbook.actions)
    for step in ("/incident fallback", "/incident disable-tool web_search", "/incident rollback"):
        assert step in runbook.body


@pytest.mark.parametrize(
    ("slo", "runbook_id"),
    [
        ("schema-valid-rate", "schema-valid-drop"),
        ("tool-call-success", "tool-call-failures"),
        ("latency", "latency-p99"),
        ("cost-per-request", "cost-blowup"),
        ("retrieval-drift", "retrieval-drift"),
        ("guardrail-block-rate", "guardrail-over-blocking"),
        ("availability", "default"),
    ],
)
def test_each_slo_alert_gets_its_runbook(slo: str, runbook_id: str) -> None:
    assert load_runbooks(SHIPPED).match({"slo": slo, "service": "llm-gateway"}).id == runbook_id


def test_runbook_with_more_matchers_wins(folder: Path) -> None:
    write(folder, "broad", ['slo="latency"'])
    write(folder, "narrow", ['slo="latency"', 'service=~"llm-.*"'])
    runbooks = load_runbooks(folder)
    assert runbooks.match({"slo": "latency", "service": "llm-gateway"}).id == "narrow"
    assert runbooks.match({"slo": "latency", "service": "search"}).id == "broad"


def test_equality_beats_regex_with_the_same_number_of_matchers(folder: Path) -> None:
    write(folder, "a-regex", ['service=~"llm-gateway"'])
    write(folder, "b-exact", ['service="llm-gateway"'])
    assert load_runbooks(folder).match({"service": "llm-gateway"}).id == "b-exact"


def test_equally_specific_runbooks_tie_break_by_file_name(folder: Path) -> None:
    write(folder, "zeta", ['slo="latency"'])
    write(folder, "alpha", ['service="llm-gateway"'])
    assert load_runbooks(folder).match({"slo": "latency", "service": "llm-gateway"}).id == "alpha"


def test_every_matcher_must_hold_else_default(folder: Path) -> None:
    write(folder, "strict", ['slo="latency"', 'sloth_severity="page"'])
    runbooks = load_runbooks(folder)
    assert runbooks.match({"slo": "latency", "sloth_severity": "ticket"}).id == "default"
    assert runbooks.match({}).id == "default"


def test_runbook_label_or_annotation_picks_the_runbook(folder: Path) -> None:
    write(folder, "latency", ['slo="latency"'])
    write(folder, "special", ['slo="never"'])
    runbooks = load_runbooks(folder)
    assert runbooks.match({"slo": "latency", "runbook": "special"}).id == "special"
    assert runbooks.match({"slo": "latency"}, {"runbook": "special"}).id == "special"
    # A runbook name that does not exist is ignored, not an error in the middle of an incident.
    assert runbooks.match({"slo": "latency", "runbook": "gone"}).id == "latency"


def test_body_is_kept_byte_for_byte(folder: Path) -> None:
    body = "# Steps\r\n\r\n1. `/incident fallback`  \n\n---\ntrailing ---\n\n"
    write(folder, "exact", ['slo="x"'], body=body)
    runbooks = load_runbooks(folder)
    exact = runbooks.get("exact")
    assert exact is not None and exact.body == body
    assert runbooks.get("nope") is None


def test_owners_kinds() -> None:
    assert [owner_kind(o) for o in ("@ml-oncall", "U0ONCALL01", "priya@example.com", "ml-oncall")] == [
        "usergroup", "user", "email", None,
    ]


def test_broken_front_matter_is_reported_with_file_and_line(shipped_copy: Path) -> None:
    (shipped_copy / "latency-p99.md").write_text(
        "---\n"
        "id: latency\n"
        "title: 42\n"
        "match:\n"
        "  - slo=\"latency\"\n"
        "  - service=>\"llm\"\n"
        "severity: 5\n"
        "owners: [ml-oncall]\n"
        "actions: [fallback, page-everyone]\n"
        "colour: red\n"
        "---\nbody\n"
    )
    assert [str(p) for p in check_runbooks(shipped_copy, playbook_names=PLAYBOOKS)] == [
        "runbooks/latency-p99.md:2: id: 'latency' must equal the file name 'latency-p99'",
        "runbooks/latency-p99.md:3: title: must be a string, not 42",
        "runbooks/latency-p99.md:6: match: unknown operator '=>'",
        "runbooks/latency-p99.md:7: severity: must be from 1 to 4, not 5",
        "runbooks/latency-p99.md:8: owners: 'ml-oncall' is not a user group (@handle), user id (U…) or email",
        "runbooks/latency-p99.md:9: actions: unknown playbook 'page-everyone' "
        "(known: disable-tool, enable-tool, fallback, rollback, unleash-kill-switch)",
        "runbooks/latency-p99.md:10: colour: unknown key "
        "(expected one of: id, title, match, severity, owners, actions, links, auto, correlate)",
    ]


def test_file_level_breakage(shipped_copy: Path) -> None:
    (shipped_copy / "default.md").unlink()
    (shipped_copy / "cost-blowup.md").write_text("# Cost\nno front matter here\n")
    (shipped_copy / "latency-p99.md").write_text("---\nid: latency-p99\ntitle: [oops\nmatch: []\n---\n")
    (shipped_copy / "tool-call-failures.md").write_text("---\nid: tool-call-failures\nmatch: []\n")
    (shipped_copy / "old-retrieval.md").write_text(
        "---\nid: retrieval-drift\ntitle: Old copy\nmatch: ['slo=\"retrieval-drift\"']\n---\n"
    )
    (shipped_copy / "schema-valid-drop.md").write_text(
        "---\nid: schema-valid-drop\nmatch: ['slo=~\"(\"']\nlinks:\n  - {title: Dashboard}\n---\n"
    )
    assert [str(p) for p in check_runbooks(shipped_copy)] == [
        "runbooks/cost-blowup.md:1: missing front matter: the file must start with a '---' line",
        "runbooks/default.md:1: missing default runbook: add one with 'id: default' and 'match: []' "
        "for alerts no other runbook matches",
        "runbooks/latency-p99.md:4: invalid YAML: expected ',' or ']', but got ':'",
        "runbooks/old-retrieval.md:2: id: 'retrieval-drift' must equal the file name 'old-retrieval'",
        "runbooks/old-retrieval.md:2: id: duplicate id 'retrieval-drift' (also in runbooks/retrieval-drift.md)",
        "runbooks/schema-valid-drop.md:2: title: required",
        "runbooks/schema-valid-drop.md:3: match: invalid regex: missing ), unterminated subpattern at position 0",
        "runbooks/schema-valid-drop.md:5: links.url: required",
        "runbooks/tool-call-failures.md:1: front matter is not closed: add a '---' line after it",
    ]


def test_load_refuses_a_broken_folder_and_lists_every_problem(folder: Path) -> None:
    write(folder, "a", ["slo=>x"])
    write(folder, "b", ['slo="x"', "bad name=1"])
    with pytest.raises(RunbookError) as caught:
        load_runbooks(folder)
    assert str(caught.value).splitlines() == [
        "runbooks/a.md:5: match: unknown operator '=>'",
        "runbooks/b.md:6: match: expected an operator (=, !=, =~, !~) after 'bad', found 'n'",
    ]
    assert len(caught.value.problems) == 2


def test_default_must_match_nothing_and_others_something(folder: Path) -> None:
    write(folder, "default", ['slo="x"'])
    write(folder, "catch-all", [])
    assert [str(p) for p in check_runbooks(folder)] == [
        "runbooks/catch-all.md:4: match: only the default runbook may have an empty match list",
        "runbooks/default.md:4: match: the default runbook catches what no other runbook matches; "
        "give it 'match: []'",
    ]


def test_paths_outside_the_working_directory_print_as_given(tmp_path: Path) -> None:
    write(tmp_path, "x", ['slo=>"y"'])
    problems = [str(p) for p in check_runbooks(tmp_path)]
    assert f"{tmp_path}/x.md:5: match: unknown operator '=>'" in problems


def test_broken_default_is_reported_once_not_also_as_missing(folder: Path) -> None:
    (folder / "default.md").write_text("---\nid: default\ntitle: x\nmatch: []\nseverity: high\n---\n")
    assert [str(p) for p in check_runbooks(folder)] == [
        "runbooks/default.md:5: severity: must be an integer, not 'high'",
    ]
