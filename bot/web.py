"""The ASGI app: webhooks, the JSON API, Slack's endpoint, pages, /metrics and /healthz.

`create_app` serves one composed warroom (`bot.compose`): its routes read the runtime, its
lifespan starts and stops the worker, the scheduler, Socket Mode and the warroom's own hooks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from bot.compose import Warroom
from bot.routes import api, changes, otlp, pages, sessions, telemetry, webhooks
from bot.routes.errors import exception_handlers
from bot.scheduler import stop as stop_scheduler


def create_app(warroom: Warroom, *, extra_routes: list | None = None) -> Starlette:
    from bot.slack.endpoint import slack_route

    settings, worker, slack = warroom.settings, warroom.worker, warroom.slack

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started: list[Callable[[], None]] = []
        if settings.worker_enabled:
            worker.start()
            started.append(worker.stop)
        if settings.scheduler_enabled:
            scheduler = warroom.start_scheduler()
            started.append(lambda: stop_scheduler(scheduler, wait=False))
        if settings.slack_app_token:
            from bot.slack.socket_mode import start_socket_mode
            start_socket_mode(warroom)
        for start in warroom.on_start:
            start()
        try:
            yield
        finally:
            for stop in reversed(warroom.on_stop):
                stop()
            for stop in started:
                stop()
            slack.context.pool.shutdown(wait=False, cancel_futures=True)

    routes = [*webhooks.routes, *api.routes, *changes.routes, slack_route(slack.app),
              *telemetry.routes, *otlp.routes, *pages.routes, *sessions.routes, *(extra_routes or [])]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    app.state.runtime = warroom.runtime
    app.state.warroom = warroom
    return app
