"""`warroom demo` as a person runs it: the CLI afterwards finds its incident; a restart is one consistent world."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bot.serving import wait_until
from tests.conftest import ROOT

AUTH = {"Authorization": "Bearer dev-alert-token"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


@contextmanager
def demo(cwd: Path, *flags: str) -> Iterator[dict[str, str]]:
    """The demo on free ports; yields the URLs it printed; Ctrl-C (SIGINT) at the end, as a person stops it."""
    log = (cwd / "demo.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "demo", "--port", "0", "--emulator-port", "0",
                             "--service-port", "0", *flags], cwd=cwd, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        def started() -> str | None:
            text = (cwd / "demo.log").read_text()
            assert proc.poll() is None, f"the demo exited:\n{text}"
            return text if "Ctrl-C stops everything" in text else None

        text = wait_until(started, timeout=60, interval=0.2, what="the demo to start")
        urls = {"emulator": re.search(r"Slack \(emulator\):\s+(\S+)/ ", text).group(1),
                "warroom": re.search(r"warroom incidents:\s+(\S+)/incidents", text).group(1), "text": text}
        yield urls
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def channels(emulator: str) -> set[str]:
    return set(re.findall(r"\?channel=(C\w+)", httpx.get(f"{emulator}/", timeout=10).text))


def test_cli_acts_on_the_demo_and_a_restart_keeps_or_renews_database_and_channels_together(tmp_path: Path) -> None:
    with demo(tmp_path) as first:
        assert "Two SLO alert groups fired, one incident (#1)" in first["text"]
        incident = wait_until(lambda: (i := httpx.get(f"{first['warroom']}/api/incidents/1", headers=AUTH,
                                                      timeout=10).json()).get("channel_id") and i,
                              timeout=30, what="incident #1's channel")
        assert incident["channel_id"] in channels(first["emulator"])
        # The CLI, run with no settings in the same folder, finds the demo's incident #1.
        cli = subprocess.run([sys.executable, "-m", "bot", "postmortem", "1"], cwd=tmp_path, env=_env(),
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert "llm-gateway" in cli.stdout
        assert not (tmp_path / "warroom.db").exists()

    with demo(tmp_path, "--keep") as kept:
        assert "kept (--keep)" in kept["text"]
        assert [i["id"] for i in httpx.get(f"{kept['warroom']}/api/incidents", headers=AUTH, timeout=10).json()] == [1]
        assert incident["channel_id"] in channels(kept["emulator"])

    with demo(tmp_path) as fresh:
        assert "a fresh database and emulator" in fresh["text"]
        renewed = wait_until(lambda: (i := httpx.get(f"{fresh['warroom']}/api/incidents", headers=AUTH,
                                                     timeout=10).json()) and i[0].get("channel_id") and i,
                             timeout=30, what="the fresh incident's channel")
        assert [i["id"] for i in renewed] == [1]
        assert renewed[0]["channel_id"] in channels(fresh["emulator"])
