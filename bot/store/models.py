"""The tables. Every change here needs an Alembic revision in ``bot/store/migrations/versions``.

Timestamps are stored as timezone-aware UTC (``DateTime(timezone=True)``); SQLite gives them back
naive, so ``bot.clock.as_utc`` is applied where they are compared.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


def _json(default: Any = dict) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


# A trace's event is read field by field (the sensors, SLIs, impact, the eval export): PostgreSQL's
# ``json`` re-parses the whole text for every field read, ``jsonb`` is stored parsed (migration 0013).
TRACE_DATA_TYPE = JSON().with_variant(JSONB(), "postgresql")


class AlertGroup(SQLModel, table=True):
    """One Alertmanager/Grafana group (its ``groupKey``): the unit of incident identity."""

    __tablename__ = "alert_group"
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=20)
    group_key_hash: str = Field(max_length=64, unique=True)
    group_key: str = Field(sa_column=Column(Text, nullable=False))
    group_labels: dict[str, str] = _json()
    current_incident_id: int | None = Field(default=None)  # no FK: incident already points here
    # Alerts its last notification left out (``truncatedAlerts``): the group cannot end by itself.
    alerts_unlisted: int = Field(default=0)
    created_at: datetime = _ts(nullable=False)


class Correlation(SQLModel, table=True):
    """A correlation key's value (``service=llm-gateway``, or a storm's ``storm|service=…``) and
    the incident its new alert groups join while the window since ``joined_at`` lasts. The row is
    the lock the intake takes before deciding to open an incident or join one."""

    __tablename__ = "correlation"
    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(max_length=64, unique=True)
    key: str = Field(sa_column=Column(Text, nullable=False))
    incident_id: int | None = Field(default=None)
    joined_at: datetime | None = _ts()


class Incident(SQLModel, table=True):
    __tablename__ = "incident"
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="triggered", max_length=20, index=True)
    severity: int = Field(default=3)
    service: str | None = Field(default=None, max_length=200)
    slo: str | None = Field(default=None, max_length=200)
    group_id: int | None = Field(default=None, foreign_key="alert_group.id", index=True)
    source: str = Field(default="alertmanager", max_length=20)
    labels: dict[str, str] = _json()
    annotations: dict[str, str] = _json()
    links: list[dict[str, str]] = _json(list)
    runbook_id: str | None = Field(default=None, max_length=200)
    channel_id: str | None = Field(default=None, max_length=40)
    channel_name: str | None = Field(default=None, max_length=80)
    alerts_unlisted: int = Field(default=0)
    monitoring_gap: bool = Field(default=False)
    commander: str | None = Field(default=None, max_length=40)
    declared_by: str | None = Field(default=None, max_length=40)
    acknowledged_by: str | None = Field(default=None, max_length=40)
    resolved_by: str | None = Field(default=None, max_length=40)
    summary: str | None = Field(default=None, sa_column=Column(Text))
    status_text: str | None = Field(default=None, sa_column=Column(Text))
    previous_incident_id: int | None = Field(default=None)
    # Who switched automatic actions off for this incident (`/incident auto off`); None: on.
    automation_off_by: str | None = Field(default=None, max_length=40)
    # Opened by storm mode for a service: alert groups that would each have opened one join it.
    storm: bool = Field(default=False)
    # Merged into another incident (`/incident merge`): its groups moved there.
    merged_into_id: int | None = Field(default=None)
    opened_at: datetime = _ts(nullable=False, index=True)
    acknowledged_at: datetime | None = _ts()
    mitigated_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class Alert(SQLModel, table=True):
    """One alert episode: identity is (group, fingerprint, startsAt); a re-fire is a new row."""

    __tablename__ = "alert"
    __table_args__ = (UniqueConstraint("group_id", "fingerprint", "starts_at", name="uq_alert_episode"),)
    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="alert_group.id", index=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    fingerprint: str = Field(max_length=64)
    starts_at: datetime = _ts(nullable=False)
    ends_at: datetime | None = _ts()
    status: str = Field(max_length=20)
    severity: int = Field(default=3)
    labels: dict[str, str] = _json()
    annotations: dict[str, str] = _json()
    generator_url: str | None = Field(default=None, sa_column=Column(Text))
    extra: dict[str, Any] = _json()
    monitoring_gap: bool = Field(default=False)
    first_seen_at: datetime = _ts(nullable=False)
    last_seen_at: datetime = _ts(nullable=False)


class TimelineEvent(SQLModel, table=True):
    __tablename__ = "timeline_event"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    at: datetime = _ts(nullable=False)
    kind: str = Field(max_length=40)
    actor: str | None = Field(default=None, max_length=100)
    text: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, Any] = _json()
    # Set for events that must be recorded once (a pinned message, a Slack retry): unique.
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)


class OutboxItem(SQLModel, table=True):
    """A side effect queued in the same transaction as the state change that needs it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),
                      Index("ix_outbox_claim", "status", "priority", "next_attempt_at"))
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=60)
    # `bot.effects.Priority`: due rows are claimed lowest first.
    priority: int = Field(default=2, sa_column_kwargs={"server_default": "2"})
    dedupe_key: str = Field(max_length=200, unique=True)
    incident_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = _json()
    status: str = Field(default="pending", max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _ts(nullable=False)
    claimed_until: datetime | None = _ts()
    claimed_by: str | None = Field(default=None, max_length=80)  # the worker whose lease this is
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _ts(nullable=False)
    done_at: datetime | None = _ts()


class Installation(SQLModel, table=True):
    """This warroom's one row: a random id it writes into what it creates in Slack, to know it later."""

    __tablename__ = "installation"
    id: str = Field(primary_key=True, max_length=40)
    created_at: datetime = _ts(nullable=False)


class IncidentStep(SQLModel, table=True):
    """A set-up step of the incident room, done once: the record makes set-up resumable."""

    __tablename__ = "incident_step"
    __table_args__ = (UniqueConstraint("incident_id", "name", name="uq_incident_step"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    name: str = Field(max_length=40)
    done_at: datetime | None = _ts()
    result: dict[str, Any] = _json()
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class SlackEventSeen(SQLModel, table=True):
    """Events API deliveries already handled (Slack retries them on slow answers)."""

    __tablename__ = "slack_event_seen"
    event_id: str = Field(primary_key=True, max_length=64)
    seen_at: datetime = _ts(nullable=False)


class Bundle(SQLModel, table=True):
    """A deployed release bundle: prompt, model route, retriever, tools, guardrails …"""

    __tablename__ = "bundle"
    __table_args__ = (UniqueConstraint("service", "version", name="uq_bundle_version"),)
    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(max_length=200)
    version: str = Field(max_length=100)
    components: dict[str, Any] = _json()
    deployed_at: datetime = _ts(nullable=False)
    known_good: bool = Field(default=False)
    known_good_reason: str | None = Field(default=None, sa_column=Column(Text))
    known_good_run_id: int | None = Field(default=None)  # the passing gate run (bot.evals.gate); None: by hand
    known_good_at: datetime | None = _ts()


class Trace(SQLModel, table=True):
    __tablename__ = "trace"
    # A trace is known by service, time and request id: new traces go at the end of that index, where
    # a unique request_id put each in a random page (migration 0014); it also links traces to
    # incidents by service and time. By incident and time (linked traces only, see migration
    # 0003): the eval export and the postmortem read an incident's traces in order. Failing traces
    # by request id: a label finds its trace.
    __table_args__ = (Index("ux_trace_service_time_request", "service", "timestamp", "request_id", unique=True),
                      Index("ix_trace_incident_time", "incident_id", "timestamp", "request_id",
                            sqlite_where=text("incident_id IS NOT NULL"),
                            postgresql_where=text("incident_id IS NOT NULL")),
                      Index("ix_trace_failing_request", "request_id", sqlite_where=text("failed"),
                            postgresql_where=text("failed")))
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=200)
    service: str = Field(max_length=200)
    timestamp: datetime = _ts(nullable=False)
    bundle_version: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=200)
    prompt_hash: str | None = Field(default=None, max_length=128)
    failure_types: list[str] = _json(list)
    failed: bool = Field(default=False, index=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    label: dict[str, Any] = _json()
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(TRACE_DATA_TYPE, nullable=False))
    received_at: datetime = _ts(nullable=False)


class ActionRun(SQLModel, table=True):
    __tablename__ = "action_run"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    playbook: str = Field(max_length=100)
    params: dict[str, Any] = _json()
    idempotency_key: str = Field(max_length=128, unique=True)
    status: str = Field(default="requested", max_length=40)
    dry_run: bool = Field(default=False)
    requested_by: str = Field(max_length=40)
    approved_by: str | None = Field(default=None, max_length=40)
    undo_of: int | None = Field(default=None)
    requested_at: datetime = _ts(nullable=False)
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    result: dict[str, Any] = _json()
    error: str | None = Field(default=None, sa_column=Column(Text))


class Followup(SQLModel, table=True):
    __tablename__ = "followup"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    owner: str | None = Field(default=None, max_length=40)
    created_by: str | None = Field(default=None, max_length=40)
    created_at: datetime = _ts(nullable=False)
    done: bool = Field(default=False)


class Postmortem(SQLModel, table=True):
    __tablename__ = "postmortem"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", unique=True)
    draft: str = Field(sa_column=Column(Text, nullable=False))
    edited: str | None = Field(default=None, sa_column=Column(Text))
    generated_at: datetime = _ts(nullable=False)
    edited_at: datetime | None = _ts()


class WebSignInLink(SQLModel, table=True):
    """A one-time sign-in link the bot gave a person in Slack (`/incident web`); only its hash is kept."""

    __tablename__ = "web_signin_link"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: str = Field(max_length=40)
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    used_at: datetime | None = _ts()


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, this row its hash."""

    __tablename__ = "web_session"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: str = Field(max_length=40)
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False, index=True)


class EvalCase(SQLModel, table=True):
    """One case of a service's regression suite: a cluster of near-identical failing traces."""

    __tablename__ = "eval_case"
    __table_args__ = (UniqueConstraint("service", "case_id", name="uq_eval_case_id"),)
    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(max_length=200)
    case_id: str = Field(max_length=40)
    failure_type: str = Field(max_length=40)
    signature: str = Field(sa_column=Column(Text, nullable=False))
    question: str = Field(sa_column=Column(Text, nullable=False))
    labelled: bool = Field(default=False)
    trace_count: int = Field(default=0)
    request_ids: list[str] = _json(list)
    data: dict[str, Any] = _json()
    first_seen: datetime = _ts(nullable=False)
    last_seen: datetime = _ts(nullable=False)


class EvalCaseIncident(SQLModel, table=True):
    """An incident a case was seen in; ``added`` says whether that incident created or updated it."""

    __tablename__ = "eval_case_incident"
    __table_args__ = (UniqueConstraint("eval_case_id", "incident_id", name="uq_eval_case_incident"),)
    id: int | None = Field(default=None, primary_key=True)
    eval_case_id: int = Field(foreign_key="eval_case.id")
    incident_id: int = Field(foreign_key="incident.id", index=True)
    added: str = Field(max_length=10)
    trace_count: int = Field(default=0)


class EvalRun(SQLModel, table=True):
    """A gate (or eval/replay) run of a service's suite against one bundle."""

    __tablename__ = "eval_run"
    __table_args__ = (Index("ix_eval_run_service_time", "service", "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(max_length=200)
    bundle_version: str = Field(max_length=100)
    kind: str = Field(max_length=20)
    status: str = Field(max_length=20)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    report: dict[str, Any] = _json()
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = _ts()
class ActionGuard(SQLModel, table=True):
    """After a mitigating run: is the incident's SLI better by the deadline? (`bot.automation.guard`)"""

    __tablename__ = "action_guard"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    run_id: int = Field(unique=True)
    slo: str = Field(max_length=200)
    source: str = Field(max_length=20)  # "traces" | "prometheus"
    status: str = Field(max_length=20)  # watching | improved | not_improved | ended
    undo_if_not_improved: bool = Field(default=False)
    started_at: datetime = _ts(nullable=False)
    deadline: datetime = _ts(nullable=False)
    baseline_ratio: float | None = Field(default=None)
    baseline_total: int = Field(default=0)
    last_ratio: float | None = Field(default=None)
    last_total: int = Field(default=0)
    verdict_at: datetime | None = _ts()
    evidence: str | None = Field(default=None, sa_column=Column(Text))


class ChangeEvent(SQLModel, table=True):
    """Something that changed a service (a deploy, a prompt edit, a flag flip), as its system reported it."""

    __tablename__ = "change_event"
    __table_args__ = (Index("ix_change_service_time", "service", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(max_length=200)
    kind: str = Field(max_length=40)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    actor: str | None = Field(default=None, max_length=200)
    at: datetime = _ts(nullable=False)
    link: str | None = Field(default=None, sa_column=Column(Text))
    source: str = Field(max_length=40)
    dedupe_key: str = Field(max_length=200, unique=True)
    received_at: datetime = _ts(nullable=False)


class _Keyed(Protocol):
    id: int | None


def saved_id(row: _Keyed) -> int:
    """The primary key of a row that is in the database. Every table's ``id`` is ``None`` only until the
    row is flushed; code that reaches here with such a row has a bug, and a key of ``None`` must not
    travel on into an idempotency key, a URL or a Slack card."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: it was never flushed")
    return row.id
