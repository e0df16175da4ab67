from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from slack_bolt import App
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from bot.emulator import Emulator

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


class LoopbackServer:
    """Any ASGI app on 127.0.0.1:<ephemeral> in a daemon thread."""

    def __init__(self, app: Any) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "bot server did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture
def bolt_app(emu: Emulator) -> Iterator[App]:
    """A real Bolt app (verifying signatures, calling the emulator) served over HTTP; emu.bot_url points at it."""
    app = App(signing_secret=SECRET, client=WebClient(token=emu.token, base_url=emu.api_url))
    handler = SlackRequestHandler(app)

    async def events(request: Request):  # noqa: ANN202
        return await handler.handle(request)

    server = LoopbackServer(Starlette(routes=[Route("/slack/events", events, methods=["POST"])]))
    emu.bot_url = f"{server.url}/slack/events"
    yield app
    server.stop()
