"""Exactly once in Slack, whatever fails: lost answers, 500s, slow Slack, a second worker, a database blip.

Real parts: the emulator over HTTP (faults injected through its control endpoint), warroom's
own HTTP server and worker, real SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.compose import compose
from bot.emulator import Emulator
from bot.emulator.state import Channel
from bot.store import outbox
from bot.store.db import make_engine
from bot.web import create_app
from bot.worker import Worker
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import INCIDENTS, SlackHarness, slack_settings
from tests.support import ServerThread, wait_for

IMPATIENT_SECONDS = 1.0  # warroom's Slack timeout in these tests: a "timeout" fault outlasts it


def inject(emu: Emulator, method: str, kind: str, times: int = 1, **extra: Any) -> None:
    """Through the documented control endpoint, as a user rehearsing their set-up would."""
    response = httpx.post(f"{emu.base_url}/control/faults", json={"method": method, "kind": kind, "times": times,
                                                                   **extra})
    assert response.status_code == 200, response.text


@pytest.fixture
def impatient(database_url: str, _emulator: Emulator) -> Iterator[SlackHarness]:
    """warroom against the emulator, giving up on a Slack answer after one second."""
    _emulator.reset()
    warroom = compose(slack_settings(database_url, _emulator, WARROOM_SLACK_TIMEOUT_SECONDS=IMPATIENT_SECONDS))
    runtime = warroom.runtime
    server = ServerThread(create_app(warroom)).start()
    _emulator.bot_url = server.url + "/slack/events"
    yield SlackHarness(_emulator, warroom, server.url)
    server.stop()
    runtime.engine.dispose()


def cards(slack: SlackHarness, channel: str) -> list[Any]:
    return [m for m in slack.messages(channel)
            if any(b.get("block_id", "").startswith("card:") for b in m.blocks or [])]


def announcements(slack: SlackHarness) -> list[Any]:
    """The announcements in #incidents: posted as "New incident: …", then edited in place by every
    card refresh to the card's own text ("… — <status>, N alert(s) firing")."""
    return [m for m in slack.messages(INCIDENTS)
            if m.text.startswith("New incident") or m.text.endswith("alert(s) firing")]


def runbooks(slack: SlackHarness, channel: str) -> list[Any]:
    return [m for m in slack.messages(channel) if m.text.startswith("Runbook:")]


def test_a_500_on_create_never_hands_a_second_incident_the_first_ones_channel(slack_dated_names):
    slack = slack_dated_names  # both incidents ask for the same name first
    first = slack.fire(am_payload([am_alert("a")], group="one"))
    first_channel = slack.room(first)
    # Every try of the second incident's first name fails with a 500 (slack-sdk retries twice):
    # the name it asked for is then taken, by the first incident's channel.
    inject(slack.emu, "conversations.create", "500", times=3)
    second = slack.fire(am_payload([am_alert("a")], group="two"))
    second_channel = slack.room(second, timeout=20)
    assert second_channel != first_channel
    assert slack.emu.state.channels[second_channel].name.endswith(f"-{second}")
    before = slack.incident(first)["status"]
    slack.command("/incident ack", channel=second_channel)  # acts on the second incident only
    wait_for(lambda: slack.incident(second)["status"] == "acknowledged", timeout=10, what="the ack")
    assert slack.incident(first)["status"] == before


def test_a_channel_created_but_not_marked_is_finished_by_its_own_incident(slack):
    """conversations.create worked; marking it failed: the retry marks that channel and uses it."""
    inject(slack.emu, "conversations.setPurpose", "500", times=3)
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel_id = slack.room(incident_id, timeout=20)
    assert len([c for c in slack.emu.calls_to("conversations.create") if c.response.get("ok")]) == 1
    assert f"incident:{incident_id})" in slack.emu.state.channels[channel_id].purpose


def test_an_unmarked_channel_with_the_same_name_is_not_adopted(slack):
    """Someone (or another warroom) made a channel with the name warroom tried and lost the answer for."""
    from bot.store.db import transaction
    from bot.store.models import IncidentStep

    inject(slack.emu, "conversations.create", "500", times=3)
    incident_id = slack.fire(am_payload([am_alert("a")]))
    wait_for(lambda: slack.emu.calls_to("conversations.create"), what="the first create")
    with transaction(slack.runtime.engine) as session:
        intended = wait_for(lambda: _intended(session, incident_id, IncidentStep), what="the intended name")
    with slack.emu.state.lock:
        slack.emu.state.channels["C0OTHER"] = Channel("C0OTHER", intended, members=[slack.emu.state.bot_user_id])
    channel_id = slack.room(incident_id, timeout=20)
    assert channel_id != "C0OTHER"


def _intended(session, incident_id, model) -> str | None:
    session.expire_all()
    step = session.execute(select(model).where(model.incident_id == incident_id,
                                               model.name == "channel")).scalar_one_or_none()
    return (step.result or {}).get("intended") if step else None


def test_posts_whose_answers_time_out_appear_once(impatient):
    slack = impatient
    # The card, the runbook and the announcement are each posted, and each answer comes too late.
    inject(slack.emu, "chat.postMessage", "timeout", times=3, delay_s=IMPATIENT_SECONDS + 1)
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel_id = slack.room(incident_id, timeout=30)
    slack.settle(timeout=30)
    assert len(cards(slack, channel_id)) == 1
    assert len(runbooks(slack, channel_id)) == 1
    assert len(announcements(slack)) == 1
    assert slack.card(channel_id).ts in slack.emu.state.channels[channel_id].pins

    inject(slack.emu, "chat.postMessage", "timeout", times=1, delay_s=IMPATIENT_SECONDS + 1)
    slack.fire(am_payload([am_alert("a"), am_alert("b")]))
    slack.settle(timeout=30)
    lines = [m for m in slack.messages(channel_id) if "new alert(s) firing" in m.text]
    assert len(lines) == 1


def test_a_post_retried_by_the_outbox_after_a_lost_answer_appears_once(impatient):
    """Every try within one run loses its answer: the run fails, the outbox retries, and the
    retry finds the post instead of making another."""
    slack = impatient
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel_id = slack.room(incident_id)
    slack.settle()
    inject(slack.emu, "chat.postMessage", "timeout", times=1, delay_s=IMPATIENT_SECONDS + 1)
    inject(slack.emu, "conversations.history", "500", times=3)  # the look-up after it fails too
    slack.fire(am_payload([am_alert("a"), am_alert("b")]))
    slack.settle(timeout=30)
    lines = [m for m in slack.messages(channel_id) if "new alert(s) firing" in m.text]
    assert len(lines) == 1


def test_a_second_worker_never_runs_what_a_slow_first_one_holds(slack, database_url, monkeypatch):
    """Slack answers posts in 1.5 s, longer than the (shortened) lease: the holder renews it, and
    the second worker, polling all along, never takes a row that is being performed."""
    monkeypatch.setattr(outbox, "CLAIM_SECONDS", 1.0)
    second_engine = make_engine(database_url)
    second = Worker(second_engine, slack.warroom.worker.handlers, poll_seconds=0.1)
    second.start()
    try:
        inject(slack.emu, "chat.postMessage", "delay", times=30, delay_s=1.5)
        ids = [slack.fire(am_payload([am_alert("a")], group=f"slow-{i}")) for i in range(3)]
        channels = [slack.room(i, timeout=60) for i in ids]
        slack.settle(timeout=60)
    finally:
        second.stop()
        second_engine.dispose()
        slack.emu.faults.clear()
    for channel in channels:
        assert len(cards(slack, channel)) == 1
        assert len(runbooks(slack, channel)) == 1
    assert len(announcements(slack)) == 3


def test_a_worker_whose_row_was_taken_over_stops_before_its_next_step(slack, caplog):
    """While Slack is slow to set the topic, the row's lease passes to another worker: the first
    one finishes the call it is in, then does nothing more (no card, no announcement), and leaves
    the row to its new holder."""
    from sqlalchemy import update

    from bot.clock import utcnow
    from bot.store.db import transaction
    from bot.store.models import OutboxItem

    caplog.set_level("WARNING", logger="bot.worker")
    inject(slack.emu, "conversations.setTopic", "delay", delay_s=1.5)
    incident_id = slack.fire(am_payload([am_alert("a")]))
    wait_for(lambda: "channel" in slack.steps_done(incident_id), timeout=10, what="the channel")
    with transaction(slack.runtime.engine) as session:
        session.execute(update(OutboxItem).where(OutboxItem.kind == "slack.room", OutboxItem.status == "running")
                        .values(claimed_by="another-worker", claimed_until=utcnow() + timedelta(minutes=5)))
    wait_for(lambda: any("left to its new holder" in r.getMessage() for r in caplog.records), timeout=10,
             what="the worker to give the row up")
    channel = slack.incident(incident_id)["channel_id"]
    assert cards(slack, channel) == [] and announcements(slack) == []
    with transaction(slack.runtime.engine) as session:
        row = session.execute(select(OutboxItem).where(OutboxItem.kind == "slack.room")).scalar_one()
        assert (row.status, row.claimed_by) == ("running", "another-worker")
