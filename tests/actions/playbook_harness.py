"""Test harness for playbook runs: the example service on loopback and the arguments a run needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.actions import HostAllowList, Playbook, RunResult, run_playbook, run_undo
from bot.serving import serving, wait_until  # noqa: F401  (wait_until re-exported)
from examples.llm_service import ServiceState

PLAYBOOKS_DIR = Path(__file__).resolve().parents[2] / "playbooks"
CONTROL_TOKEN = "s3cret-control-token-4242"
INCIDENT = {"id": 7, "title": "llm-gateway hallucination rate", "labels": {"service": "llm-gateway"}}


@dataclass
class Gateway:
    """The example service on loopback, plus what a run needs to act on it."""

    url: str
    state: ServiceState
    client: httpx.Client
    sent: list[httpx.Request] = field(default_factory=list)

    @property
    def targets(self) -> dict[str, str]:
        return {"llm-gateway": self.url}

    @property
    def hosts(self) -> HostAllowList:
        return HostAllowList([urlsplit(self.url).netloc])

    def run(self, pb: Playbook, params: dict[str, Any], **overrides: Any) -> RunResult:
        return run_playbook(pb, params, **self._kwargs(overrides))

    def undo(self, pb: Playbook, run: RunResult, **overrides: Any) -> RunResult:
        return run_undo(pb, run, **self._kwargs(overrides))

    def _kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(incident=INCIDENT, secrets={"CONTROL_TOKEN": CONTROL_TOKEN},
                                      allowed_hosts=self.hosts, client=self.client, targets=self.targets)
        kwargs.update(overrides)
        return kwargs


serve = serving  # the example service and playbook tests use the shared loopback server
