"""The one way warroom calls the Slack Web API.

Retries: 429 honouring ``Retry-After``, 5xx and connection errors (slack-sdk's retry handlers,
configured here, because its default retries only connection errors once). In the worker
(`bot.worker`) nothing waits: a call goes only if warroom's own budget for it allows
(`bot.slack.budgets`), a 429 is not slept on but raised as `RateLimited` (the worker puts the row
back until ``Retry-After``), and 5xx and connection errors are retried at once. "Already done"
answers (``already_in_channel``, ``already_pinned`` …) are success: every call is made so that
repeating it is safe. Anything else raises `SlackCallError` with an id that is logged and shown.

Posting is the exception: a ``chat.postMessage`` whose answer was lost (timeout, 5xx, dropped
connection) may have posted. `post_once` therefore tags every post with message metadata naming
it (a key) and, before posting again, looks for that key in the channel's history; slack-sdk's own
retries are off for it except on 429 (Slack did nothing then), and off altogether in the worker.
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
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from bot import redact
from bot.effects import Priority
from bot.errors import ExternalError
from bot.slack.budgets import Budgets, RateLimited
from bot.slack.text import redact_as_read
from bot.worker import current_lease

log = logging.getLogger(__name__)

ALREADY_DONE = frozenset({"already_in_channel", "already_pinned", "already_reacted", "already_archived",
                          "cant_invite_self", "already_starred"})


POST_EVENT_TYPE = "warroom_post"  # message metadata event_type on everything warroom posts
POST_TRIES = 3  # posts per `post_once` call when answers are lost (each after a history look-up)
HISTORY_LOOKBACK = 200  # newest messages searched for an earlier post (the retry comes minutes later at most)


class SlackCallError(ExternalError):
    """Slack refused or failed a call after retries."""

    def __init__(self, method: str, error: str, *, status: int | None = None, unanswered: bool = False) -> None:
        super().__init__(f"Slack {method} failed: {error}")
        self.method, self.error, self.status = method, error, status
        # No answer (timeout, 5xx, connection lost): Slack may have done it anyway.
        self.unanswered = unanswered or (status is not None and status >= 500)


# Seconds a Slack call may take. A stall of ~10 s (Slack's slow moments, a congested link) must
# still complete, since the person was already answered and waits for the result; slack-sdk's
# default of 30 s would hold a worker thread three times as long when Slack is really down.
SLACK_CALL_TIMEOUT_S = 15


def make_web_client(token: str, base_url: str, *, timeout: float = SLACK_CALL_TIMEOUT_S,
                    rate_limit_retries: int = 8) -> WebClient:
    client = WebClient(token=token, base_url=base_url, timeout=timeout)  # type: ignore[arg-type]  # slack-sdk says int; urllib takes a float
    client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        ServerErrorRetryHandler(max_retry_count=2),
    ]
    return client


def _rate_limit_only(client: WebClient) -> WebClient:
    """The same client, retrying only 429s: the caller decides what an unanswered post means."""
    twin = WebClient(token=client.token, base_url=client.base_url, timeout=client.timeout)
    twin.retry_handlers = [h for h in client.retry_handlers if isinstance(h, RateLimitErrorRetryHandler)]
    return twin


def _never_waits(client: WebClient, *, posting: bool = False) -> WebClient:
    """The same client for the worker: no 429 retry (the row waits, not the thread), 5xx and
    connection errors retried at once; a post is not retried at all (see `SlackGateway.post_once`)."""
    twin = WebClient(token=client.token, base_url=client.base_url, timeout=client.timeout)
    at_once = FixedValueRetryIntervalCalculator(0)
    twin.retry_handlers = [] if posting else [
        ConnectionErrorRetryHandler(max_retry_count=2, interval_calculator=at_once),
        ServerErrorRetryHandler(max_retry_count=2, interval_calculator=at_once),
    ]
    return twin


def retry_after(exc: SlackApiError) -> float:
    """A 429's ``Retry-After`` in seconds (one when Slack left it out)."""
    headers = getattr(exc.response, "headers", None) or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(1.0, float(value)) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0


# What people read in a call (message text, Block Kit text objects, topics); never ids, values or URLs.
_READ_KEYS = frozenset({"text", "topic", "purpose", "alt_text"})


def redact_readable(value: Any, redactor: redact.Redactor) -> Any:
    """Credentials out of everything readable in a Slack call: whatever the text came from, it is shown."""
    if isinstance(value, dict):
        return {key: redact_as_read(item, redactor) if key in _READ_KEYS and isinstance(item, str)
                else redact_readable(item, redactor) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_readable(item, redactor) for item in value]
    return value


class SlackGateway:
    def __init__(
        self, client: WebClient, metrics: Any | None = None, redactor: redact.Redactor = redact.DEFAULT,
        budgets: Budgets | None = None,
    ) -> None:
        self.client = client
        self.redactor = redactor  # the process's: everything readable in a call is redacted with it
        self.budgets = budgets or Budgets()
        self._post_client = _rate_limit_only(client)
        self._worker_client = _never_waits(client)
        self._worker_post_client = _never_waits(client, posting=True)
        self._metrics = metrics

    def call(self, method: str, *, json: bool = False, ok_errors: frozenset[str] = frozenset(),
             posting: bool = False, **args: Any) -> dict[str, Any]:
        """Call ``method``; JSON body for chat.* and views.* (as slack-sdk does), form otherwise.
        ``posting``: a post that must not be retried when its answer is lost (`post_once`). In the
        worker, raises `RateLimited` instead of waiting for Slack's rate limit."""
        payload = redact_readable({k: v for k, v in args.items() if v is not None}, self.redactor)
        channel = str(args["channel"]) if method == "chat.postMessage" and args.get("channel") else None
        lease = current_lease.get()
        in_worker = lease is not None
        if lease is not None:
            wait = self.budgets.take(method, channel, for_person=lease.priority == Priority.PERSON)
            if wait > 0:
                self._count(method, "deferred")
                raise RateLimited(method, wait, channel=channel)
            client = self._worker_post_client if posting else self._worker_client
        else:
            self.budgets.spend(method, channel)
            client = self._post_client if posting else self.client
        if lease is not None:
            lease.reached += 1  # sent: Slack may act on it, whatever comes back
        try:
            if json:
                response = client.api_call(method, json=payload)
            else:
                response = client.api_call(method, data=payload)
            self._count(method, "ok")
            return dict(response.data) if isinstance(response.data, dict) else {}
        except SlackApiError as exc:
            if getattr(exc.response, "status_code", None) == 429:
                seconds = retry_after(exc)
                self.budgets.exhaust(method, channel, seconds)
                if lease is not None:
                    lease.reached -= 1  # a 429 is a refusal: nothing was done
                if in_worker:
                    self._count(method, "deferred")
                    raise RateLimited(method, seconds, channel=channel, refused=True) from exc
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
            failure = SlackCallError(method, f"{type(exc).__name__}: {exc}", unanswered=True)
            log.warning("slack %s failed: %s", method, exc, extra={"error_id": failure.error_id})
            raise failure from exc

    # Thin named wrappers keep call sites readable and the body encoding right.
    def post(self, channel: str, text: str, blocks: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
        return self.call("chat.postMessage", json=True, channel=channel, text=text, blocks=blocks, **extra)

    def post_once(self, key: str, channel: str, text: str, blocks: list[dict] | None = None, *,
                  maybe_posted: bool = False, **extra: Any) -> dict[str, Any]:
        """Post at most once per ``key``, whatever is lost on the way.

        The post carries ``key`` in its metadata. ``maybe_posted``: an earlier attempt may have
        posted it (the caller recorded its intent before, or the effect is a retry), so look first.
        A post whose answer is lost is looked for before it is tried again.
        """
        thread_ts = extra.get("thread_ts")
        if maybe_posted and (found := self.find_post(channel, key, thread_ts)) is not None:
            return found
        metadata = {"event_type": POST_EVENT_TYPE, "event_payload": {"key": key}}
        for attempt in range(1, POST_TRIES + 1):
            try:
                return self.call("chat.postMessage", json=True, posting=True, channel=channel, text=text,
                                 blocks=blocks, metadata=metadata, **extra)
            except SlackCallError as exc:
                if not exc.unanswered:
                    raise
                found = self.find_post(channel, key, thread_ts)
                if found is not None:
                    return found
                if attempt == POST_TRIES:
                    raise
        raise AssertionError("unreachable")

    def find_post(self, channel: str, key: str, thread_ts: str | None = None) -> dict[str, Any] | None:
        """An earlier post with ``key`` in its metadata, shaped like chat.postMessage's answer."""
        if thread_ts:
            page = self.call("conversations.replies", channel=channel, ts=thread_ts, include_all_metadata="true",
                             limit=HISTORY_LOOKBACK)
        else:
            page = self.call("conversations.history", channel=channel, include_all_metadata="true",
                             limit=HISTORY_LOOKBACK)
        for message in page.get("messages", []):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == POST_EVENT_TYPE and payload.get("key") == key:
                log.info("found the earlier post %s in %s: not posting it again", key, channel)
                return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}
        return None

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> dict[str, Any]:
        # chat.update without blocks drops the blocks: always send them.
        return self.call("chat.update", json=True, channel=channel, ts=ts, text=text, blocks=blocks or [])

    def ephemeral(self, channel: str, user: str, text: str, blocks: list[dict] | None = None) -> dict[str, Any]:
        return self.call("chat.postEphemeral", json=True, channel=channel, user=user, text=text, blocks=blocks)

    def _count(self, method: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_calls.labels(method, result).inc()
