"""The ASGI app: webhooks, the JSON API, Slack's endpoint, pages, /metrics and /healthz."""

from __future__ import annotations

from contextlib import asynccontextmanager
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from bot.routes import api, webhooks
from bot.runtime import Runtime


def create_app(runtime: Runtime, *, extra_routes: list | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for start in runtime.services.get("on_start", []):
            start()
        try:
            yield
        finally:
            for stop in reversed(runtime.services.get("on_stop", [])):
                stop()

    routes = [*webhooks.routes, *api.routes, *(extra_routes or [])]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app
