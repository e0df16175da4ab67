"""Which outbox row a worker takes next (bot.store.outbox.claim), on both databases: the most
urgent first, one incident's rows one at a time and, at one priority, in the order queued."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.effects import PostMessage, Priority, RefreshCard
from bot.incidents import service
from bot.runtime import Runtime
from bot.store import outbox
from bot.store.db import transaction
from bot.store.models import OutboxItem


@pytest.fixture
def incidents(runtime: Runtime) -> list[int]:
    """Three incidents, their room set-up rows already performed."""
    with transaction(runtime.engine) as session:
        ids = [service.declare(session, title=f"incident {n}", severity=2, actor="U0PRIYA").id for n in range(3)]
    while _claim_and_finish(runtime):
        pass
    return [i for i in ids if i is not None]


def _claim(runtime: Runtime, limit: int = 1) -> list[tuple[int, str, dict]]:
    with transaction(runtime.engine) as session:
        return [(row.id, row.kind, dict(row.payload)) for row in outbox.claim(session, limit=limit, owner="w")]


def _finish(runtime: Runtime, item_id: int) -> None:
    with transaction(runtime.engine) as session:
        outbox.complete(session, item_id)


def _claim_and_finish(runtime: Runtime) -> list[tuple[int, str, dict]]:
    claimed = _claim(runtime)
    for item_id, _, _ in claimed:
        _finish(runtime, item_id)
    return claimed


def _say(incident_id: int, text: str) -> outbox.Queued:
    return outbox.Queued(PostMessage(incident_id=incident_id, text=text), incident_id=incident_id)


def test_a_persons_card_update_goes_before_a_backlog_of_cosmetic_and_posted_rows(runtime, incidents) -> None:
    first, second, third = incidents
    with transaction(runtime.engine) as session:
        outbox.enqueue_many(session, [service.card_effect(i) for i in (second, third)]
                            + [_say(second, "line"), _say(third, "line")])
    with transaction(runtime.engine) as session:
        service.acknowledge(session, service.get(session, first), actor="U0PRIYA")

    (_, kind, payload), = _claim(runtime)

    assert (kind, payload["incident_id"]) == ("slack.card", first)


def test_rows_of_one_priority_keep_their_order_and_an_urgent_one_overtakes_them(runtime, incidents) -> None:
    first = incidents[0]
    with transaction(runtime.engine) as session:
        outbox.enqueue_many(session, [_say(first, "one"), _say(first, "two"), service.card_effect(first),
                                      service.card_effects(first, urgent=True)[0], _say(first, "three")])
    order = []
    while claimed := _claim_and_finish(runtime):
        order.extend((kind, payload.get("text")) for _, kind, payload in claimed)
    assert order == [("slack.card", None), ("slack.message", "one"), ("slack.message", "two"),
                     ("slack.message", "three"), ("slack.card", None)]


def test_a_person_s_card_update_does_not_wait_for_a_running_line_but_the_next_line_does(runtime, incidents) -> None:
    first, second, _ = incidents
    with transaction(runtime.engine) as session:
        outbox.enqueue_many(session, [_say(first, "slow"), _say(second, "other")])
    (slow_id, _, _), = _claim(runtime)
    with transaction(runtime.engine) as session:
        outbox.enqueue_many(session, [service.card_effects(first, urgent=True)[0], _say(first, "next")])

    held = _claim(runtime, limit=10)

    # The card shows the current state whatever lines are still going out; the first incident's
    # next line waits for the running one, so lines stay in order.
    assert sorted((kind, payload.get("text")) for _, kind, payload in held) == [
        ("slack.card", None), ("slack.message", "other")]
    _finish(runtime, slow_id)
    (_, kind, payload), = _claim(runtime)
    assert (kind, payload["text"]) == ("slack.message", "next")


def test_a_deferred_row_is_put_back_for_later_without_counting_an_attempt(runtime, incidents) -> None:
    with transaction(runtime.engine) as session:
        outbox.enqueue_many(session, [_say(incidents[0], "limited"), _say(incidents[0], "after it")])
    (item_id, _, _), = _claim(runtime)
    with transaction(runtime.engine) as session:
        assert outbox.defer(session, item_id, 30, "deferred: Slack answered 429", owner="w")

    assert _claim(runtime, limit=10) == []  # the later line of its incident waits for it
    with transaction(runtime.engine) as session:
        row = session.get(OutboxItem, item_id)
        assert row is not None and (row.status, row.attempts) == ("pending", 0)
        assert outbox.due_count(session) == 2  # waiting for Slack is work waiting


def test_copies_of_a_merge_row_queued_apart_are_one_row(runtime, incidents) -> None:
    first = incidents[0]
    for _ in range(3):
        with transaction(runtime.engine) as session:
            service.refresh_card(session, service.get(session, first))  # not a person: merged
    with transaction(runtime.engine) as session:
        rows = session.execute(select(OutboxItem).where(OutboxItem.kind == RefreshCard.kind,
                                                        OutboxItem.status == "pending")).scalars().all()
    assert [(row.incident_id, row.priority) for row in rows] == [(first, Priority.COSMETIC)]

    (item_id, _, _), = _claim(runtime)
    with transaction(runtime.engine) as session:
        assert outbox.release_merged(session, item_id, 10, owner="w") == 0  # nothing ran before: go
    with transaction(runtime.engine) as session:  # a change from now on queues a new row
        service.refresh_card(session, service.get(session, first))
    _finish(runtime, item_id)
    (next_id, _, _), = _claim(runtime)
    with transaction(runtime.engine) as session:
        wait = outbox.release_merged(session, next_id, 10, owner="w")
    assert 9 < wait <= 10  # the last one ran just now: this one waits, still merging
    with transaction(runtime.engine) as session:
        row = session.get(OutboxItem, next_id)
        assert row is not None and (row.status, row.attempts) == ("pending", 0)
        assert outbox.is_merge_key(row.dedupe_key)
