from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_bolt import App
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from bot.emulator import Emulator
from bot.serving import ServerThread

SECRET = "test-signing-secret"


@pytest.fixture(scope="session")
def _running_emulator() -> Iterator[Emulator]:
    emulator = Emulator(signing_secret=SECRET)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def emu(_running_emulator: Emulator) -> Emulator:
    _running_emulator.reset()
    return _running_emulator


@pytest.fixture
def client(emu: Emulator) -> WebClient:
    return WebClient(token=emu.token, base_url=emu.api_url)


@pytest.fixture
def bolt_app(emu: Emulator) -> Iterator[App]:
    """A real Bolt app (verifying signatures, calling the emulator) served over HTTP; emu.bot_url points at it."""
    app = App(signing_secret=SECRET, client=WebClient(token=emu.token, base_url=emu.api_url))
    handler = SlackRequestHandler(app)

    async def events(request: Request):
        return await handler.handle(request)

    server = ServerThread(Starlette(routes=[Route("/slack/events", events, methods=["POST"])])).start()
    emu.bot_url = f"{server.url}/slack/events"
    yield app
    server.stop()
