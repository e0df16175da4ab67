"""Socket Mode: Slack -> bot over a WebSocket the app opened, instead of signed HTTP requests.

The app calls ``apps.connections.open`` with its app-level token (``xapp-…``) and connects to the
URL it gets; Slack greets it with ``hello`` and then sends envelopes ``{"envelope_id", "type",
"payload", "accepts_response_payload"}`` of type ``events_api``, ``slash_commands`` or
``interactive``. The app acks each one with ``{"envelope_id", "payload"?}`` within 3 seconds; the
ack's payload plays the role of the HTTP response body (a slash command's reply, a modal's
``response_action``). An envelope nobody acks in time is, for the user, a failed request.

The driver runs in test threads and the WebSocket in the emulator's event loop, so a delivery
hands its frame to the loop and waits on a thread-safe future for the ack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)

PATH = "/socket-mode"
ACK_TIMEOUT_S = 3.0  # Slack's limit: after it the user sees the request fail


class SocketModeHub:
    """Open Socket Mode connections, the tickets that may open one, and envelopes awaiting acks."""

    def __init__(self, app_id: str = "A0WARROOM") -> None:
        self.app_id = app_id
        self._lock = threading.Lock()
        self._tickets: set[str] = set()
        self._sockets: list[tuple[WebSocket, asyncio.AbstractEventLoop]] = []
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        self.connected = threading.Event()

    # apps.connections.open -------------------------------------------------------------------
    def issue_url(self, base_url: str) -> str:
        """A one-use URL for a new connection (Slack's are ``wss://wss-primary.slack.com/link/?ticket=…``)."""
        ticket = secrets.token_hex(12)
        with self._lock:
            self._tickets.add(ticket)
        return f"{base_url.replace('http://', 'ws://', 1)}{PATH}?ticket={ticket}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._sockets)

    # the WebSocket endpoint ------------------------------------------------------------------
    def route(self) -> WebSocketRoute:
        return WebSocketRoute(PATH, self._serve)

    async def _serve(self, websocket: WebSocket) -> None:
        with self._lock:
            known = websocket.query_params.get("ticket") in self._tickets
            self._tickets.discard(websocket.query_params.get("ticket", ""))
        if not known:
            await websocket.close(code=4001)  # a stale or made-up ticket: the app must open a new URL
            return
        await websocket.accept()
        entry = (websocket, asyncio.get_running_loop())
        with self._lock:
            self._sockets.append(entry)
            count = len(self._sockets)
        await websocket.send_text(json.dumps({
            "type": "hello", "num_connections": count, "connection_info": {"app_id": self.app_id},
            "debug_info": {"host": "emulator", "approximate_connection_time": 18060}}))
        self.connected.set()
        try:
            while True:
                self._take_ack(await websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            with self._lock:
                self._sockets.remove(entry)
                if not self._sockets:
                    self.connected.clear()

    def _take_ack(self, text: str) -> None:
        try:
            ack = json.loads(text)
        except ValueError:
            log.warning("socket mode: a frame that is not JSON: %.200s", text)
            return
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        with self._lock:
            waiting = self._pending.pop(envelope_id, None) if isinstance(envelope_id, str) else None
        if waiting is not None and not waiting.done():
            waiting.set_result(ack)

    # delivery (driver side, any thread) ------------------------------------------------------
    def deliver(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0,
                retry_reason: str = "", timeout_s: float = ACK_TIMEOUT_S) -> tuple[dict[str, Any] | None, float]:
        """Send one envelope on the newest connection; ``(the ack, seconds)``, or ``(None, …)``
        when nobody acked it in ``timeout_s``."""
        with self._lock:
            if not self._sockets:
                raise RuntimeError("no Socket Mode connection: the app has not connected")
            websocket, loop = self._sockets[-1]
            envelope_id = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}"
            answer: Future[dict[str, Any]] = Future()
            self._pending[envelope_id] = answer
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        started = time.perf_counter()
        asyncio.run_coroutine_threadsafe(websocket.send_text(json.dumps(envelope)), loop).result(timeout_s)
        try:
            return answer.result(timeout=timeout_s), time.perf_counter() - started
        except FutureTimeout:
            with self._lock:
                self._pending.pop(envelope_id, None)
            return None, time.perf_counter() - started
