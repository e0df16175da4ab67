"""A warroom process killed between "posted" and "recorded", and a database that goes away.

Real processes (``python -m bot serve``, killed by pid with SIGKILL), the emulator on loopback with
faults from its control endpoint, real SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from bot.clock import utcnow
from bot.compose import compose
from bot.emulator import Emulator
from bot.store.db import make_engine, transaction
from bot.store.models import IncidentStep, OutboxItem
from bot.web import create_app
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import ALERT_TOKEN, ROOT, SIGNING_SECRET, _pg_admin, _pg_url
from tests.slack.conftest import INCIDENTS, SlackHarness, slack_settings
from tests.slack.test_exactly_once import announcements, cards, inject, runbooks
from tests.support import ServerThread, free_port, wait_for


class WarroomProcess:
    """``python -m bot serve`` against the emulator: a process that can be killed like a real one."""

    def __init__(self, database_url: str, emu: Emulator, log: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
        env.update({
            "PYTHONPATH": str(ROOT), "WARROOM_ENV": "test", "WARROOM_DATABASE_URL": database_url,
            "WARROOM_ALERT_TOKEN": ALERT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": emu.api_url, "SLACK_BOT_TOKEN": emu.token, "WARROOM_INCIDENTS_CHANNEL": INCIDENTS,
            "WARROOM_RUNBOOKS_DIR": str(ROOT / "runbooks"), "WARROOM_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
            "WARROOM_WORKER": "true", "WARROOM_SCHEDULER": "false",
        })
        self.log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(self.port)],
                                     env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for(self._healthy, timeout=30, what="warroom serve to start")

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, f"warroom exited with {self.proc.returncode}"
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def fire(self, body: dict[str, Any]) -> int:
        response = httpx.post(f"{self.url}/webhooks/alertmanager", json=body, timeout=10,
                              headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
        assert response.status_code == 200, response.text
        return response.json()["incident_id"]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def expire_leases(database_url: str) -> None:
    """What the dead process's lease does on its own after `outbox.CLAIM_SECONDS`, now."""
    engine = make_engine(database_url)
    with transaction(engine) as session:
        session.execute(update(OutboxItem).where(OutboxItem.status == "running").values(claimed_until=utcnow()))
    engine.dispose()


def steps_done(database_url: str, incident_id: int) -> set[str]:
    engine = make_engine(database_url)
    with transaction(engine) as session:
        rows = session.execute(select(IncidentStep).where(IncidentStep.incident_id == incident_id)).scalars()
        done = {r.name for r in rows if r.done_at is not None}
    engine.dispose()
    return done


def test_a_process_killed_after_posting_is_not_followed_by_a_second_post(database_url, _emulator, tmp_path):
    emu = _emulator
    emu.reset()
    view = SlackHarness(emu, None, "")  # type: ignore[arg-type]  (only reads the emulator)

    # The card is posted, and its answer held back: the process is killed while it waits.
    inject(emu, "chat.postMessage", "timeout", delay_s=120)
    first = WarroomProcess(database_url, emu, tmp_path / "first.log")
    try:
        incident_id = first.fire(am_payload([am_alert("a")]))
        channel = wait_for(lambda: next((c.id for c in emu.state.channels.values()
                                         if c.name.endswith("hallucination-rate") and cards(view, c.id)), None),
                           timeout=30, what="the card in the incident channel")
    finally:
        first.kill()
    expire_leases(database_url)

    second = WarroomProcess(database_url, emu, tmp_path / "second.log")
    try:
        wait_for(lambda: "announce" in steps_done(database_url, incident_id), timeout=30, what="the room")
        assert len(cards(view, channel)) == 1
        assert len(runbooks(view, channel)) == 1
        assert len(announcements(view)) == 1

        # A status line, posted and its process killed before it recorded that.
        inject(emu, "chat.postMessage", "timeout", delay_s=120)
        second.fire(am_payload([am_alert("a"), am_alert("b")]))
        wait_for(lambda: [m for m in view.messages(channel) if "new alert(s) firing" in m.text], timeout=30,
                 what="the status line")
    finally:
        second.kill()
    expire_leases(database_url)

    third = WarroomProcess(database_url, emu, tmp_path / "third.log")
    try:
        engine = make_engine(database_url)
        wait_for(lambda: _settled(engine), timeout=30, what="the outbox to drain")
        engine.dispose()
    finally:
        third.stop()
    assert len([m for m in view.messages(channel) if "new alert(s) firing" in m.text]) == 1
    assert len(cards(view, channel)) == 1


def _settled(engine) -> bool:
    from bot.store import outbox
    with transaction(engine) as session:
        return outbox.pending_count(session) == 0


@pytest.fixture
def pg_database_url(pg_template: str) -> Iterator[str]:
    """A throwaway PostgreSQL database: the blip below is PostgreSQL refusing connections."""
    name = f"warroom_blip_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _pg_url(name)
    _pg_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_blip(url: str, seconds: float) -> float:
    """PostgreSQL refuses connections and drops the open ones for ``seconds``; when it came back."""
    name = url.rsplit("/", 1)[1]
    _pg_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    time.sleep(seconds)  # the outage itself, not a wait for a result
    _pg_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    return time.monotonic()


@pytest.mark.parametrize("slow_method", ["conversations.setPurpose", "conversations.setTopic"])
def test_set_up_resumes_within_seconds_of_the_database_coming_back(pg_database_url, _emulator, slow_method):
    """The database goes away while the worker waits for a slow Slack answer: right after the
    channel was created and before it was recorded (setPurpose), or mid-set-up (setTopic). The
    room is finished within seconds of the database coming back, in the one channel it created."""
    emu = _emulator
    emu.reset()
    warroom = compose(slack_settings(pg_database_url, emu))
    runtime = warroom.runtime
    server = ServerThread(create_app(warroom)).start()
    slack = SlackHarness(emu, warroom, server.url)
    try:
        inject(emu, slow_method, "delay", delay_s=1.5)
        incident_id = slack.fire(am_payload([am_alert("a")]))
        wait_for(lambda: [c for c in emu.calls_to("conversations.create") if c.response.get("ok")], timeout=15,
                 what="the channel")
        back = database_blip(pg_database_url, 3)
        slack.room(incident_id, timeout=15)
        assert time.monotonic() - back < 15
        channel = slack.incident(incident_id)["channel_id"]
        assert [c.response["channel"]["id"] for c in emu.calls_to("conversations.create") if c.response.get("ok")] == [
            channel]
        assert len(cards(slack, channel)) == 1 and len(announcements(slack)) == 1
    finally:
        server.stop()
        runtime.engine.dispose()
