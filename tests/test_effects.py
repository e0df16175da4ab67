"""Effect types: rows written before the types existed still decode, and one handler per kind."""

from __future__ import annotations

from typing import Any

import pytest

from bot import effects
from bot.effects import Handlers, HandlerSetError, MalformedEffect, UnknownEffect

# Payloads exactly as the enqueue sites wrote them before effects were typed (kind, payload).
STORED: list[tuple[str, dict[str, Any]]] = [
    ("slack.room", {"incident_id": 7}),
    ("slack.card", {"incident_id": 7}),
    ("slack.line", {"incident_id": 7, "event_id": 31}),
    ("slack.reminder", {"incident_id": 7, "text": "status update?", "mention": "commander", "level": 1}),
    ("slack.reminder", {"incident_id": 7, "mention": "owners", "text": "paging the owners again"}),
    ("slack.reminder_digest", {"label": "unacknowledged incidents", "text": "Paging the owners again.",
                               "mention": "owners", "incidents": [{"incident_id": 7, "minutes": 14},
                                                                  {"incident_id": 8, "minutes": 12}]}),
    ("slack.archive", {"incident_id": 7}),
    ("slack.message", {"incident_id": 7, "text": "rolled back"}),
    ("slack.message", {"incident_id": 7, "text": "Postmortem draft", "blocks": [{"type": "section"}]}),
    ("slack.notice", {"text": "Test notification received"}),
    ("slack.traces", {"incident_id": 7}),
    ("slack.traces_more", {"incident_id": 7}),
    ("postmortem.due", {"incident_id": 7}),
    ("action.card", {"incident_id": 7, "run_id": 3}),
    ("action.run", {"incident_id": 7, "run_id": 3}),
    ("auto.consider", {"incident_id": 7}),
    ("auto.consider", {"incident_id": 7, "rule": 0}),
    ("guard.check", {"guard_id": 2}),
]


@pytest.mark.parametrize(("kind", "payload"), STORED, ids=[f"{k}-{i}" for i, (k, _) in enumerate(STORED)])
def test_a_row_stored_before_the_types_decodes_and_writes_back_the_same(kind: str, payload: dict[str, Any]) -> None:
    effect = effects.decode(kind, payload)
    assert effect.kind == kind
    assert effect.payload() == payload


def test_every_kind_is_covered_by_the_stored_examples() -> None:
    assert {t.kind for t in effects.ALL} == {kind for kind, _ in STORED}
    assert len({t.kind for t in effects.ALL}) == len(effects.ALL)  # no two types share a kind


def test_an_unknown_kind_or_a_payload_that_does_not_fit_is_refused_by_name() -> None:
    with pytest.raises(UnknownEffect, match=r"'slack.nothing'"):
        effects.decode("slack.nothing", {"incident_id": 7})
    with pytest.raises(MalformedEffect, match=r"slack.line.*event_id"):
        effects.decode("slack.line", {"incident_id": 7})
    with pytest.raises(MalformedEffect, match=r"slack.card.*channel"):
        effects.decode("slack.card", {"incident_id": 7, "channel": "C1"})  # a key the type does not have
    with pytest.raises(MalformedEffect, match=r"guard.check"):
        effects.decode("guard.check", ["not", "an", "object"])


def test_an_effect_cannot_be_built_without_its_fields() -> None:
    with pytest.raises(ValueError, match=r"incident_id"):
        effects.RefreshCard(incident_id=None)  # type: ignore[arg-type]


def test_a_kind_registered_twice_is_refused_by_name() -> None:
    handlers = Handlers()
    handlers.on(effects.RefreshCard, lambda effect: None)
    with pytest.raises(HandlerSetError, match=r"'slack.card'"):
        handlers.on(effects.RefreshCard, lambda effect: None)
    other = Handlers()
    other.on(effects.RefreshCard, lambda effect: None)
    with pytest.raises(HandlerSetError, match=r"'slack.card'"):
        Handlers(handlers, other)


def test_a_handler_set_missing_kinds_names_each_of_them() -> None:
    handlers = Handlers()
    for effect_type in effects.ALL:
        if effect_type not in (effects.GuardCheck, effects.PostNotice):
            handlers.on(effect_type, lambda effect: None)
    with pytest.raises(HandlerSetError) as refused:
        handlers.check()
    assert "'slack.notice'" in str(refused.value) and "'guard.check'" in str(refused.value)


def test_the_handler_gets_the_typed_effect() -> None:
    seen: list[effects.PostLine] = []
    handlers = Handlers()
    handlers.on(effects.PostLine, seen.append)
    handlers.perform(handlers.decode("slack.line", {"incident_id": 7, "event_id": 31}))
    assert seen == [effects.PostLine(incident_id=7, event_id=31)]
