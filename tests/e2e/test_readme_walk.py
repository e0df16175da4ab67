"""The README's "Use it with your service" rehearsal works as written, against real Prometheus and Alertmanager.

The steps come from the README (tests/e2e/readme_walk.py), so the README cannot drift from what
works: install-free set-up, `warroom slo rules --time-scale 60` with the route written to a file
and used unedited, the example service started with its control API, broken with bad bundle v42,
the first incident seen through the README's own command, fixed with v41, and resolved by
Alertmanager's `resolved` notification.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.serving import wait_until
from tests.conftest import ROOT
from tests.e2e.readme_walk import Shell, free_ports, readme_steps, with_ports


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    """A terminal in a fresh folder holding the clone's data files, with warroom installed on PATH."""
    for name in ("examples", "runbooks", "playbooks"):
        (tmp_path / name).symlink_to(ROOT / name)
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    # What `source .venv/bin/activate` gives: `warroom` and `python` of the environment under test.
    (bin_dir / "warroom").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bot "$@"\n')
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    terminal = Shell(tmp_path, env)
    yield terminal
    terminal.stop()


def incidents(shell: Shell, see: str) -> list[dict[str, Any]]:
    return list(json.loads(shell.run(see, timeout=30)))


@pytest.mark.e2e
def test_readme_rehearsal_pages_on_the_bad_bundle_and_sees_the_pages_resolve(shell: Shell, tmp_path: Path) -> None:
    ports = free_ports()
    steps = {name: with_ports(text, ports) for name, text in readme_steps(ROOT / "README.md").items()}
    assert list(steps) == ["install", "configure", "start", "break", "see", "fix", "stop"]

    shell.run(steps["configure"], timeout=60)
    route = yaml.safe_load((tmp_path / "rehearsal" / "alertmanager.yml").read_text())
    [webhook] = route["receivers"][0]["webhook_configs"]
    assert webhook["http_config"]["authorization"]["credentials"] == "rehearsal-alert-token"
    assert (route["route"]["group_wait"], route["route"]["group_interval"]) == ("1s", "5s")

    assert "all up" in shell.run(steps["start"], timeout=90)
    assert incidents(shell, steps["see"]) == []
    assert '"bundle":"v42"' in shell.run(steps["break"], timeout=15)

    # A fresh Prometheus holds only seconds of data, so every window (the ticket's too) burns at once;
    # the pages and tickets of the one service come as separate groups and join one incident
    # (correlation), which a page makes SEV2.
    first = wait_until(lambda: next((i for i in incidents(shell, steps["see"]) if i["severity"] == 2), None),
                       timeout=120, interval=1, what="the first page incident after shipping v42")
    assert first["service"] == "llm-gateway" and first["status"] == "triggered"

    assert '"bundle":"v41"' in shell.run(steps["fix"], timeout=15)

    def pages_resolved() -> dict[str, Any] | None:
        return next((i for i in incidents(shell, steps["see"]) if i["id"] == first["id"]
                     and i["alerts_resolved"] >= 1), None)

    # The pages' short windows clear first, and Alertmanager's resolved notification reaches the
    # incident; it resolves itself with its last group, the tickets (2 and 6 min scaled) later.
    seen = wait_until(pages_resolved, timeout=150, interval=1, what="Alertmanager's resolved notification")
    assert seen["alerts_resolved"] >= 1
    shell.run(steps["stop"], timeout=30)
