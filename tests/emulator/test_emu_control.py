"""Faults from outside Python (the control endpoint, `warroom emulator --fault`), and message metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.emulator import Emulator
from tests.conftest import ROOT
from tests.support import free_port, wait_for


def test_faults_posted_to_the_control_endpoint_meet_the_next_calls(client: WebClient, emu: Emulator) -> None:
    control = f"{emu.base_url}/control/faults"
    response = httpx.post(control, json=[{"method": "chat.postMessage", "kind": "429", "times": 2, "retry_after": 7},
                                         {"method": "conversations.create", "kind": "500"}])
    assert response.status_code == 200
    assert [f["kind"] for f in httpx.get(control).json()["faults"]] == ["429", "500"]

    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C0INCIDENTS", text="not yet")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] in ("7", ["7"])
    with pytest.raises(SlackApiError) as err:
        client.conversations_create(name="inc-a")
    assert err.value.response.status_code == 500
    assert client.chat_postMessage(channel="C0INCIDENTS", text="now")["ok"] is True
    assert [m.text for m in emu.messages("C0INCIDENTS")] == ["now"]
    assert httpx.get(control).json()["faults"] == []


def test_a_timed_out_post_is_posted_and_a_delayed_one_is_posted_late(emu: Emulator) -> None:
    httpx.post(f"{emu.base_url}/control/faults", json={"method": "chat.postMessage", "kind": "timeout", "delay_s": 2})
    impatient = WebClient(token=emu.token, base_url=emu.api_url, timeout=0.3)
    impatient.retry_handlers.clear()
    with pytest.raises(OSError):
        impatient.chat_postMessage(channel="C0INCIDENTS", text="lost answer")
    assert [m.text for m in emu.messages("C0INCIDENTS")] == ["lost answer"]  # already there

    httpx.post(f"{emu.base_url}/control/faults", json={"method": "chat.postMessage", "kind": "delay", "delay_s": 2})
    with pytest.raises(OSError):
        impatient.chat_postMessage(channel="C0INCIDENTS", text="slow")
    assert [m.text for m in emu.messages("C0INCIDENTS")] == ["lost answer"]  # not yet
    emu.wait_for(lambda: len(emu.messages("C0INCIDENTS")) == 2, timeout=5, message="the slow post")


def test_bad_faults_are_refused_with_the_reason(emu: Emulator) -> None:
    control = f"{emu.base_url}/control/faults"
    for body, reason in (({"method": "chat.postMessage", "kind": "boom"}, "unknown fault kind"),
                         ({"kind": "500"}, "method is required"),
                         ({"method": "chat.postMessage", "times": 0}, "times must be at least 1"),
                         ({"method": "chat.postMessage", "colour": "red"}, "unknown field")):
        response = httpx.post(control, json=body)
        assert response.status_code == 400 and reason in response.json()["error"]
    httpx.post(control, json={"method": "pins.add", "kind": "500", "times": 5})
    assert httpx.delete(control).json() == {"faults": []}
    assert httpx.get(control).json() == {"faults": []}


def test_message_metadata_comes_back_only_when_history_asks_for_it(client: WebClient, emu: Emulator) -> None:
    metadata = {"event_type": "warroom_post", "event_payload": {"key": "incident:7:card"}}
    posted = client.chat_postMessage(channel="C0INCIDENTS", text="card", metadata=metadata)
    client.chat_postMessage(channel="C0INCIDENTS", text="reply", thread_ts=posted["ts"], metadata=metadata)
    assert posted["message"]["metadata"] == metadata

    plain = client.conversations_history(channel="C0INCIDENTS")["messages"]
    assert "metadata" not in plain[0]
    full = client.conversations_history(channel="C0INCIDENTS", include_all_metadata=True)["messages"]
    assert full[0]["metadata"] == metadata
    thread = client.conversations_replies(channel="C0INCIDENTS", ts=posted["ts"], include_all_metadata=True)
    assert [m.get("metadata") for m in thread["messages"]] == [metadata, metadata]

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0INCIDENTS", text="x", metadata={"event_type": "has spaces"})
    assert err.value.response["error"] == "invalid_metadata_format"


def test_the_emulator_command_starts_with_faults_from_its_options(tmp_path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.update(PYTHONPATH=str(ROOT), SLACK_BOT_TOKEN="xoxb-rehearsal")
    log = (tmp_path / "emulator.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "emulator", "--port", str(port),
                             "--fault", "chat.postMessage=500x2", "--fault", "conversations.create=429@3"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base), timeout=30, what="the emulator process")
        faults = httpx.get(f"{base}/control/faults").json()["faults"]
        assert [(f["method"], f["kind"], f["times"]) for f in faults] == [
            ("chat.postMessage", "500", 2), ("conversations.create", "429", 1)]
        client = WebClient(token="xoxb-rehearsal", base_url=f"{base}/api/")
        with pytest.raises(SlackApiError) as err:
            client.conversations_create(name="inc-rehearsal")
        assert err.value.response.headers["Retry-After"] in ("3", ["3"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    bad = subprocess.run([sys.executable, "-m", "bot", "emulator", "--fault", "chat.postMessage"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "METHOD=KIND" in bad.stderr


@contextmanager
def emulator_process(log: Path, *flags: str) -> Iterator[WebClient]:
    """`warroom emulator` as a person starts it; a client for its Web API."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.update(PYTHONPATH=str(ROOT), SLACK_BOT_TOKEN="xoxb-rehearsal")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "emulator", "--port", str(port), *flags],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _up(base), timeout=30, what="the emulator process")
            client = WebClient(token="xoxb-rehearsal", base_url=f"{base}/api/")
            client.retry_handlers.clear()  # see every 429 as it comes
            yield client
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def statuses_of_ten_quick_posts(client: WebClient) -> list[int]:
    statuses = []
    for i in range(10):
        try:
            statuses.append(client.chat_postMessage(channel="C0INCIDENTS", text=f"update {i}").status_code)
        except SlackApiError as exc:
            statuses.append(exc.response.status_code)
    return statuses


def test_the_emulator_command_holds_callers_to_slacks_rate_limits_unless_told_not_to(tmp_path) -> None:
    with emulator_process(tmp_path / "limited.log") as client:
        assert 429 in statuses_of_ten_quick_posts(client)  # about one message a second per channel, as on Slack
    assert "Slack's rate limits on" in (tmp_path / "limited.log").read_text()

    with emulator_process(tmp_path / "unlimited.log", "--no-rate-limits") as client:
        assert statuses_of_ten_quick_posts(client) == [200] * 10


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
