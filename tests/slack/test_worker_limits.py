"""The worker never waits in line: Slack's "not now" puts a row back and the worker goes on with
the others, a person's card update goes before cosmetic work, and a burst of alerts updates a
card once. The worker is driven here by hand (`Worker.run_once`, `Worker.drain`), so the order
of Slack calls is the worker's, not a race."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.clock import as_utc, utcnow
from bot.effects import PostMessage
from bot.emulator import Emulator
from bot.incidents import service
from bot.store import outbox
from bot.store.db import transaction
from bot.store.models import OutboxItem
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import INCIDENTS, PRIYA, SlackHarness, running
from tests.support import wait_for

Held = Callable[..., SlackHarness]


@pytest.fixture
def held(database_url: str, _emulator: Emulator) -> Iterator[Held]:
    """warroom against the emulator with no background worker: the test runs it. Settings
    overrides as keyword arguments."""
    with ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(running(database_url, _emulator, WARROOM_WORKER=False,
                                                              **overrides))


def two_rooms(slack: SlackHarness) -> tuple[int, str, int, str]:
    first = slack.fire(am_payload([am_alert("a")], group="one"))
    second = slack.fire(am_payload([am_alert("a")], group="two"))
    slack.warroom.worker.drain()
    return first, slack.room(first), second, slack.room(second)


def say(slack: SlackHarness, *lines: tuple[int, str]) -> None:
    """Queue a message per (incident, text), in this order, as one change."""
    with transaction(slack.runtime.engine) as session:
        for incident_id, text in lines:
            outbox.enqueue(session, PostMessage(incident_id=incident_id, text=text), incident_id=incident_id)


def message_row(slack: SlackHarness, text: str) -> OutboxItem:
    with transaction(slack.runtime.engine) as session:
        rows = session.execute(select(OutboxItem).where(OutboxItem.kind == "slack.message")).scalars()
        return next(row for row in rows if row.payload["text"] == text)


def texts(slack: SlackHarness, channel: str) -> list[str]:
    return [m.text for m in slack.messages(channel)]


def test_a_429_on_one_rooms_post_does_not_hold_up_another_incidents_post(held: Held) -> None:
    slack = held()
    first, first_channel, second, second_channel = two_rooms(slack)
    slack.emu.inject_fault("chat.postMessage", kind="429", retry_after=30)
    say(slack, (first, "first room's news"), (second, "second room's news"))  # the first room's is older

    slack.warroom.worker.drain()  # returns: nothing waited 30 s

    assert "second room's news" in texts(slack, second_channel)
    assert "first room's news" not in texts(slack, first_channel)
    posts = [(c.args.get("channel"), c.status) for c in slack.emu.calls_to("chat.postMessage")[-2:]]
    assert posts == [(first_channel, 429), (second_channel, 200)]
    waiting = message_row(slack, "first room's news")
    assert (waiting.status, waiting.attempts) == ("pending", 0)  # put back, not a failed attempt
    # Slack refused it: nothing is half-done, so its next run posts without a history look-up first.
    assert waiting.last_error is None
    assert as_utc(waiting.next_attempt_at) > utcnow() + timedelta(seconds=25)  # Slack's Retry-After


def test_the_rate_limited_post_goes_after_retry_after_and_is_not_counted_as_a_failure(held: Held) -> None:
    slack = held()
    first, first_channel, _, _ = two_rooms(slack)
    slack.emu.inject_fault("chat.postMessage", kind="429", retry_after=1)
    say(slack, (first, "after the limit"))
    slack.warroom.worker.drain()
    assert "after the limit" not in texts(slack, first_channel)

    def posted() -> bool:
        slack.warroom.worker.drain()  # the row is not due before Retry-After: nothing is called
        return "after the limit" in texts(slack, first_channel)
    wait_for(posted, timeout=10, what="the post after Retry-After")

    tries = [c for c in slack.emu.calls_to("chat.postMessage") if c.args.get("channel") == first_channel
             and "after the limit" in str(c.args.get("text"))]
    assert [c.status for c in tries] == [429, 200]  # warroom kept off Slack until Retry-After
    assert tries[1].time - tries[0].time >= 1
    looked_up = [c for c in slack.emu.calls_to("conversations.history") if c.args.get("channel") == first_channel
                 and c.time >= tries[0].time]
    assert looked_up == []  # a refused post was not made: no look-up for it before posting again
    assert texts(slack, first_channel).count("after the limit") == 1
    row = message_row(slack, "after the limit")
    assert (row.status, row.attempts) == ("done", 1)


def test_a_call_over_warroom_s_own_budget_is_deferred_without_calling_slack(held: Held) -> None:
    """At Slack's real budgets a channel takes a short burst of posts; the rest wait their turn
    as rows, and Slack never sees a call it would refuse."""
    slack = held(WARROOM_SLACK_BUDGET_SCALE=1)
    first, first_channel, _, _ = two_rooms(slack)
    say(slack, *[(first, f"line {n}") for n in range(6)])
    before = len(slack.emu.calls_to("chat.postMessage"))

    def some_posted() -> bool:  # the room's set-up spent the channel's burst: a line a second
        slack.warroom.worker.drain()
        return any(t.startswith("line ") for t in texts(slack, first_channel))
    wait_for(some_posted, timeout=10, what="the first lines")

    made = slack.emu.calls_to("chat.postMessage")[before:]
    assert made and all(c.status == 200 for c in made)
    posted = [t for t in texts(slack, first_channel) if t.startswith("line ")]
    assert posted == [f"line {n}" for n in range(len(posted))] and len(posted) < 6  # in order, the rest wait
    waiting = message_row(slack, f"line {len(posted)}")
    assert (waiting.status, waiting.attempts) == ("pending", 0)


def test_an_acks_card_update_is_claimed_before_a_backlog_of_cosmetic_rows(held: Held) -> None:
    slack = held()
    incidents = [slack.fire(am_payload([am_alert("a")], group=f"backlog-{n}")) for n in range(4)]
    slack.warroom.worker.drain()
    channels = [slack.room(i) for i in incidents]
    for n in range(1, len(incidents)):  # news on the others: cosmetic card refreshes
        slack.fire(am_payload([am_alert("a"), am_alert(f"b{n}")], group=f"backlog-{n}"))
    slack.command("/incident ack", user=PRIYA, channel=channels[0])
    with transaction(slack.runtime.engine) as session:
        cosmetic = session.execute(select(OutboxItem).where(OutboxItem.status == "pending",
                                                            OutboxItem.kind == "slack.card")).scalars().all()
    assert len(cosmetic) >= 4  # the news' refreshes, and the ack's
    updates = len(slack.emu.calls_to("chat.update"))

    slack.warroom.worker.run_once(limit=1)

    made = slack.emu.calls_to("chat.update")[updates:]  # the ack's card, then its announcement
    assert made and made[0].args["channel"] == channels[0] and "Acknowledged" in str(made[0].args.get("blocks"))
    assert all(c.args["channel"] in (channels[0], INCIDENTS) for c in made)  # no other room's card yet


def test_a_burst_of_alert_driven_refreshes_makes_one_card_update(held: Held) -> None:
    slack = held(WARROOM_CARD_REFRESH_SECONDS=10)
    incident_id = slack.fire(am_payload([am_alert("a")]))
    slack.warroom.worker.drain()
    channel = slack.room(incident_id)
    card = slack.card(channel)

    def card_updates() -> list[Any]:
        return [c for c in slack.emu.calls_to("chat.update") if c.args.get("ts") == card.ts]

    def card_rows() -> list[OutboxItem]:
        with transaction(slack.runtime.engine) as session:
            return list(session.execute(select(OutboxItem).where(
                OutboxItem.kind == "slack.card", OutboxItem.incident_id == incident_id,
                OutboxItem.status != "done")).scalars())

    alerts = [am_alert("a")]
    for n in range(5):
        alerts.append(am_alert(f"b{n}"))
        slack.fire(am_payload(alerts))
    assert len(card_rows()) == 1  # five refreshes queued, one row
    slack.warroom.worker.drain()
    assert len(card_updates()) == 1 and "6 firing" in str(card_updates()[-1].args["blocks"])

    for n in range(3):  # more news within ten seconds of that update: it waits, merged
        alerts.append(am_alert(f"c{n}"))
        slack.fire(am_payload(alerts))
    slack.warroom.worker.drain()
    (waiting,) = card_rows()
    assert len(card_updates()) == 1
    assert (waiting.status, waiting.attempts) == ("pending", 0)
    assert as_utc(waiting.next_attempt_at) > utcnow() + timedelta(seconds=5)

    slack.command("/incident ack", user=PRIYA, channel=channel)  # a person's: at once
    slack.warroom.worker.drain()
    assert len(card_updates()) == 2 and "Acknowledged" in str(card_updates()[-1].args["blocks"])

    with transaction(slack.runtime.engine) as session:  # ten seconds pass
        session.execute(update(OutboxItem).where(OutboxItem.kind == "slack.card", OutboxItem.status == "done")
                        .values(done_at=utcnow() - timedelta(seconds=11)))
        session.execute(update(OutboxItem).where(OutboxItem.id == waiting.id).values(next_attempt_at=utcnow()))
    slack.warroom.worker.drain()
    assert len(card_updates()) == 3 and "9 firing" in str(card_updates()[-1].args["blocks"])
    assert card_rows() == []


def test_a_slow_call_for_one_room_does_not_delay_another_room(held: Held) -> None:
    """Slack takes seconds to update the first room's card; the other worker threads post in both
    rooms meanwhile: a line does not wait for a card update (they are rows of different priorities),
    and the other room waits for nothing."""
    slack = held(WARROOM_WORKER_THREADS=3)
    first, first_channel, second, second_channel = two_rooms(slack)
    slack.emu.inject_fault("chat.update", kind="delay", delay_s=6)
    with transaction(slack.runtime.engine) as session:
        outbox.enqueue_many(session, [service.card_effects(first, urgent=True)[0]])
    say(slack, (first, "after the card"), (second, "quick one"))
    worker = slack.warroom.worker
    worker.start()
    try:
        wait_for(lambda: "quick one" in texts(slack, second_channel), timeout=5, what="the other room's post")
        wait_for(lambda: "after the card" in texts(slack, first_channel), timeout=5,
                 what="the slow room's line, while its card is still being updated")
    finally:
        worker.stop()


def test_a_room_whose_pin_is_rate_limited_is_usable_at_once_and_pinned_later(held: Held) -> None:
    """Only a cosmetic step waits for Slack (pins.add is tier 2): the room counts as set up, its
    lines go out, and a cosmetic row pins the runbook once Retry-After has passed."""
    slack = held()
    slack.emu.inject_fault("pins.add", kind="429", retry_after=2)
    incident = slack.fire(am_payload([am_alert("a")], group="pinless"))
    slack.warroom.worker.drain()
    channel = slack.room(incident)
    say(slack, (incident, "news while the pin waits"))
    slack.warroom.worker.drain()  # returns: nothing waited 30 s

    assert "news while the pin waits" in texts(slack, channel)
    assert "pin" not in slack.steps_done(incident)
    with transaction(slack.runtime.engine) as session:
        [rest] = session.execute(select(OutboxItem).where(OutboxItem.kind == "slack.room",
                                                          OutboxItem.status == "pending")).scalars()
        assert rest.incident_id is None and as_utc(rest.next_attempt_at) > utcnow()

    def pinned() -> bool:
        slack.warroom.worker.drain()  # the row is not due before Retry-After: nothing is called
        return "pin" in slack.steps_done(incident)
    # After a 429 warroom's own count starts the method from empty, and a cosmetic call waits until a
    # quarter of its minute is back (the share kept for people): 15 s for any tier.
    wait_for(pinned, timeout=40, what="the pin after Retry-After")
    assert [c.status for c in slack.emu.calls_to("pins.add")] == [429, 200]


def test_the_card_is_posted_only_once_the_owners_are_invited_even_when_the_invite_waits(held: Held) -> None:
    """A rate-limited invitation holds the room's set-up: a card in a channel its owners are not in
    yet is one they may not act on (acting takes the channel's membership)."""
    slack = held()
    slack.emu.inject_fault("conversations.invite", kind="429", retry_after=1)
    incident = slack.fire(am_payload([am_alert("a")], group="invite-waits"))
    slack.warroom.worker.drain()
    assert "card" not in slack.steps_done(incident)

    def set_up() -> bool:
        slack.warroom.worker.drain()
        return "card" in slack.steps_done(incident)
    wait_for(set_up, timeout=40, what="the room after the invitation")  # 15 s: see the pin's test
    invites = slack.emu.calls_to("conversations.invite")
    assert [c.status for c in invites] == [429, 200]
    card = next(c for c in slack.emu.calls_to("chat.postMessage") if c.args.get("channel") == slack.room(incident))
    assert card.time >= invites[-1].time
