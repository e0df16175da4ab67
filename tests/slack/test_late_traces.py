"""Failing traces that arrive after the incident opened reach its room: batched, rate-limited,
with Label buttons, and the card's count follows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.clock import as_utc, utcnow
from bot.effects import PostLateTraces
from bot.emulator import Emulator
from bot.incidents import service
from bot.store.db import transaction
from bot.store.models import OutboxItem
from bot.traces import ingest as traces
from bot.traces.rules import FailureRules
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import ALERT_TOKEN
from tests.slack.conftest import PRIYA, SlackHarness, running
from tests.support import wait_for


@pytest.fixture
def slack_every_second(database_url: str, _emulator: Emulator) -> Iterator[SlackHarness]:
    """The `slack` harness with one trace post per incident per second at most (60 s by default)."""
    with running(database_url, _emulator, WARROOM_TRACES_POST_EVERY_SECONDS=1) as harness:
        yield harness


def failing(prefix: str, n: int, at: datetime) -> list[dict]:
    return [{"request_id": f"{prefix}-{i}", "timestamp": (at - timedelta(seconds=i)).isoformat(),
             "service": "llm-gateway", "bundle_version": "v42", "prompt_hash": f"{prefix}{i % 2}",
             "input": f"Question {prefix}-{i}? write to jane@example.com", "output": "Made-up answer.",
             "hallucination_score": 0.95} for i in range(n)]


def send(slack, events: list[dict]) -> None:
    response = slack.http.post("/api/traces", json=events, headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert response.status_code == 200 and response.json()["accepted"] == len(events), response.text


def posts_about_traces(slack, channel: str) -> list:
    return [m for m in slack.messages(channel) if "failing trace" in m.text]


def card_field(slack, channel: str) -> str:
    return str(slack.card(channel).blocks)


def test_traces_failing_after_the_incident_opened_are_posted_with_label_buttons_and_counted_on_the_card(
        slack_every_second):
    slack = slack_every_second
    now = datetime.now(timezone.utc)
    send(slack, failing("early", 4, now - timedelta(minutes=2)))
    incident_id = slack.fire(am_payload([am_alert("primary-70b", starts=now.isoformat())]))
    channel = slack.room(incident_id)
    wait_for(lambda: posts_about_traces(slack, channel), what="the first failing-traces post")

    send(slack, failing("late", 5, datetime.now(timezone.utc)))
    later = wait_for(lambda: next((m for m in posts_about_traces(slack, channel) if "5 more failing" in m.text), None),
                     what="the post of the later traces")
    assert "since" in later.text and "jane@example.com" not in str(later.blocks)
    labels = [b["accessory"]["value"] for b in later.blocks
              if (b.get("accessory") or {}).get("action_id") == "trace.label"]
    assert labels and all(v.startswith("late-") for v in labels)
    wait_for(lambda: "*Failing traces*\\n9" in card_field(slack, channel), what="the card to count 9 failing traces")

    slack.emu.click(channel, later.ts, "trace.label", labels[0], user=PRIYA)
    wait_for(lambda: next(iter(slack.emu.state.views.values()), None), what="the label form for a late trace")

    send(slack, failing("later", 2, datetime.now(timezone.utc)))
    wait_for(lambda: any("2 more failing" in m.text for m in posts_about_traces(slack, channel)),
             what="the post of the next batch")
    assert [m.text.split(" ")[0] for m in posts_about_traces(slack, channel)] == ["4", "5", "2"]  # each trace once


@pytest.fixture
def engine(database_url: str):
    from bot.store.db import make_engine
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_batches_in_the_same_slot_queue_one_post_due_when_the_slot_ends(engine):
    at = datetime.now(timezone.utc).replace(second=10, microsecond=0) - timedelta(minutes=1)
    with transaction(engine) as session:
        incident = service.declare(session, title="answers made up", severity=2, actor=PRIYA, service="llm-gateway")
        incident_id = incident.id
    rules, queued_from = FailureRules(), utcnow()
    for batch, second in (("a", 2), ("b", 30), ("c", 49)):  # three batches within one minute's slot
        with transaction(engine) as session:
            traces.ingest_traces(session, failing(batch, 3, at + timedelta(seconds=second)),
                                 rules=rules, now=at + timedelta(seconds=second), post_every_s=60)
    with transaction(engine) as session:
        traces.ingest_traces(session, failing("next", 1, at + timedelta(seconds=65)), rules=rules,
                             now=at + timedelta(seconds=65), post_every_s=60)
        rows = list(session.execute(select(OutboxItem).where(OutboxItem.kind == PostLateTraces.kind)
                                    .order_by(OutboxItem.id)).scalars())
    assert [r.payload for r in rows] == [{"incident_id": incident_id}] * 2  # one per slot, not one per batch
    first_due = as_utc(rows[0].next_attempt_at)
    assert first_due - queued_from >= timedelta(seconds=47)  # the first slot's end: its later batches coalesce


def test_the_first_failing_traces_after_a_quiet_open_are_posted_as_since_the_incident_opened(slack_every_second):
    slack = slack_every_second
    incident_id = slack.fire(am_payload([am_alert("primary-70b", starts=datetime.now(timezone.utc).isoformat())]))
    channel = slack.room(incident_id)
    send(slack, failing("late", 3, datetime.now(timezone.utc)))
    post = wait_for(lambda: next(iter(posts_about_traces(slack, channel)), None), what="the failing-traces post")
    assert post.text.startswith("3 failing trace(s) since ") and "more" not in post.text
