"""Storm mode's reminders: incidents due for the same people in one scheduler run ping them once,
in the incidents channel, with the incidents listed; one incident alone keeps its own reminder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot import scheduler
from bot.clock import as_utc
from bot.emulator import Emulator
from bot.incidents import service
from bot.store.db import transaction
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import ROOT
from tests.slack.conftest import INCIDENTS, PRIYA, SlackHarness, running

ESCALATE, NUDGE = "escalate-unacknowledged", "nudge-status-updates"


@pytest.fixture
def slack(database_url: str, _emulator: Emulator, tmp_path: Path) -> Iterator[SlackHarness]:
    """The `slack` harness, with the shipped runbooks but latency owned by another group."""
    runbooks = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", runbooks)
    latency = runbooks / "latency-p99.md"
    latency.write_text(latency.read_text().replace('owners: ["@ml-oncall"]', 'owners: ["@perf-oncall"]'))
    with running(database_url, _emulator, WARROOM_RUNBOOKS_DIR=runbooks) as harness:
        yield harness


def open_incidents(slack: SlackHarness, slo: str, count: int) -> list[int]:
    """``count`` incidents of one SLO (one runbook), each its own service and room."""
    ids = [slack.fire(am_payload([am_alert(service=f"{slo}-svc-{i}", slo=slo)], group=f"{slo}-{i}"))
           for i in range(count)]
    for incident_id in ids:
        slack.room(incident_id)
    slack.settle()
    return ids


def tick(slack: SlackHarness, job: str, now: datetime) -> int:
    """One run of a scheduler job at ``now``, then whatever it queued, performed."""
    queued = scheduler.run_job(slack.warroom, job, now=now)
    slack.settle()
    return queued


def after(slack: SlackHarness, ids: list[int], minutes: int) -> datetime:
    """``minutes`` after the last of ``ids`` opened: every one of them is due."""
    with transaction(slack.runtime.engine) as session:
        opened = max(as_utc(service.get(session, i).opened_at) for i in ids)
    assert opened is not None
    return opened + timedelta(minutes=minutes)


def reminders_in(slack: SlackHarness, channel: str) -> list[str]:
    return [m.text for m in slack.messages(channel) if m.text.startswith("⏰")]


def reminder_lines(slack: SlackHarness, incident_id: int) -> list[str]:
    return [e["text"] for e in slack.incident(incident_id)["timeline"] if e["kind"] == "reminder"]


def test_five_unacknowledged_incidents_with_the_same_owners_are_one_ping_in_the_incidents_channel(slack):
    ids = open_incidents(slack, "hallucination-rate", 5)
    period = slack.runtime.settings.ack_escalation_minutes
    now = after(slack, ids, period)

    assert tick(slack, ESCALATE, now) == 1

    (digest,) = reminders_in(slack, INCIDENTS)
    assert digest.count("@ml-oncall") == 1
    assert "5 unacknowledged incidents: " in digest and "/incident ack" in digest
    for incident_id in ids:
        channel = slack.incident(incident_id)["channel_id"]
        assert f"#{incident_id} " in digest and f"<#{channel}>" in digest  # each listed, its room linked
        assert reminders_in(slack, channel) == []  # nothing in the rooms: the owners are in every one
        (line,) = reminder_lines(slack, incident_id)  # the postmortem still shows the escalation
        assert "Not acknowledged after" in line and "this and 4 other incident(s)" in line

    posts = len(slack.emu.calls_to("chat.postMessage"))
    assert tick(slack, ESCALATE, now) == 0  # the same period again: nothing new
    assert tick(slack, ESCALATE, now + timedelta(minutes=period - 1)) == 0
    assert len(slack.emu.calls_to("chat.postMessage")) == posts
    assert all(len(reminder_lines(slack, i)) == 1 for i in ids)

    assert tick(slack, ESCALATE, now + timedelta(minutes=period)) == 1  # the next level: one more digest
    assert len(reminders_in(slack, INCIDENTS)) == 2 and "level 2" in reminders_in(slack, INCIDENTS)[-1]


def test_one_unacknowledged_incident_is_reminded_in_its_own_channel_as_before(slack):
    (incident_id,) = open_incidents(slack, "hallucination-rate", 1)
    channel = slack.incident(incident_id)["channel_id"]
    now = after(slack, [incident_id], slack.runtime.settings.ack_escalation_minutes)

    assert tick(slack, ESCALATE, now) == 1

    assert reminders_in(slack, channel) == [
        "⏰ @ml-oncall Not acknowledged after 10 min: paging the owners again. Acknowledge with `/incident ack`."]
    assert reminders_in(slack, INCIDENTS) == []
    assert reminder_lines(slack, incident_id) == [
        "Not acknowledged after 10 min: paging the owners again. Acknowledge with `/incident ack`."]
    assert tick(slack, ESCALATE, now) == 0


def test_two_owner_groups_get_one_message_each(slack):
    ml = open_incidents(slack, "hallucination-rate", 2)
    perf = open_incidents(slack, "latency", 3)

    assert tick(slack, ESCALATE, after(slack, ml + perf, slack.runtime.settings.ack_escalation_minutes)) == 2

    digests = reminders_in(slack, INCIDENTS)
    assert len(digests) == 2
    (to_ml,) = [d for d in digests if "@ml-oncall" in d]
    (to_perf,) = [d for d in digests if "@perf-oncall" in d]
    assert "@perf-oncall" not in to_ml and "2 unacknowledged incidents" in to_ml
    assert "@ml-oncall" not in to_perf and "3 unacknowledged incidents" in to_perf
    assert all(f"#{i} " in to_ml for i in ml) and all(f"#{i} " in to_perf for i in perf)


def test_a_commander_of_several_silent_incidents_is_nudged_once(slack):
    ids = open_incidents(slack, "hallucination-rate", 3)
    with transaction(slack.runtime.engine) as session:
        for incident_id in ids:
            service.set_commander(session, service.get(session, incident_id), PRIYA, actor=PRIYA)
    slack.settle()

    assert tick(slack, NUDGE, after(slack, ids, 30)) == 1

    (digest,) = reminders_in(slack, INCIDENTS)
    assert digest.startswith(f"⏰ <@{PRIYA}> 3 incidents without a status update: ")
    assert digest.count(f"<@{PRIYA}>") == 1 and "/incident status" in digest
    assert all(len(reminder_lines(slack, i)) == 1 for i in ids)


def test_the_list_stops_after_ten_and_a_title_cannot_ping_anybody():
    from bot.effects import DigestItem, PostReminderDigest
    from bot.slack.reminder_digest import LISTED, Listed, digest_line

    effect = PostReminderDigest(label="unacknowledged incidents", text="Acknowledge each.", mention="owners",
                                incidents=[DigestItem(incident_id=n, minutes=30 - n) for n in range(1, 14)])
    incidents = {n: Listed(number=n, title=f"Spike <@U0EVIL> {n}", severity=2, channel=f"C0{n}")
                 for n in range(1, 14)}
    line = digest_line(effect, incidents, ["@ml-oncall"])
    assert line.startswith("⏰ @ml-oncall 13 unacknowledged incidents: #1 Spike ‹@U0EVIL› 1 (SEV2, 29 min, <#C01>), ")
    assert f"#{LISTED} " in line and f"#{LISTED + 1} " not in line
    assert line.endswith(f" and {13 - LISTED} more. Acknowledge each.")
    assert "<@U0EVIL>" not in line
