"""Settings: one object, read from the environment (and `.env`), validated at start-up.

A setting that is invalid stops the start with a message naming it (pydantic-settings does the
naming); unsafe development defaults are refused when ``WARROOM_ENV`` is not ``development``.

Sources, strongest first: the environment, ``.env``, then ``.warroom-demo/warroom.env`` (written by
``warroom demo``, so the CLI run in the same folder afterwards acts on the demo's database and
emulator without any setting).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.redact import RedactionPatternError, Redactor
from bot.traces.rules import FailureRules

DEV_ALERT_TOKEN = "dev-alert-token"
DEV_SIGNING_SECRET = "dev-signing-secret"
DEV_BOT_TOKEN = "xoxb-warroom-local"
REAL_SLACK_API_URL = "https://slack.com/api/"
# Where `warroom emulator` listens by default: the development bot token talks to it, never to slack.com.
LOCAL_SLACK_API_URL = "http://127.0.0.1:3000/api/"
DEMO_ENV_FILE = Path(".warroom-demo") / "warroom.env"
# The incident number makes each name unique, so a storm of one alert kind opens its rooms without
# a name_taken answer per incident (bot/slack/channel_names.py).
DEFAULT_CHANNEL_TEMPLATE = "inc-{id}-{slug}"
KNOWN_SECRET_MIN = 8  # shorter secret values are masked in playbook results only

DEFAULT_SEVERITY_MAP: dict[str, int] = {
    # Generic `severity` label values.
    "sev1": 1, "p1": 1, "1": 1, "emergency": 1, "fatal": 1,
    "critical": 2, "page": 2, "sev2": 2, "p2": 2, "2": 2, "high": 2, "error": 2,
    "warning": 3, "ticket": 3, "sev3": 3, "p3": 3, "3": 3, "medium": 3,
    "info": 4, "low": 4, "sev4": 4, "p4": 4, "4": 4, "none": 4,
}


class Settings(BaseSettings):
    # Later files win: `.env` overrides the demo's settings.
    model_config = SettingsConfigDict(env_file=(DEMO_ENV_FILE, ".env"), extra="ignore", populate_by_name=True)

    env: Literal["development", "production", "test"] = Field("development", alias="WARROOM_ENV")
    slack_bot_token: str = Field(DEV_BOT_TOKEN, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str = Field(DEV_SIGNING_SECRET, alias="SLACK_SIGNING_SECRET")
    # Empty: slack.com with a real bot token, the local emulator with the development one.
    slack_api_url: str = Field("", alias="SLACK_API_URL")
    slack_app_token: str | None = Field(None, alias="SLACK_APP_TOKEN")
    # Seconds one Slack call may take before warroom treats its answer as lost (see bot.slack.client).
    slack_timeout_seconds: float = Field(15, gt=0, le=120, alias="WARROOM_SLACK_TIMEOUT_SECONDS")
    database_url: str = Field("sqlite:///warroom.db", alias="WARROOM_DATABASE_URL")
    alert_token: str = Field(DEV_ALERT_TOKEN, alias="WARROOM_ALERT_TOKEN")
    # Reads only (incident pages and API, /metrics): for dashboards and scripts that must not write.
    read_token: str | None = Field(None, alias="WARROOM_READ_TOKEN")
    # How long a link from `/incident web` works (once), and how long the browser stays signed in.
    signin_link_minutes: int = Field(10, gt=0, le=24 * 60, alias="WARROOM_SIGNIN_LINK_MINUTES")
    session_hours: int = Field(12, gt=0, le=24 * 30, alias="WARROOM_SESSION_HOURS")
    # False: /metrics needs a bearer token (WARROOM_ALERT_TOKEN or WARROOM_READ_TOKEN).
    metrics_public: bool = Field(True, alias="WARROOM_METRICS_PUBLIC")
    incidents_channel: str | None = Field(None, alias="WARROOM_INCIDENTS_CHANNEL")
    runbooks_dir: Path = Field(Path("runbooks"), alias="WARROOM_RUNBOOKS_DIR")
    playbooks_dir: Path = Field(Path("playbooks"), alias="WARROOM_PLAYBOOKS_DIR")
    templates_dir: Path | None = Field(None, alias="WARROOM_TEMPLATES_DIR")
    # Empty: the hosts named in playbooks/targets.yaml (after WARROOM_TARGET_* overrides).
    action_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="WARROOM_ACTION_HOSTS")
    public_url: str = Field("http://127.0.0.1:8080", alias="WARROOM_PUBLIC_URL")
    log_format: Literal["text", "json"] = Field("text", alias="WARROOM_LOG_FORMAT")
    log_level: str = Field("INFO", alias="WARROOM_LOG_LEVEL")
    channel_template: str = Field(DEFAULT_CHANNEL_TEMPLATE, alias="WARROOM_CHANNEL_TEMPLATE")
    private_channels: bool = Field(False, alias="WARROOM_PRIVATE_CHANNELS")
    thread_only_severities: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [4], alias="WARROOM_THREAD_ONLY_SEVERITIES"
    )
    severity_map: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_MAP), alias="WARROOM_SEVERITY_MAP"
    )
    default_severity: int = Field(3, ge=1, le=4, alias="WARROOM_DEFAULT_SEVERITY")
    max_body_bytes: int = Field(1024 * 1024, gt=0, alias="WARROOM_MAX_BODY_BYTES")
    max_value_length: int = Field(16384, gt=0, alias="WARROOM_MAX_VALUE_LENGTH")
    trace_retention_days: int = Field(30, gt=0, alias="WARROOM_TRACE_RETENTION_DAYS")
    # Failing traces arriving during an incident: at most one post to its room per this many seconds.
    traces_post_every_seconds: float = Field(60, gt=0, alias="WARROOM_TRACES_POST_EVERY_SECONDS")
    worker_enabled: bool = Field(True, alias="WARROOM_WORKER")
    # Worker threads per process: a slow Slack call for one room holds up one thread, not the rest.
    worker_threads: int = Field(4, ge=1, le=32, alias="WARROOM_WORKER_THREADS")
    # Multiplies warroom's own count of Slack's rate limits (bot.slack.budgets): above 1 for a
    # workspace Slack allows more, below 1 to leave room for other apps on the same token.
    slack_budget_scale: float = Field(1.0, gt=0, le=1000, alias="WARROOM_SLACK_BUDGET_SCALE")
    # An incident card is updated after an alert at most once per this many seconds (a person's
    # action updates it at once).
    card_refresh_seconds: float = Field(10, ge=0, le=600, alias="WARROOM_CARD_REFRESH_SECONDS")
    scheduler_enabled: bool = Field(True, alias="WARROOM_SCHEDULER")
    # A run waiting for its confirmation and approval lapses this long after it was requested.
    approval_timeout_minutes: int = Field(15, gt=0, alias="WARROOM_APPROVAL_TIMEOUT_MINUTES")
    ack_escalation_minutes: int = Field(10, gt=0, alias="WARROOM_ACK_ESCALATION_MINUTES")
    # Correlation: a new alert group joins the open incident whose groups share these labels'
    # values (a runbook's `correlate:` overrides it; empty: every group opens its own), within
    # this many minutes since that incident's last new group.
    correlate: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["service"], alias="WARROOM_CORRELATE")
    correlation_window_minutes: int = Field(30, ge=0, alias="WARROOM_CORRELATION_WINDOW_MINUTES")
    # Storm mode: this many new incidents workspace-wide within the first window (or for one
    # service within the second) and a service's further groups join one storm incident until no
    # new group came for the quiet period. 0 incidents: off.
    storm_incidents: int = Field(5, ge=0, alias="WARROOM_STORM_INCIDENTS")
    storm_minutes: int = Field(2, gt=0, alias="WARROOM_STORM_MINUTES")
    storm_service_incidents: int = Field(3, ge=0, alias="WARROOM_STORM_SERVICE_INCIDENTS")
    storm_service_minutes: int = Field(5, gt=0, alias="WARROOM_STORM_SERVICE_MINUTES")
    storm_quiet_minutes: int = Field(10, gt=0, alias="WARROOM_STORM_QUIET_MINUTES")
    # A resolved incident nobody closed is closed (and its channel archived) this long after; 0: never.
    auto_close_days: int = Field(7, ge=0, alias="WARROOM_AUTO_CLOSE_DAYS")
    # When a trace counts as failing (the trace rules; the SLO file can define its own per SLO).
    hallucination_threshold: float = Field(0.5, ge=0, le=1, alias="WARROOM_HALLUCINATION_THRESHOLD")
    latency_threshold_ms: float = Field(2000, gt=0, alias="WARROOM_LATENCY_THRESHOLD_MS")
    cost_budget: float | None = Field(None, gt=0, alias="WARROOM_COST_BUDGET")
    alertmanager_url: str | None = Field(None, alias="WARROOM_ALERTMANAGER_URL")
    slo_file: Path | None = Field(None, alias="WARROOM_SLO_FILE")
    # Site patterns to redact too (a JSON list of regexes) and default rules to turn off (names).
    redact_patterns: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="WARROOM_REDACT_PATTERNS")
    redact_disable: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="WARROOM_REDACT_DISABLE")
    # OTLP ingest (`POST /v1/traces`): the resource attribute naming the release bundle, and the
    # body limit (compressed and inflated): exporters send batches of 512 spans with content.
    otlp_bundle_attribute: str = Field("service.version", min_length=1, alias="WARROOM_OTLP_BUNDLE_ATTRIBUTE")
    otlp_max_body_bytes: int = Field(16 * 1024 * 1024, gt=0, alias="WARROOM_OTLP_MAX_BODY_BYTES")
    # Worker processes that decode, map and validate OTLP requests (`bot.otlp.pool`), so that
    # concurrent exporters use every core; 0: in the serving process.
    otlp_processes: int = Field(default_factory=lambda: _otlp_processes(os.cpu_count()), ge=0, le=64,
                                alias="WARROOM_OTLP_PROCESSES")
    # Evals (bot.evals.target, bot.evals.gate): per service, the URL template a candidate bundle is
    # evaluated at (JSON: {"service": "http://…/v1/answer?bundle={{bundle}}"}), and JSON schema files.
    eval_targets: str | None = Field(None, alias="WARROOM_EVAL_TARGETS")
    eval_schema_dir: Path | None = Field(None, alias="WARROOM_EVAL_SCHEMA_DIR")
    # Automatic first response (runbooks' `auto:`): the global switch and its limits.
    automation: bool = Field(True, alias="WARROOM_AUTOMATION")
    automation_max_severity: int = Field(2, ge=1, le=4, alias="WARROOM_AUTOMATION_MAX_SEVERITY")
    automation_max_per_hour: int = Field(3, ge=0, alias="WARROOM_AUTOMATION_MAX_PER_HOUR")
    # The guard after a mitigating action: how long to wait for the SLI to improve, how often to
    # look, what counts as improved (under the objective, or down by this fraction), on how many requests.
    guard_seconds: int = Field(120, gt=0, le=3600, alias="WARROOM_GUARD_SECONDS")
    guard_check_seconds: float = Field(5, gt=0, le=300, alias="WARROOM_GUARD_CHECK_SECONDS")
    guard_improvement: float = Field(0.5, gt=0, le=1, alias="WARROOM_GUARD_IMPROVEMENT")
    guard_min_requests: int = Field(10, ge=1, alias="WARROOM_GUARD_MIN_REQUESTS")
    # Optional: judge the guard from Prometheus (the SLO file's queries) instead of traces.
    prometheus_url: str | None = Field(None, alias="WARROOM_PROMETHEUS_URL")

    @field_validator("action_hosts", "correlate", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("redact_patterns", mode="before")
    @classmethod
    def _parse_patterns(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except ValueError:
                raise ValueError('expected a JSON list of regular expressions, e.g. ["ACME-\\\\d{6}"]') from None
        return value

    @field_validator("redact_disable", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _check_redaction(self) -> Settings:
        try:
            Redactor(self.redact_patterns, disabled=self.redact_disable)
        except RedactionPatternError as exc:
            raise ValueError(f"WARROOM_REDACT_PATTERNS / WARROOM_REDACT_DISABLE: {exc}") from None
        return self

    @field_validator("thread_only_severities", mode="before")
    @classmethod
    def _split_ints(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(v) for v in value.split(",") if v.strip()]
        return value

    @field_validator("severity_map", mode="before")
    @classmethod
    def _parse_map(cls, value: object) -> object:
        if isinstance(value, str):
            # Extends the defaults, so a team only names the values it uses differently.
            merged = dict(DEFAULT_SEVERITY_MAP)
            merged.update({k.lower(): int(v) for k, v in json.loads(value).items()})
            return merged
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack-sdk urljoins method names onto the base URL; without the slash "/api" is lost.
        return value if not value or value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _slack_for_the_token(self) -> Settings:
        # A development token sent to slack.com is an invalid_auth at best and a leak of what the
        # bot was about to post at worst: without a real token, Slack is the local emulator.
        if not self.slack_api_url:
            self.slack_api_url = LOCAL_SLACK_API_URL if self.slack_bot_token == DEV_BOT_TOKEN else REAL_SLACK_API_URL
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.env == "production":
            for name, value, dev in (
                ("WARROOM_ALERT_TOKEN", self.alert_token, DEV_ALERT_TOKEN),
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret, DEV_SIGNING_SECRET),
                ("SLACK_BOT_TOKEN", self.slack_bot_token, DEV_BOT_TOKEN),
            ):
                if value == dev:
                    raise ValueError(f"{name} must be set when WARROOM_ENV=production")
        return self

    def redactor(self, known_secrets: Iterable[str] = ()) -> Redactor:
        """The redactor every surface uses: the WARROOM_REDACT_* settings, and warroom's own secrets."""
        tokens = ((self.slack_bot_token, DEV_BOT_TOKEN), (self.slack_signing_secret, DEV_SIGNING_SECRET),
                  (self.alert_token, DEV_ALERT_TOKEN), (self.slack_app_token, None))
        own = [value for value, dev in tokens if value and value != dev]  # the public dev defaults are no secret
        # A value this short cannot be told from ordinary text everywhere (the playbook runner still
        # masks it in its own results).
        known = [value for value in (*own, *known_secrets) if len(value) >= KNOWN_SECRET_MIN]
        return Redactor(self.redact_patterns, disabled=self.redact_disable, known_secrets=known)

    def failure_rules(self) -> FailureRules:
        """The thresholds that make a trace a failure (WARROOM_HALLUCINATION_THRESHOLD, …)."""
        return FailureRules(hallucination_threshold=self.hallucination_threshold,
                            latency_ms_threshold=self.latency_threshold_ms, cost_budget=self.cost_budget)


def _otlp_processes(cores: int | None) -> int:
    """One per core, at most 4; none on one core, where another process adds only the copying."""
    return 0 if not cores or cores < 2 else min(cores, 4)

