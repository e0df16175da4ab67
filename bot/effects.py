"""The outbox's effects: one type per kind, built where it is queued, read back typed by the worker.

A row stores the effect's ``kind`` and its fields as the JSON ``payload``; the kind strings and
payload keys are those rows already in a database were written with, so they still decode. An
optional field left ``None`` is not written at all (as before the types existed).

Each type has a `Priority` (lower goes sooner), which a queue site may override for one row: a
card refresh after a person's action is `Priority.PERSON`, one after an alert is cosmetic.

`Handlers` holds exactly one handler per effect type: registering a type twice is refused, and
`Handlers.check` (called when a worker is built) refuses a set that leaves any kind without one,
so a forgotten handler stops the process at start-up instead of failing a row eight times.

    EffectError
    ├── UnknownEffect        a stored row's kind has no type (not retried)
    ├── MalformedEffect      a stored row's payload does not fit its type (not retried)
    └── HandlerSetError      a kind with no handler, or with two (the process does not start)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.errors import WarroomError


class EffectError(WarroomError):
    pass


class UnknownEffect(EffectError):
    """A stored row names a kind no effect type has."""


class MalformedEffect(EffectError):
    """A stored row's payload lacks a field of its type, or carries one it does not have."""


class HandlerSetError(EffectError):
    """An effect kind has no handler, or two: the worker is not built."""


class Priority(IntEnum):
    """The order the worker claims due rows in: a person waiting first, cosmetics last. Rows of one
    incident with the same priority still run in the order they were queued (lines stay in order)."""

    PERSON = 0  # the answer to something a person just did (their ack's card update)
    ROOM = 1  # a new incident's room: everything else of it waits for this
    POST = 2  # lines, messages, actions: the default
    COSMETIC = 3  # a card refresh after an alert; at most one per card per `coalesce_seconds`


class Effect(BaseModel):
    """One side effect the worker performs after the change that queued it is committed."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[str]
    priority: ClassVar[Priority] = Priority.POST
    # Rows of this kind queued to merge (`bot.store.outbox.Queued.merge`) run at most once per this
    # many seconds per incident; None: never merged.
    coalesce_seconds: ClassVar[float | None] = None

    def payload(self) -> dict[str, Any]:
        """The row's JSON payload."""
        return self.model_dump(exclude_none=True)


class OpenRoom(Effect):
    """Set up the incident's Slack room (channel, owners, card, runbook), step by resumable step."""

    kind: ClassVar[str] = "slack.room"
    priority: ClassVar[Priority] = Priority.ROOM
    incident_id: int


class RefreshCard(Effect):
    """Re-render the incident's card, announcement and channel topic from current state (merged
    and cosmetic); after a person's action, the card alone first (``card_only``, at
    `Priority.PERSON`: what they look at), the rest with the next cosmetic refresh."""

    kind: ClassVar[str] = "slack.card"
    priority: ClassVar[Priority] = Priority.COSMETIC
    coalesce_seconds: ClassVar[float | None] = 10.0
    incident_id: int
    card_only: bool | None = None  # None, not False: a full refresh's payload is as it always was


class PostLine(Effect):
    """Echo a timeline event to the incident's channel (or its thread)."""

    kind: ClassVar[str] = "slack.line"
    incident_id: int
    event_id: int


class PostReminder(Effect):
    kind: ClassVar[str] = "slack.reminder"
    incident_id: int
    text: str
    mention: Literal["owners", "commander", "none"]
    level: int | None = None  # the escalation level, kept for whoever reads the row


class DigestItem(BaseModel):
    """One incident in a reminder digest: how long it has waited (unacknowledged, or without a status update)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    incident_id: int
    minutes: int


class PostReminderDigest(Effect):
    """One reminder for several incidents that would ping the same people: posted once in the
    incidents channel, with one mention (``mention`` of each listed incident, resolved as for a
    `PostReminder`) and the incidents in ``incidents``' order (`bot.incidents.reminder_groups`)."""

    kind: ClassVar[str] = "slack.reminder_digest"
    label: str  # what the incidents have in common: "unacknowledged incidents"
    text: str  # what to do about it, after the list
    mention: Literal["owners", "commander", "none"]
    incidents: list[DigestItem]


class ArchiveChannel(Effect):
    kind: ClassVar[str] = "slack.archive"
    incident_id: int


class PostMessage(Effect):
    """A line in the incident's channel; ``blocks`` when it is more than its text."""

    kind: ClassVar[str] = "slack.message"
    incident_id: int
    text: str
    blocks: list[dict[str, Any]] | None = None


class PostNotice(Effect):
    """A line for the incidents channel that belongs to no incident (a test notification)."""

    kind: ClassVar[str] = "slack.notice"
    text: str


class PostFailingTraces(Effect):
    """The failing traces linked to a new incident, posted once its room is there."""

    kind: ClassVar[str] = "slack.traces"
    incident_id: int


class PostLateTraces(Effect):
    """Failing traces that arrived after the incident opened, one post per time slot."""

    kind: ClassVar[str] = "slack.traces_more"
    incident_id: int


class PostmortemDue(Effect):
    kind: ClassVar[str] = "postmortem.due"
    incident_id: int


class ActionCard(Effect):
    """Post or update an action run's card in the incident channel."""

    kind: ClassVar[str] = "action.card"
    incident_id: int
    run_id: int


class RunAction(Effect):
    kind: ClassVar[str] = "action.run"
    incident_id: int
    run_id: int


class ConsiderAutomation(Effect):
    """Let the automation look at an incident: every rule of its runbook, or the one ``rule``."""

    kind: ClassVar[str] = "auto.consider"
    incident_id: int
    rule: int | None = None


class GuardCheck(Effect):
    """One look of a guard at the SLO an automatic action should have brought back."""

    kind: ClassVar[str] = "guard.check"
    guard_id: int


ALL: tuple[type[Effect], ...] = (
    OpenRoom, RefreshCard, PostLine, PostReminder, PostReminderDigest, ArchiveChannel, PostMessage, PostNotice,
    PostFailingTraces, PostLateTraces, PostmortemDue, ActionCard, RunAction, ConsiderAutomation,
    GuardCheck,
)


def decode(kind: str, payload: Any, types: Iterable[type[Effect]] = ALL) -> Effect:
    """A stored row's effect; `UnknownEffect` or `MalformedEffect` when it cannot be one."""
    effect_type = next((t for t in types if t.kind == kind), None)
    if effect_type is None:
        raise UnknownEffect(f"no effect type has the kind {kind!r}")
    try:
        return effect_type.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())
        raise MalformedEffect(f"the {kind!r} payload does not fit {effect_type.__name__}: {problems}") from None


E = TypeVar("E", bound=Effect)


class Handlers:
    """Who performs each kind of effect: one handler per type, given the typed effect."""

    def __init__(self, *sets: Handlers) -> None:
        """The handlers of ``sets`` together (each kind still once)."""
        self._by_kind: dict[str, tuple[type[Effect], Callable[[Any], object]]] = {}
        for other in sets:
            self.include(other)

    def on(self, effect_type: type[E], handler: Callable[[E], object]) -> None:
        if effect_type.kind in self._by_kind:
            raise HandlerSetError(f"two handlers for the outbox effect {effect_type.kind!r} ({effect_type.__name__})")
        self._by_kind[effect_type.kind] = (effect_type, handler)

    def include(self, other: Handlers) -> None:
        """Take over ``other``'s handlers (each kind still once)."""
        for effect_type, handler in other._by_kind.values():
            self.on(effect_type, handler)

    def check(self, types: Iterable[type[Effect]] | None = None) -> None:
        """Refuse a set that leaves a kind of ``types`` (all of them) without a handler, naming the kinds."""
        missing = [t.kind for t in (ALL if types is None else types) if t.kind not in self._by_kind]
        if missing:
            raise HandlerSetError(f"no handler for the outbox effect(s) {', '.join(map(repr, missing))}: "
                                  "every effect kind needs exactly one handler")

    def decode(self, kind: str, payload: Any) -> Effect:
        return decode(kind, payload, (t for t, _ in self._by_kind.values()))

    def perform(self, effect: Effect) -> None:
        _, handler = self._by_kind[effect.kind]
        handler(effect)

    def __contains__(self, effect_type: type[Effect]) -> bool:
        return effect_type.kind in self._by_kind
