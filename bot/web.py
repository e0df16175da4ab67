"""The ASGI app: webhooks, the JSON API, Slack's endpoint, pages, /metrics and /healthz.

`create_app` assembles one warroom process around a `Runtime`: the Slack side (Bolt app and the
outbox handlers that call Slack), the worker that performs queued effects, and the scheduler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from bot.effects import Handlers
from bot.routes import api, changes, otlp, pages, sessions, telemetry, webhooks
from bot.routes.errors import exception_handlers
from bot.runtime import Runtime
from bot.scheduler import stop as stop_scheduler
from bot.worker import Worker


def _start_scheduler(runtime: Runtime):  # noqa: ANN202
    from bot.scheduler import start_scheduler
    from bot.slo import load_slos

    slo_file = runtime.settings.slo_file
    if slo_file:
        from bot.scheduler import SENSORS_SERVICE
        from bot.sensors.spec import load_sensors
        runtime.services[SENSORS_SERVICE] = load_sensors(slo_file)
    return start_scheduler(runtime, slos=load_slos(slo_file) if slo_file else None)


def create_app(runtime: Runtime, *, extra_routes: list | None = None) -> Starlette:
    from datetime import timedelta

    from bot.actions.service import Actions
    from bot.slack.app import build_slack
    from bot.slack.endpoint import slack_route

    settings = runtime.settings
    runtime.services.setdefault("actions", Actions(
        runtime.engine, settings.playbooks_dir, settings.action_hosts or None,
        approval_timeout=timedelta(minutes=settings.approval_timeout_minutes)))
    from bot.automation.wiring import install as install_automation

    automatic = install_automation(runtime, runtime.services["actions"])
    slack = build_slack(runtime)
    handlers = Handlers(slack.handlers, automatic)
    worker = Worker(runtime.engine, handlers, wake=runtime.wake, on_give_up=slack.effects.report_give_up)
    runtime.services.update(worker=worker, slack=slack)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started = []
        if runtime.settings.worker_enabled:
            worker.start()
            started.append(worker.stop)
        if runtime.settings.scheduler_enabled:
            scheduler = _start_scheduler(runtime)
            started.append(lambda: stop_scheduler(scheduler, wait=False))
        if runtime.settings.slack_app_token:
            from bot.slack.socket_mode import start_socket_mode
            start_socket_mode(runtime)
        for start in runtime.services.get("on_start", []):
            start()
        try:
            yield
        finally:
            for stop in reversed(runtime.services.get("on_stop", [])):
                stop()
            for stop in started:
                stop()
            slack.context.pool.shutdown(wait=False, cancel_futures=True)

    routes = [*webhooks.routes, *api.routes, *changes.routes, slack_route(slack.app),
              *telemetry.routes, *otlp.routes, *pages.routes, *sessions.routes, *(extra_routes or [])]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    app.state.runtime = runtime
    return app
