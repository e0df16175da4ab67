"""Poll Unleash's client API and turn disabled ``llm.tool.<tool>`` flags into tool kill switches."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from .background import BackgroundLoop
from .state import ServiceState

log = logging.getLogger(__name__)
FLAG_PREFIX = "llm.tool."


def disabled_tools(features_payload: dict[str, Any]) -> set[str]:
    disabled: set[str] = set()
    for feature in features_payload.get("features", []) or []:
        name = str(feature.get("name", ""))
        if name.startswith(FLAG_PREFIX) and not feature.get("enabled", True):
            disabled.add(name[len(FLAG_PREFIX):])
    return disabled


class UnleashPoller(BackgroundLoop):
    def __init__(
        self, state: ServiceState, unleash_url: str, token: str | None, *, interval: float = 0.5,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__("unleash-poller")
        self.state = state
        self.url = unleash_url.rstrip("/") + "/api/client/features"
        self.headers = {"Authorization": token} if token else {}  # Unleash wants the bare token
        self.interval = interval
        self._client = client or httpx.Client(timeout=3.0)
        self._failing = False

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def poll_once(self) -> None:
        try:
            response = self._client.get(self.url, headers=self.headers)
            response.raise_for_status()
            payload = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            # Keep the last known switches: a flapping flag service must not re-enable a killed tool.
            if not self._failing:
                log.warning("polling Unleash at %s failed: %s", self.url, exc)
            self._failing = True
            return
        self._failing = False
        self.state.apply_unleash(disabled_tools(payload))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)
