"""LLM telemetry: store trace events, decide which failed, and tie failures to incidents.

A batch is never all-or-nothing: one malformed event is rejected with its reasons and the rest
are stored, because losing a whole batch of telemetry in the middle of an incident costs more
than a partial one. A trace is known by its service, timestamp and ``request_id`` (`IDENTITY`): a
sender's retry carries the same three and stores nothing twice.

Linking is by service and time: a failing trace of an incident's service belongs to it when it
happened between ``opened_at - window_before`` (the alert fires after the damage starts) and the
resolution (or now, while the incident is open).
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError
from sqlalchemy import ColumnElement, bindparam, case, delete, or_, select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from bot.clock import as_utc, iso, utcnow
from bot.errors import NotFound, UserError
from bot.evals.cases import Label
from bot.incidents import lifecycle
from bot.jsonbody import MAX_DEPTH, BadRequest, check_storable, pydantic_problems
from bot.store import outbox
from bot.store.db import affected_rows
from bot.store.models import Incident, Trace, saved_id
from bot.store.statements import JsonText, Later, Statements
from bot.traces import late as late_traces
from bot.traces.rules import FailureRules, TraceEvent, failure_types

LINK_WINDOW_BEFORE = timedelta(minutes=15)
_TRACE = Trace.__table__  # type: ignore[attr-defined]
IDENTITY = ("service", "timestamp", "request_id")  # unique: an index new traces are appended to
Identity = tuple[str, datetime, str]  # a trace's IDENTITY, its time in UTC

# TraceEvent leaves these unbounded; the columns are not, and a too-long value must reject one
# event rather than fail the whole batch's INSERT on PostgreSQL.
_COLUMN_FIELDS = ("service", "bundle_version", "model", "prompt_hash")
_COLUMN_LIMITS = tuple((name, limit) for name in _COLUMN_FIELDS if (limit := _TRACE.c[name].type.length))
_NO_LABEL = JsonText("{}")  # the export reads "{}" as "not labelled"


def _identity(row: dict[str, Any]) -> Identity:
    """A prepared row's, or a stored one's (``_asdict()``: SQLite gives its time naive)."""
    return row["service"], as_utc(row["timestamp"]), row["request_id"]


@dataclass(frozen=True)
class RejectedEvent:
    index: int
    request_id: str | None
    problems: list[dict[str, str]]

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "request_id": self.request_id, "problems": self.problems}


@dataclass
class TraceIngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[RejectedEvent] = field(default_factory=list)
    linked: int = 0
    # What was newly stored, with its failure types: for counters (``bot.traces.metrics``).
    stored: list[tuple[TraceLabels, list[str]]] = field(default_factory=list)
    eval_traffic: int = 0  # events of an eval run (bot.evals.target), not stored

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": [r.as_json() for r in self.rejected], "eval_traffic": self.eval_traffic}


def ingest_traces(session: Session, events: list[Any], *, rules: FailureRules, now: datetime | None = None,
                  max_string: int | None = None,
                  post_every_s: float = late_traces.DEFAULT_EVERY_SECONDS) -> TraceIngestResult:
    """Validate and store ``events``; ``max_string`` turns on the storable checks of ``bot.jsonbody``.

    Failing traces linked to an open incident are posted to its room, at most once per
    ``post_every_s`` per incident (`bot.traces.late`)."""
    now = now or utcnow()
    prepared = prepare_traces(events, rules=rules, now=now, max_string=max_string)
    return store_prepared(session, prepared, now=now, post_every_s=post_every_s)


class TraceLabels(NamedTuple):
    """What the counters (`bot.traces.metrics`) need of a stored trace."""

    service: str
    bundle_version: str | None
    model: str | None


@dataclass
class PreparedTraces:
    """A batch validated and made into rows, not stored yet (`prepare_traces`). Plain data: an
    OTLP decode process makes it and the serving process stores it (`bot.otlp.pool`)."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # one per request id, the batch's first
    kinds: list[list[str]] = field(default_factory=list)  # each row's failure types
    rejected: list[RejectedEvent] = field(default_factory=list)
    duplicates: int = 0  # repeated within the batch
    eval_traffic: int = 0


def merge_prepared(parts: list[PreparedTraces]) -> PreparedTraces:
    """Batches prepared apart (shares of one OTLP request, `bot.otlp.pool`) as one. A trace in two
    of them is stored once, from the earlier part, as within one batch."""
    merged = PreparedTraces()
    seen: set[Identity] = set()
    for part in parts:
        merged.rejected += part.rejected
        merged.duplicates += part.duplicates
        merged.eval_traffic += part.eval_traffic
        for row, kinds in zip(part.rows, part.kinds, strict=True):
            if (key := _identity(row)) in seen:
                merged.duplicates += 1
                continue
            seen.add(key)
            merged.rows.append(row)
            merged.kinds.append(kinds)
    return merged


def prepare_traces(events: list[Any], *, rules: FailureRules, now: datetime,
                   max_string: int | None = None) -> PreparedTraces:
    """The CPU part of `ingest_traces`: validate each event, decide its failure types, make its row."""
    prepared = PreparedTraces()
    seen: set[Identity] = set()
    for index, raw in enumerate(events):
        event, problems, stored_text = _validate(raw, max_string)
        if event is None or stored_text is None:
            request_id = raw.get("request_id") if isinstance(raw, dict) else None
            request_id = request_id[:200] if isinstance(request_id, str) else None  # echoed back: bounded
            prepared.rejected.append(RejectedEvent(index, request_id, problems))
            continue
        if is_eval_traffic(event):
            prepared.eval_traffic += 1  # never a production trace: no SLI, no incident, no eval case
            continue
        kinds = failure_types(event, rules)
        row = {
            "request_id": event.request_id, "service": event.service, "timestamp": event.timestamp,
            "bundle_version": event.bundle_version, "model": event.model, "prompt_hash": event.prompt_hash,
            "failure_types": _kinds_text(tuple(kinds)), "failed": bool(kinds), "label": _NO_LABEL,
            "data": stored_text, "received_at": now,
        }
        if (key := _identity(row)) in seen:  # the batch's first counts
            prepared.duplicates += 1
            continue
        seen.add(key)
        prepared.kinds.append(kinds)
        prepared.rows.append(row)
    return prepared


def store_prepared(session: Session, prepared: PreparedTraces, *, now: datetime,
                   post_every_s: float = late_traces.DEFAULT_EVERY_SECONDS) -> TraceIngestResult:
    """The database part of `ingest_traces`: insert the rows, link failing ones to open incidents."""
    result = TraceIngestResult(rejected=list(prepared.rejected), duplicates=prepared.duplicates,
                               eval_traffic=prepared.eval_traffic)
    failing_services: set[str] = set()
    # One multi-row INSERT … ON CONFLICT DO NOTHING for the batch (a statement per event was most
    # of an OTLP batch's time), on PostgreSQL as one ``unnest`` of arrays (`Statements.insert_rows`:
    # a VALUES list of ~9,000 parameters cost psycopg more to parse than the server to run).
    # RETURNING names the rows this call inserted, the rest were stored before.
    inserted: set[Identity] = set()
    if prepared.rows:
        sent = Statements(session.connection()).insert_rows(_TRACE, prepared.rows, conflict=IDENTITY,
                                                            returning=IDENTITY)
        inserted = {_identity(row._asdict()) for row in sent.rows()}
    for row, kinds in zip(prepared.rows, prepared.kinds, strict=True):
        if _identity(row) not in inserted:
            result.duplicates += 1
            continue
        result.accepted += 1
        result.stored.append((TraceLabels(row["service"], row["bundle_version"], row["model"]), kinds))
        if kinds:
            failing_services.add(row["service"])
    grew: list[int] = []
    for incident in _open_incidents(session, failing_services):
        linked = link_failing_traces(session, incident, now=now)
        result.linked += linked
        if linked and incident.id is not None:
            grew.append(incident.id)
    for merged, into in _merged_into_open(session, failing_services):
        linked = _link_for_merged(session, merged, into, now=now)
        result.linked += linked
        if linked and into.id not in grew:
            grew.append(saved_id(into))
    if grew:
        outbox.enqueue_many(session, late_traces.effects(grew, now=now, every_s=post_every_s))
    return result


EVAL_ATTRIBUTES = ("warroom.eval", "warroom_eval", "x-warroom-eval")


def is_eval_traffic(event: TraceEvent) -> bool:
    """A service that forwards the eval header (``X-Warroom-Eval``) into its trace marks it so."""
    return any(event.attributes.get(name) for name in EVAL_ATTRIBUTES)


def _validate(raw: Any, max_string: int | None) -> tuple[TraceEvent | None, list[dict[str, str]], JsonText | None]:
    """The event, the problems that reject it, and its JSON as stored (``data``)."""
    if not isinstance(raw, dict):
        return None, [{"field": "$", "message": f"expected a JSON object, got {type(raw).__name__}"}], None
    try:
        event = TraceEvent.model_validate(raw)
    except ValidationError as exc:
        # The storable checks' findings come first, as when they ran before validation.
        storable = _storable_problems(raw, max_string) if max_string is not None else []
        return None, storable or pydantic_problems(exc), None
    stored = _stored_text(event)
    if max_string is not None and not (stored is not None and _surely_storable(raw, stored, max_string)):
        problems = _storable_problems(raw, max_string)
        if problems:
            return None, problems, None
    if stored is None:  # a lone surrogate with the storable checks off: stored escaped, as json.dumps does
        stored = JsonText(json.dumps(event.model_dump(mode="json")))
    too_long = [{"field": name, "message": f"longer than {limit} characters"}
                for name, limit in _COLUMN_LIMITS if len(getattr(event, name) or "") > limit]
    return (None, too_long, None) if too_long else (event, [], stored)


def _stored_text(event: TraceEvent) -> JsonText | None:
    """The event as the ``data`` column holds it, serialised by pydantic (several times faster
    than ``json.dumps`` of ``model_dump``); None when a string cannot be UTF-8 (a lone surrogate)."""
    try:
        return JsonText(event.model_dump_json())
    except PydanticSerializationError:
        return None


def _storable_problems(raw: dict[str, Any], max_string: int) -> list[dict[str, str]]:
    try:
        check_storable(raw, max_string=max_string)
    except BadRequest as exc:
        return exc.problems or [{"field": "$", "message": exc.message}]
    return []


# Fields whose string values pydantic turns into numbers, booleans or times: such a string is not
# in the stored text, so the quick check below must see it itself.
_COERCED_FIELDS = ("timestamp", "latency_ms", "tokens", "cost", "schema_valid", "hallucination_score")
_TOOL_CALL_FIELDS = frozenset({"name", "ok", "error"})


def _surely_storable(raw: dict[str, Any], stored: str, max_string: int) -> bool:
    """A quick yes for the usual event, else the full walk of ``check_storable`` over ``raw``
    decides. The stored text holds every string of ``raw`` (unknown fields move into
    ``attributes``) at the same depth or deeper, so: when it is at most ``max_string`` characters
    long, no string is longer; fewer brackets than ``MAX_DEPTH`` bound the depth; pydantic escapes
    NUL as ``\\u0000`` and refuses a lone surrogate (``stored`` is then None). What the model
    leaves out of it is looked at here: strings it coerced, and a tool call's unknown fields."""
    if len(stored) > max_string or "\\u0000" in stored or stored.count("{") + stored.count("[") >= MAX_DEPTH:
        return False
    for name in _COERCED_FIELDS:
        value = raw.get(name)
        if isinstance(value, str) and (len(value) > max_string or "\x00" in value or not value.isascii()):
            return False
    calls = raw.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if not isinstance(call, dict) or not call.keys() <= _TOOL_CALL_FIELDS or isinstance(call.get("ok"), str):
                return False
    return True


@functools.lru_cache(maxsize=128)
def _kinds_text(kinds: tuple[str, ...]) -> JsonText:
    return JsonText(json.dumps(list(kinds)))  # a handful of distinct lists: serialised once each


def _open_incidents(session: Session, services: set[str]) -> list[Incident]:
    if not services:
        return []
    stmt = (select(Incident)
            .where(col(Incident.service).in_(services), col(Incident.status).in_(lifecycle.OPEN_STATUSES))
            .order_by(col(Incident.opened_at), col(Incident.id)))
    return list(session.execute(stmt).scalars())


def _merged_into_open(session: Session, services: set[str]) -> list[tuple[Incident, Incident]]:
    """Each incident of these services merged into one that is still open (`bot.incidents.merge`),
    with that one. A merged incident is resolved, but its service's failing traces go on being
    evidence of the incident it went into."""
    if not services:
        return []
    target = aliased(Incident)
    # Read afresh (populate_existing): a merge may have committed since `_open_incidents` read them.
    # A target merged in turn is followed by `_still_open`; one that ended leaves the row out.
    stmt = (select(Incident, target).join(target, col(target.id) == col(Incident.merged_into_id))
            .where(col(Incident.service).in_(services),
                   or_(col(target.status).in_(lifecycle.OPEN_STATUSES), col(target.merged_into_id).is_not(None)))
            .order_by(col(Incident.opened_at), col(Incident.id))
            .execution_options(populate_existing=True))
    return [(merged, end) for merged, into in session.execute(stmt)
            if (end := _still_open(session, into, seen={saved_id(merged)})) is not None]


def _still_open(session: Session, incident: Incident, *, seen: set[int]) -> Incident | None:
    """Where ``incident``'s merges end, if that incident is open (a merge of merges followed)."""
    while incident.merged_into_id is not None:
        seen.add(saved_id(incident))
        if incident.merged_into_id in seen:
            return None  # a cycle: no merge makes one, but a loop here would never end
        following = session.get(Incident, incident.merged_into_id, populate_existing=True)
        if following is None:
            return None
        incident = following
    return incident if lifecycle.is_open(incident.status) else None


def _link_for_merged(session: Session, merged: Incident, into: Incident, *, now: datetime) -> int:
    """Link the merged incident's service's failing traces, in its window, to the one it went
    into, and move there any still linked to the merged one: on PostgreSQL a batch that found it
    open links to it after waiting for the merge's lock on its row, once the merge has moved its
    traces (this batch, or the next with a failure of that service, brings them over)."""
    into_id = saved_id(into)
    moved = affected_rows(session.execute(update(Trace).where(col(Trace.incident_id) == saved_id(merged))
                                          .values(incident_id=into_id)
                                          .execution_options(synchronize_session=False)))
    return moved + link_service_traces(session, into_id, merged.service, opened_at=merged.opened_at,
                                       resolved_at=into.resolved_at, now=now)


def link_failing_traces(session: Session, incident: Incident, *, window_before: timedelta = LINK_WINDOW_BEFORE,
                        now: datetime | None = None) -> int:
    """Point the incident's service's unlinked failing traces in its window at it; how many."""
    if incident.id is None:
        return 0
    return link_service_traces(session, incident.id, incident.service, opened_at=incident.opened_at,
                               resolved_at=incident.resolved_at, window_before=window_before, now=now)


_LINK_TRACES = (update(_TRACE)
                .where(_TRACE.c.service == bindparam("of_service"), _TRACE.c.failed.is_(True),
                       _TRACE.c.incident_id.is_(None), _TRACE.c.timestamp >= bindparam("start"),
                       _TRACE.c.timestamp <= bindparam("end"))
                .values(incident_id=bindparam("to_incident")))


def link_service_traces(session: Session, incident_id: int, service: str | None, *, opened_at: datetime,
                        resolved_at: datetime | None = None, window_before: timedelta = LINK_WINDOW_BEFORE,
                        now: datetime | None = None) -> int:
    """`link_failing_traces` for an incident known by its columns (the alert intake has no ORM object)."""
    sent = send_service_traces_link(Statements(session.connection()), incident_id, service, opened_at=opened_at,
                                    resolved_at=resolved_at, window_before=window_before, now=now)
    return max(sent.count(), 0) if sent is not None else 0


def send_service_traces_link(sql: Statements, incident_id: int, service: str | None, *, opened_at: datetime,
                             resolved_at: datetime | None = None, window_before: timedelta = LINK_WINDOW_BEFORE,
                             now: datetime | None = None) -> Later | None:
    """`link_service_traces`'s UPDATE, a Core statement built once, sent on ``sql`` (inside its
    pipeline: not waited for; its count is how many it linked). None without a service: nothing
    to link."""
    if not service:
        return None
    start = as_utc(opened_at) - window_before
    end = as_utc(resolved_at) or now or utcnow()
    return sql.execute(_LINK_TRACES, {"of_service": service, "start": start, "end": end, "to_incident": incident_id})


def failing_traces(session: Session, incident_id: int, limit: int = 50) -> list[Trace]:
    """The incident's failing traces, earliest first: the first failures say most about the cause."""
    stmt = (select(Trace).where(col(Trace.incident_id) == incident_id, col(Trace.failed).is_(True))
            .order_by(col(Trace.timestamp), col(Trace.id)).limit(limit))
    return list(session.execute(stmt).scalars())


def counts_by_failure(session: Session, incident_id: int) -> dict[str, int]:
    """Failing traces per failure type; a human label's failure type replaces the detector's verdict."""
    rows = session.execute(select(col(Trace.failure_types), col(Trace.label))
                           .where(col(Trace.incident_id) == incident_id, col(Trace.failed).is_(True)))
    counts: Counter[str] = Counter()
    for kinds, label in rows:
        labelled = (label or {}).get("failure_type")
        counts.update([labelled] if labelled else kinds or [])
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def label_trace(session: Session, request_id: str, *, incident_id: int | None = None, failure_type: str | None = None,
                expected: str | None = None, notes: str | None = None, unsupported_claim: str | None = None,
                actor: str, at: datetime | None = None) -> Trace:
    """Store a human's correction; fields left out keep an earlier label's values.

    Labels are for failing traces. A request id sent again at another time is another trace: the
    one labelled is the latest failing trace with that id, and from an incident's channel (``incident_id``)
    the latest of that incident's evidence first, the one its Label button was shown for."""
    order: list[ColumnElement[Any]] = [col(Trace.timestamp).desc()]
    if incident_id is not None:
        order.insert(0, case((col(Trace.incident_id) == incident_id, 0), else_=1))
    trace = session.execute(select(Trace).where(col(Trace.request_id) == request_id, col(Trace.failed))
                            .order_by(*order).limit(1).with_for_update()).scalar_one_or_none()
    if trace is None:
        raise NotFound(f"There is no failing trace with request id {request_id!r}.")
    try:
        given = Label(failure_type=failure_type, expected=expected, notes=notes, unsupported_claim=unsupported_claim)
    except ValidationError as exc:
        raise UserError(exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")) from None
    merged = given.merged_with(Label.model_validate(trace.label or {}))
    # A new dict, so the JSON column is seen as changed.
    trace.label = {**merged.model_dump(exclude_none=True), "labelled_by": actor, "labelled_at": iso(at or utcnow())}
    return trace


def prune(session: Session, *, older_than: datetime) -> int:
    """Delete traces that happened before ``older_than``; traces linked to an incident are evidence and stay."""
    stmt = (delete(Trace).where(col(Trace.timestamp) < older_than, col(Trace.incident_id).is_(None))
            .execution_options(synchronize_session=False))
    return affected_rows(session.execute(stmt))


def as_event(trace: Trace) -> TraceEvent:
    """The stored event back as the model the evals and postmortem code read."""
    return TraceEvent.model_validate(trace.data)
