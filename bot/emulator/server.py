"""The emulator process: Starlette app factory and ``Emulator``, which runs it in a thread.

    emu = Emulator(signing_secret="s3cret")
    base = emu.start()                       # http://127.0.0.1:PORT
    client = WebClient(token=emu.token, base_url=emu.api_url)
    emu.bot_url = "http://127.0.0.1:8000/slack/events"
    emu.command("/incident ack", user="U0PRIYA", channel="C0INCIDENTS")
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bot.emulator import control, page, responses
from bot.emulator.api import WebApi
from bot.emulator.driver import BotReply, Driver
from bot.emulator.limits import FaultInjector, RateLimiter
from bot.emulator.socket_mode import SocketModeHub
from bot.emulator.state import Call, Channel, Message, Response, Workspace
from bot.serving import wait_until

T = TypeVar("T")
DEFAULT_SIGNING_SECRET = "emulator-signing-secret"
DEFAULT_USER = "U0PRIYA"
DEFAULT_CHANNEL = "C0INCIDENTS"


def create_app(emu: Emulator) -> Starlette:
    api = emu.web_api
    return Starlette(routes=[
        Route("/api/{method}", api.handle, methods=["GET", "POST"]),
        Route("/response/{rid}", responses.endpoint(emu.state, emu.faults), methods=["POST"]),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        *control.routes(emu.faults),
        emu.socket_mode.route(),
        *page.routes(emu),
    ])


class Emulator:
    """A local Slack workspace: Web API on loopback, a driver that plays Slack towards the bot."""

    def __init__(self, seed: str | Path | dict[str, Any] | None = None,
                 signing_secret: str = DEFAULT_SIGNING_SECRET, bot_url: str | None = None,
                 token: str = "xoxb-warroom", rate_limits: bool = False, app_token: str = "xapp-1-warroom") -> None:
        self.state = Workspace.from_seed(seed)
        self.token = token
        self.signing_secret = signing_secret
        self.rate_limits = rate_limits  # what reset() goes back to
        self.limiter = RateLimiter()
        self.limiter.configure(enabled=rate_limits)
        self.faults = FaultInjector()
        self.app_token = app_token  # Socket Mode's app-level token, for apps.connections.open
        self.socket_mode = SocketModeHub()
        self.web_api = WebApi(self.state, token, self.limiter, self.faults,
                              socket_mode=(app_token, self.socket_mode, lambda: self.base_url))
        self.driver = Driver(self.state, signing_secret, lambda: self.base_url)
        self.driver.bot_url = bot_url
        self.driver.socket = self.socket_mode
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------
    def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Serve in a daemon thread; return the base URL once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(self), log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="slack-emulator", daemon=True)
        self._thread.start()
        self._wait(lambda: self._server is not None and self._server.started, 10.0, "emulator did not start")
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def reset(self) -> None:
        """Fresh workspace from the seed, no faults, rate limits as constructed, no bot; the server keeps running."""
        self.state.reset()
        self.faults.clear()
        self.limiter.restore(enabled=self.rate_limits)
        self.driver.replies.clear()
        self.driver.bot_url = None
        self.driver.signing_secret = self.signing_secret

    def __enter__(self) -> Emulator:
        if not self.base_url:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """Give this to ``WebClient(base_url=...)``; the trailing slash matters (urljoin)."""
        return f"{self.base_url}/api/"

    @property
    def bot_url(self) -> str | None:
        return self.driver.bot_url

    @bot_url.setter
    def bot_url(self, url: str | None) -> None:
        self.driver.bot_url = url

    # inspection ----------------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        with self.state.lock:
            return list(self.state.calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def responses(self) -> list[Response]:
        with self.state.lock:
            return list(self.state.responses)

    @property
    def replies(self) -> list[BotReply]:
        return list(self.driver.replies)

    def channel_by_name(self, name: str) -> Channel | None:
        return self.state.channel_by_name(name)

    def messages(self, channel_id: str, viewer: str | None = None) -> list[Message]:
        """Messages oldest first; ephemeral ones only when ``viewer`` is their user."""
        return self.state.visible_messages(channel_id, viewer)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0, message: str = "") -> T:
        """Poll until ``predicate()`` is truthy and return it; on timeout raise with recent calls."""
        return self._wait(predicate, timeout, message or f"condition {getattr(predicate, '__name__', predicate)}")

    def _wait(self, predicate: Callable[[], T], timeout: float, message: str) -> T:
        try:
            return wait_until(predicate, timeout=timeout, what=message)
        except AssertionError:
            recent = [f"{c.method}->{c.response.get('error', 'ok') if c.response else c.status}"
                      for c in self.state.calls[-10:]]
            raise TimeoutError(f"{message} not met within {timeout}s; last Web API calls: {recent}") from None

    # control -------------------------------------------------------------------------------
    def inject_fault(self, method: str, kind: str = "500", times: int = 1, delay_s: float = 5.0,
                     retry_after: int = 1) -> None:
        """Make the next ``times`` calls to ``method`` fail: "500", "timeout" (the work happens, the
        answer comes ``delay_s`` later), "delay" (answer and work after ``delay_s``), "429"
        (``Retry-After: retry_after``) or "error:<code>". Also over HTTP: ``POST /control/faults``."""
        self.faults.inject(method, kind, times, delay_s, retry_after)

    def set_rate_limits(self, enabled: bool = True, per_channel_per_second: float | None = None,
                        channel_burst: int | None = None, tier_per_minute: dict[str, float] | None = None) -> None:
        self.limiter.configure(enabled, per_channel_per_second, channel_burst, tier_per_minute)

    # driver (Slack -> bot) -----------------------------------------------------------------
    def command(self, line: str, user: str = DEFAULT_USER, channel: str = DEFAULT_CHANNEL) -> BotReply:
        return self.driver.command(line, user, channel)

    def click(self, channel: str, message_ts: str, action_id: str, value: str | None = None,
              user: str = DEFAULT_USER) -> BotReply:
        return self.driver.click(channel, message_ts, action_id, value, user)

    def select(self, channel: str, message_ts: str, action_id: str, option_value: str,
               user: str = DEFAULT_USER) -> BotReply:
        return self.driver.select(channel, message_ts, action_id, option_value, user)

    def submit_view(self, view_id: str, values: dict[str, Any], user: str | None = None) -> BotReply:
        return self.driver.submit_view(view_id, values, user)

    def react(self, channel: str, ts: str, name: str = "pushpin", user: str = DEFAULT_USER, removed: bool = False,
              event_id: str | None = None, retry_num: int | None = None) -> BotReply:
        return self.driver.react(channel, ts, name, user, removed, event_id, retry_num)

    def event(self, event: dict[str, Any], event_id: str | None = None, retry_num: int | None = None,
              retry_reason: str = "http_timeout") -> BotReply:
        return self.driver.event(event, event_id, retry_num, retry_reason)

    def url_verification(self, challenge: str | None = None) -> BotReply:
        return self.driver.url_verification(challenge)


def run(host: str = "127.0.0.1", port: int = 3000, bot_url: str | None = None,
        signing_secret: str = DEFAULT_SIGNING_SECRET, seed: str | Path | None = None,
        token: str = "xoxb-warroom", faults: list[dict[str, Any]] | None = None, rate_limits: bool = True) -> None:
    """Blocking entry point for ``warroom emulator``; ``faults``: `control.parse_fault` results."""
    emu = Emulator(seed=seed, signing_secret=signing_secret, bot_url=bot_url, token=token, rate_limits=rate_limits)
    emu.base_url = f"http://{host}:{port}"
    for fault in faults or []:
        emu.faults.inject(**fault)
    print(f"Slack emulator on {emu.base_url}  (open it to watch and act; SLACK_API_URL={emu.api_url}, "
          f"token {token}, bot at {bot_url or 'none'}); faults: {emu.base_url}{control.PATH}; "
          f"{limits_banner(rate_limits)}", flush=True)
    uvicorn.run(create_app(emu), host=host, port=port, log_level="warning", lifespan="off")


def limits_banner(rate_limits: bool) -> str:
    """What a person running the emulator needs to know about its pace."""
    if rate_limits:
        return "Slack's rate limits on (method tiers, about 1 message/s per channel; --no-rate-limits turns them off)"
    return "rate limits off (--no-rate-limits): every call is answered at once, unlike Slack"
