from __future__ import annotations

from pathlib import Path

import pytest
from playbook_harness import PLAYBOOKS_DIR

from bot.actions import PlaybookError, check_playbooks, load_playbooks, load_targets

SHAPE = """\
name: shape
description: broken on purpose
approval: maybe
params:
  tool:
    type: enum
steps:
  - name: go
    method: FETCH
    url: "{{ target }}/x"
    retries: 3
"""
MEANING = """\
name: meaning
target: nowhere
params:
  tool: {type: string, pattern: "^[a-z]+$"}
steps:
  - name: go
    url: "{{ target }}/tools/{{ params.tol }}"
    save: {previous: "route[oops"}
verify:
  url: "{{ target }/state"
undo:
  - name: back
    url: "{{ targt }}/x"
"""


def write(folder: Path, **files: str) -> None:
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)


def test_shipped_playbooks_are_clean() -> None:
    assert check_playbooks(PLAYBOOKS_DIR) == []
    assert set(load_playbooks(PLAYBOOKS_DIR)) == {
        "fallback", "rollback", "disable-tool", "enable-tool", "unleash-kill-switch"}


def test_broken_playbooks_are_reported_with_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, targets="llm-gateway: http://127.0.0.1:9201\n", shape=SHAPE, meaning=MEANING,
          syntax="name: syntax\nsteps:\n  - name: go\n    url: [unclosed\n",
          nosteps="name: Bad Name\nsteps: []\n")
    got = [str(p) for p in check_playbooks(tmp_path)]
    assert got == [
        f"{tmp_path}/meaning.yaml:2: target: unknown target 'nowhere' (known: llm-gateway)",
        f"{tmp_path}/meaning.yaml:7: steps[0].url: template uses params.tol, which is not declared under params",
        f"{tmp_path}/meaning.yaml:8: steps[0].save.previous: bad JSON path 'route[oops' at character 6",
        f"{tmp_path}/meaning.yaml:10: verify.url: template error: unexpected '}}'",
        f"{tmp_path}/meaning.yaml:13: undo[0].url: template uses unknown name 'targt' "
        "(use incident, params, saved, secrets, target)",
        f"{tmp_path}/nosteps.yaml:1: name: use lowercase letters, digits and dashes, starting with a letter "
        "(like disable-tool)",
        f"{tmp_path}/nosteps.yaml:2: steps: List should have at least 1 item after validation, not 0",
        f"{tmp_path}/shape.yaml:3: approval: Input should be 'none' or 'second-person'",
        f"{tmp_path}/shape.yaml:5: params.tool: an enum param needs choices",
        f"{tmp_path}/shape.yaml:9: steps[0].method: Input should be 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'",
        f"{tmp_path}/shape.yaml:11: steps[0].retries: unknown field",
        f"{tmp_path}/syntax.yaml:5: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ]


def test_loading_a_broken_folder_raises_with_every_problem(tmp_path: Path) -> None:
    write(tmp_path, shape=SHAPE)
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(tmp_path)
    assert len(caught.value.problems) == 4
    assert str(caught.value).startswith(f"{tmp_path}/shape.yaml:3: approval:")


def test_two_files_with_the_same_playbook_name_clash(tmp_path: Path) -> None:
    text = "name: twin\nsteps:\n  - {name: go, url: 'http://a.example/'}\n"
    write(tmp_path, a=text, b=text)
    assert [str(p) for p in check_playbooks(tmp_path)] == [
        f"{tmp_path}/b.yaml:1: playbook name 'twin' is also used by {tmp_path}/a.yaml"]


def test_targets_are_overridable_from_the_environment() -> None:
    targets = load_targets(PLAYBOOKS_DIR / "targets.yaml", environ={
        "WARROOM_TARGET_LLM_GATEWAY": "https://router.corp.example:8443/"})
    assert targets == {"llm-gateway": "https://router.corp.example:8443", "unleash": "http://127.0.0.1:4242"}


def test_broken_targets_file_is_reported_too(tmp_path: Path) -> None:
    write(tmp_path, targets="llm-gateway: http://127.0.0.1:9201\nunleash: ftp://flags\n")
    assert [str(p) for p in check_playbooks(tmp_path)] == [
        f"{tmp_path}/targets.yaml:2: unleash: base URL must start with http:// or https://"]
