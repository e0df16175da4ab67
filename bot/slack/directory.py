"""Names for Slack user ids: ``users.info``, cached, for pages and the postmortem (`bot.people`).

A page must not wait on Slack: lookups use their own client with a short timeout and no retries,
and an id Slack could not name is remembered for a while too, so a Slack outage costs one slow
lookup per person per ``MISS_TTL_S`` at most; the id is shown meanwhile.
"""

from __future__ import annotations

import threading
import time

from bot.slack.client import SlackCallError, SlackGateway, make_web_client

HIT_TTL_S = 6 * 3600.0  # people rarely rename themselves mid-incident
MISS_TTL_S = 300.0
LOOKUP_TIMEOUT_S = 3


class UserDirectory:
    def __init__(self, gateway: SlackGateway, *, clock=time.monotonic) -> None:  # noqa: ANN001
        self.gateway = gateway
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str | None, float]] = {}

    @classmethod
    def for_settings(cls, token: str, api_url: str) -> UserDirectory:
        client = make_web_client(token, api_url, timeout=LOOKUP_TIMEOUT_S, rate_limit_retries=0)
        client.retry_handlers = []
        return cls(SlackGateway(client))

    def __call__(self, user_id: str) -> str | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(user_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        name = self._look_up(user_id)
        with self._lock:
            self._cache[user_id] = (name, now + (HIT_TTL_S if name else MISS_TTL_S))
        return name

    def _look_up(self, user_id: str) -> str | None:
        try:
            user = self.gateway.call("users.info", user=user_id).get("user") or {}
        except SlackCallError:
            return None
        profile = user.get("profile") or {}
        return profile.get("real_name") or user.get("real_name") or profile.get("display_name") or user.get("name")
