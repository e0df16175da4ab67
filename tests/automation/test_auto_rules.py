"""What a runbook may declare for warroom to do on its own, and what the permission table lets it do."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.actions import load_playbooks
from bot.actions.playbook import check_playbooks
from bot.errors import PermissionDenied
from bot.incidents.permissions import AUTOMATION, Actor, check
from bot.runbooks import check_runbooks, load_runbooks
from tests.conftest import ROOT

PLAYBOOKS = load_playbooks(ROOT / "playbooks")
NAMES = set(PLAYBOOKS)
UNATTENDED = {name for name, pb in PLAYBOOKS.items() if pb.unattended}


def runbook_with(folder: Path, auto: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "default.md").write_text("---\nid: default\ntitle: Default\nmatch: []\n---\nbody\n")
    (folder / "spike.md").write_text(f"---\nid: spike\ntitle: Spike\nmatch: ['slo=\"x\"']\nauto:\n{auto}---\nbody\n")
    return folder


def test_runbooks_check_refuses_running_a_playbook_that_is_not_unattended_with_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = runbook_with(tmp_path / "runbooks", "  - run: fallback\n  - run: rollback\n")
    [problem] = check_runbooks(folder, NAMES, UNATTENDED)
    assert str(problem).startswith("runbooks/spike.md:7: auto.run: 'rollback' may not run unattended")
    assert "use 'propose: rollback'" in str(problem)


def test_runbooks_check_accepts_proposing_a_destructive_playbook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = runbook_with(tmp_path / "runbooks", "  - run: fallback\n    delay_seconds: 30\n  - propose: rollback\n")
    assert check_runbooks(folder, NAMES, UNATTENDED) == []
    rules = load_runbooks(folder).get("spike").auto  # type: ignore[union-attr]
    assert [(r.playbook, r.proposes, r.delay_seconds) for r in rules] == [("fallback", False, 30), ("rollback", True,
                                                                                                    0)]


@pytest.mark.parametrize("entry, message", [
    ("  - run: fallback\n    propose: rollback\n", "give exactly one of 'run: <playbook>' or 'propose: <playbook>'"),
    ("  - run: nope\n", "unknown playbook 'nope'"),
    ("  - run: fallback\n    when: soon\n", "unknown key (expected one of: run, propose, params"),
    ("  - run: fallback\n    match: ['model=~\"(\"']\n", "auto.match:"),
    ("  - run: fallback\n    max_severity: 5\n", "must be from 1 to 4"),
])
def test_runbooks_check_points_at_a_broken_auto_entry(tmp_path, monkeypatch, entry: str, message: str):
    monkeypatch.chdir(tmp_path)
    problems = [str(p) for p in check_runbooks(runbook_with(tmp_path / "runbooks", entry), NAMES, UNATTENDED)]
    assert any(p.startswith("runbooks/spike.md:") and message in p for p in problems), problems


def test_the_shipped_runbooks_and_playbooks_pass_their_checks():
    assert check_runbooks(ROOT / "runbooks", NAMES, UNATTENDED) == []
    assert check_playbooks(ROOT / "playbooks") == []
    assert {"fallback", "disable-tool", "unleash-kill-switch"} <= UNATTENDED and "rollback" not in UNATTENDED


def test_an_unattended_playbook_needs_undo_verify_and_no_second_person(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "name: risky\nunattended: true\napproval: second-person\nsteps:\n  - name: go\n    url: http://x/\n")
    [problem] = check_playbooks(tmp_path)
    assert problem.line == 2
    assert "needs undo steps, a verify step, approval: none (no second person)" in problem.message


def test_warroom_may_run_only_unattended_playbooks_and_never_decides():
    warroom = Actor.automation()
    check("run", warroom, playbook=PLAYBOOKS["fallback"])
    check("propose", warroom, playbook=PLAYBOOKS["rollback"])
    check("undo", warroom, playbook=PLAYBOOKS["fallback"], requested_by=AUTOMATION)
    with pytest.raises(PermissionDenied, match="may not run rollback on its own"):
        check("run", warroom, playbook=PLAYBOOKS["rollback"])
    with pytest.raises(PermissionDenied, match="may not undo fallback on its own"):
        check("undo", warroom, playbook=PLAYBOOKS["fallback"], requested_by="U0PRIYA")  # a person's run
    for decision in ("confirm", "approve", "cancel"):
        with pytest.raises(PermissionDenied, match="a person must"):
            check(decision, warroom, playbook=PLAYBOOKS["rollback"], requested_by=AUTOMATION)
