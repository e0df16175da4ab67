"""The composition root: one warroom process, built once from its settings, as typed parts.

Whatever serves warroom (the ASGI app in `bot.web`, the CLI, the demo, the benches, the tests)
calls `compose` and reads the parts it needs off the `Warroom` it returns. Every part is built
here and handed to the parts that use it, so two warrooms built in one process share nothing:
not the runbooks, not the redactor, not the Slack app and its command table, not the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from bot.actions.service import Actions
from bot.automation.guard import Guard
from bot.automation.service import Automation
from bot.automation.wiring import install as install_automation
from bot.config import DEV_BOT_TOKEN, Settings
from bot.effects import Handlers, RefreshCard
from bot.otlp.pool import ExportPreparer
from bot.people import Names
from bot.redact import Redactor
from bot.runbooks import RunbookSet
from bot.runtime import Runtime
from bot.slack.app import SlackSide, build_slack
from bot.worker import Worker

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.sensors.spec import Sensor
    from bot.slo.spec import SLO
    from bot.slo.windows import WindowSet

Hook = Callable[[], None]


@dataclass(frozen=True)
class Watch:
    """What the scheduler's SLO watcher evaluates from traces: by default the SLO file's SLOs and
    quality sensors; nothing when no SLO file is set (the watch job then does nothing)."""

    slos: tuple[SLO, ...] = ()
    sensors: tuple[Sensor, ...] = ()
    windows: WindowSet | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Watch:
        if not settings.slo_file:
            return cls()
        from bot.sensors.spec import load_sensors
        from bot.slo import load_slos
        return cls(slos=tuple(load_slos(settings.slo_file)), sensors=tuple(load_sensors(settings.slo_file)))


@dataclass
class Warroom:
    """One warroom process's parts. Built by `compose`; nothing in it is looked up by name."""

    runtime: Runtime  # settings, engine, runbooks, redactor, people's names, metrics, the worker's wake event
    actions: Actions
    automation: Automation
    guard: Guard
    slack: SlackSide  # the Bolt app, its listeners and the Slack outbox handlers
    worker: Worker
    watch: Watch
    otlp: ExportPreparer  # the CPU part of OTLP requests, maybe in worker processes
    # Called when the served app starts and (in reverse) when it stops, after/before the worker
    # and the scheduler; Socket Mode adds its disconnect here.
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def runbooks(self) -> RunbookSet:
        return self.runtime.runbooks

    @property
    def redactor(self) -> Redactor:
        return self.runtime.redactor

    @property
    def people(self) -> Names | None:
        return self.runtime.people

    def start_scheduler(self) -> BackgroundScheduler:
        """The periodic jobs (`bot.scheduler`), ticking against this warroom until stopped."""
        from bot.scheduler import start_scheduler
        return start_scheduler(self)


def compose(settings: Settings, *, engine: Engine | None = None, slos: Sequence[SLO] | None = None,
            watch: Watch | None = None, people: Names | None = None) -> Warroom:
    """Build one warroom from ``settings``. The keyword arguments replace what settings would give:

    ``engine``: a database engine to share (default: one for WARROOM_DATABASE_URL);
    ``slos``: the SLOs the guard, postmortems and `/incident` read (default: WARROOM_SLO_FILE's);
    ``watch``: what the SLO watcher job evaluates (default: WARROOM_SLO_FILE's SLOs and sensors);
    ``people``: names for Slack user ids (default: a cached users.info, unless the token is the
    development placeholder, which no Slack would accept).

    Every outbox effect kind gets exactly one handler here, or this raises `HandlerSetError`
    naming the kind: a process that could not perform an effect does not start.
    """
    if people is None and settings.slack_bot_token != DEV_BOT_TOKEN:
        from bot.slack.directory import UserDirectory
        people = UserDirectory.for_settings(settings.slack_bot_token, settings.slack_api_url)
    runtime = Runtime.build(settings, engine, slos=slos, people=people)
    actions = Actions(runtime.engine, settings.playbooks_dir, settings.action_hosts or None,
                      approval_timeout=timedelta(minutes=settings.approval_timeout_minutes),
                      redactor=runtime.redactor)
    automatic = install_automation(runtime, actions)
    slack = build_slack(runtime, actions)
    worker = Worker(
        runtime.engine,
        Handlers(slack.handlers, automatic.handlers),
        wake=runtime.wake,
        on_give_up=slack.effects.report_give_up,
        threads=settings.worker_threads,
        coalesce_seconds={RefreshCard.kind: settings.card_refresh_seconds},
    )
    otlp = ExportPreparer(settings.otlp_processes)
    return Warroom(runtime=runtime, actions=actions, automation=automatic.automation, guard=automatic.guard,
                   slack=slack, worker=worker, watch=watch if watch is not None else Watch.from_settings(settings),
                   otlp=otlp, on_start=[otlp.start], on_stop=[otlp.stop])
