"""The truncated-group story against the real Alertmanager (Debian's ``prometheus-alertmanager``).

Alertmanager posts to warroom with ``max_alerts: 1``: the incident learns of one alert of three,
and the group's last notification (all resolved) lists one alert and says two were left out, so
it cannot resolve the incident. The reconcile job asks Alertmanager's API, finds none of the
group's alerts active, and resolves it. Alerts are pushed through Alertmanager's own API
(``POST /api/v2/alerts``), as Prometheus or ``amtool alert add`` would.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.alerts.reconcile import reconcile_truncated
from bot.clock import utcnow
from bot.compose import compose
from bot.scheduler import JOBS_BY_ID
from bot.serving import ServerThread, free_port, stop_process, wait_until
from bot.web import create_app
from tests.conftest import ALERT_TOKEN, Warroom, make_settings

GROUP = {"alertname": "LLMSLOErrorBudgetBurn", "sloth_service": "llm-gateway", "sloth_slo": "hallucination-rate",
         "sloth_severity": "page"}


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    webhook = {"url": webhook_url, "send_resolved": True, "max_alerts": 1,
               "http_config": {"authorization": {"type": "Bearer", "credentials": ALERT_TOKEN}}}
    return {
        "route": {"receiver": "warroom", "group_by": list(GROUP), "group_wait": "1s", "group_interval": "1s",
                  "repeat_interval": "1h",
                  "routes": [{"receiver": "warroom", "matchers": ['sloth_severity=~"page|ticket"']}]},
        "receivers": [{"name": "warroom", "webhook_configs": [webhook]}],
    }


@pytest.fixture
def alertmanager_and_warroom(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Warroom]]:
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "apt-get install prometheus-alertmanager (./scripts/test installs it)"
    warroom_port, am_port = free_port(), free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(f"http://127.0.0.1:{warroom_port}/webhooks/alertmanager")))
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen([binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
                                f"--web.listen-address=127.0.0.1:{am_port}", f"--web.external-url={am_url}",
                                "--cluster.listen-address="], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    warroom = compose(make_settings(database_url, WARROOM_ALERTMANAGER_URL=am_url))
    runtime = warroom.runtime
    server = ServerThread(create_app(warroom), port=warroom_port).start()
    try:
        wait_until(lambda: _ready(am_url), timeout=30, what="Alertmanager /-/ready")
        yield am_url, Warroom(warroom, server.url)
    finally:
        stop_process(process, timeout=10)
        server.stop()
        runtime.engine.dispose()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def push(am_url: str, models: list[str], *, starts: datetime, ends: datetime) -> None:
    alerts = [{"labels": {**GROUP, "service": "llm-gateway", "model": model},
               "annotations": {"summary": f"{model} hallucinates"}, "startsAt": starts.isoformat(),
               "endsAt": ends.isoformat(), "generatorURL": "http://127.0.0.1:9090/graph"} for model in models]
    response = httpx.post(f"{am_url}/api/v2/alerts", json=alerts, timeout=5)
    assert response.status_code == 200, response.text


def test_a_truncated_group_resolves_once_the_real_alertmanager_holds_none_of_its_alerts(alertmanager_and_warroom):
    am_url, warroom = alertmanager_and_warroom
    models = ["primary-70b", "primary-8b", "rerank-1b"]
    starts = datetime.now(timezone.utc) - timedelta(minutes=1)
    push(am_url, models, starts=starts, ends=starts + timedelta(hours=1))

    def opened() -> dict[str, Any] | None:
        found = warroom.incidents()
        return found[0] if found and found[0]["alerts_unlisted"] == 2 else None

    incident = wait_until(opened, timeout=30, what="a truncated notification")
    assert incident["alerts_firing"] == 1  # one listed, two left out
    with httpx.Client(timeout=5) as client:
        assert reconcile_truncated(warroom.runtime.engine, client, am_url) == 0  # all three still fire

        push(am_url, models, starts=starts, ends=datetime.now(timezone.utc))
        wait_until(lambda: warroom.incident(incident["id"])["alerts_resolved"] == 1, timeout=30,
                   what="the group's truncated resolved notification")
        assert warroom.incident(incident["id"])["status"] == "triggered"  # it cannot say all resolved

    # the scheduler's job, as it runs every minute
    assert JOBS_BY_ID["reconcile-truncated"].body(warroom.runtime, utcnow()) == 1
    resolved = warroom.incident(incident["id"])
    assert resolved["status"] == "resolved" and resolved["alerts_firing"] == 0
    assert any(e["kind"] == "reconciled" for e in resolved["timeline"])
