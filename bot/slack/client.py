"""The one way warroom calls the Slack Web API.

Retries: 429 honouring ``Retry-After``, 5xx and connection errors (slack-sdk's retry handlers,
configured here, because its default retries only connection errors once). "Already done"
answers (``already_in_channel``, ``already_pinned`` …) are success: every call is made so that
repeating it is safe. Anything else raises `SlackCallError` with an id that is logged and shown.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot import redact
from bot.errors import ExternalError

log = logging.getLogger(__name__)

ALREADY_DONE = frozenset({"already_in_channel", "already_pinned", "already_reacted", "already_archived",
                          "cant_invite_self", "already_starred"})


class SlackCallError(ExternalError):
    """Slack refused or failed a call after retries."""

    def __init__(self, method: str, error: str, *, status: int | None = None) -> None:
        super().__init__(f"Slack {method} failed: {error}")
        self.method, self.error, self.status = method, error, status


# Seconds a Slack call may take. A stall of ~10 s (Slack's slow moments, a congested link) must
# still complete, since the person was already answered and waits for the result; slack-sdk's
# default of 30 s would hold a worker thread three times as long when Slack is really down.
SLACK_CALL_TIMEOUT_S = 15


def make_web_client(token: str, base_url: str, *, timeout: int = SLACK_CALL_TIMEOUT_S,
                    rate_limit_retries: int = 8) -> WebClient:
    client = WebClient(token=token, base_url=base_url, timeout=timeout)
    client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        ServerErrorRetryHandler(max_retry_count=2),
    ]
    return client


# What people read in a call (message text, Block Kit text objects, topics); never ids, values or URLs.
_READ_KEYS = frozenset({"text", "topic", "purpose", "alt_text"})


def redact_readable(value: Any, redactor: redact.Redactor) -> Any:
    """Credentials out of everything readable in a Slack call: whatever the text came from, it is shown."""
    if isinstance(value, dict):
        return {key: redactor.redact_credentials(item) if key in _READ_KEYS and isinstance(item, str)
                else redact_readable(item, redactor) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_readable(item, redactor) for item in value]
    return value


class SlackGateway:
    def __init__(self, client: WebClient, metrics: Any | None = None) -> None:
        self.client = client
        self._metrics = metrics

    def call(self, method: str, *, json: bool = False, ok_errors: frozenset[str] = frozenset(), **args: Any) -> dict[str, Any]:
        """Call ``method``; JSON body for chat.* and views.* (as slack-sdk does), form otherwise."""
        payload = redact_readable({k: v for k, v in args.items() if v is not None}, redact.current())
        try:
            if json:
                response = self.client.api_call(method, json=payload)
            else:
                response = self.client.api_call(method, data=payload)
            self._count(method, "ok")
            return dict(response.data) if isinstance(response.data, dict) else {}
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error")) if exc.response is not None else "unknown_error"
            if error in ALREADY_DONE or error in ok_errors:
                self._count(method, "already")
                return dict(exc.response.data) if isinstance(exc.response.data, dict) else {"ok": False, "error": error}
            self._count(method, "error")
            failure = SlackCallError(method, error, status=getattr(exc.response, "status_code", None))
            log.warning("slack %s failed: %s", method, error, extra={"error_id": failure.error_id})
            raise failure from exc
        except (SlackRequestError, OSError) as exc:
            self._count(method, "error")
            failure = SlackCallError(method, f"{type(exc).__name__}: {exc}")
            log.warning("slack %s failed: %s", method, exc, extra={"error_id": failure.error_id})
            raise failure from exc

    # Thin named wrappers keep call sites readable and the body encoding right.
    def post(self, channel: str, text: str, blocks: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
        return self.call("chat.postMessage", json=True, channel=channel, text=text, blocks=blocks, **extra)

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> dict[str, Any]:
        # chat.update without blocks drops the blocks: always send them.
        return self.call("chat.update", json=True, channel=channel, ts=ts, text=text, blocks=blocks or [])

    def ephemeral(self, channel: str, user: str, text: str, blocks: list[dict] | None = None) -> dict[str, Any]:
        return self.call("chat.postEphemeral", json=True, channel=channel, user=user, text=text, blocks=blocks)

    def _count(self, method: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_calls.labels(method, result).inc()
