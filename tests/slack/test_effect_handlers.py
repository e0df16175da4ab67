"""Every outbox effect kind has exactly one handler, or warroom does not start; a stored row that
cannot be read back as its effect fails once, naming the row, and the failure is reported."""

from __future__ import annotations

from typing import ClassVar

import pytest
from sqlalchemy import select

from bot import effects
from bot.clock import utcnow
from bot.compose import compose
from bot.effects import Handlers, HandlerSetError, RefreshCard
from bot.slack.late_traces import TracePoster
from bot.store.db import transaction
from bot.store.models import OutboxItem, TimelineEvent
from tests.conftest import make_settings
from tests.slack.conftest import INCIDENTS, SlackHarness
from tests.support import wait_for


class PageTheMoon(effects.Effect):
    """A kind someone added without writing its handler."""

    kind: ClassVar[str] = "moon.page"
    incident_id: int


def test_warroom_refuses_to_start_when_an_effect_kind_has_no_handler(database_url: str, monkeypatch) -> None:
    monkeypatch.setattr(effects, "ALL", (*effects.ALL, PageTheMoon))
    with pytest.raises(HandlerSetError, match=r"no handler for the outbox effect.*'moon.page'"):
        compose(make_settings(database_url, WARROOM_WORKER=True))


def test_warroom_refuses_to_start_when_two_handlers_claim_one_kind(database_url: str, monkeypatch) -> None:
    real = TracePoster.handlers

    def and_the_card_too(self: TracePoster) -> Handlers:
        handlers = real(self)
        handlers.on(RefreshCard, lambda effect: None)  # the card sync already handles it
        return handlers

    monkeypatch.setattr(TracePoster, "handlers", and_the_card_too)
    with pytest.raises(HandlerSetError, match=r"two handlers for the outbox effect 'slack.card'"):
        compose(make_settings(database_url, WARROOM_WORKER=True))


def store(slack: SlackHarness, kind: str, payload: object, key: str, incident_id: int | None = None) -> int:
    """A row as an older or a broken writer might have left it in the database."""
    with transaction(slack.runtime.engine) as session:
        row = OutboxItem(kind=kind, payload=payload, dedupe_key=key, incident_id=incident_id, status="pending",
                         attempts=0, next_attempt_at=utcnow(), created_at=utcnow())
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def test_a_row_that_is_not_an_effect_fails_at_once_naming_the_row(slack: SlackHarness, opened: tuple[int, str]) -> None:
    incident_id, channel = opened
    slack.settle()
    malformed = store(slack, "slack.line", {"incident_id": incident_id, "event": 1}, "broken-line", incident_id)
    unknown = store(slack, "slack.carrier_pigeon", {"text": "coo"}, "pigeon")
    slack.runtime.wake.set()
    slack.settle()
    with transaction(slack.runtime.engine) as session:
        rows = {r.id: r for r in session.execute(select(OutboxItem).where(OutboxItem.id.in_([malformed, unknown])))
                .scalars()}
        notes = list(session.execute(select(TimelineEvent.text).where(
            TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "effect_failed")).scalars())
    for row in rows.values():
        assert (row.status, row.attempts) == ("failed", 1)  # not retried: trying again cannot help
    assert f"outbox #{malformed} (slack.line)" in rows[malformed].last_error
    assert "event_id" in rows[malformed].last_error
    assert f"outbox #{unknown} (slack.carrier_pigeon)" in rows[unknown].last_error
    assert any("slack.line" in note for note in notes)  # reported where people look
    # The notices are posted just after the rows are marked failed (settle may return between).
    wait_for(lambda: any("slack.line" in m.text for m in slack.messages(channel)), what="the notice in the room")
    wait_for(lambda: any("slack.carrier_pigeon" in m.text for m in slack.messages(INCIDENTS)),
             what="the notice in #incidents")
