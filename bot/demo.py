"""`warroom demo`: the whole story on one machine, no credentials.

Starts the Slack emulator, the example LLM service (serving the bad bundle v42), and warroom on a
SQLite file; registers bundles v41 (known-good) and v42; fires the sample SLO alert; prints where
to look and what to try. Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bot.config import DEV_ALERT_TOKEN, DEV_SIGNING_SECRET, Settings
from bot.serving import ServerThread, free_port, port_is_free

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ALERT = ROOT / "examples" / "alerts" / "alertmanager-hallucination.json"
CONTROL_TOKEN = "demo-control-token"
SERVICE = "llm-gateway"


def _port(wanted: int) -> int:
    return wanted if port_is_free(wanted) else free_port()


def sample_alert(now: datetime) -> dict[str, Any]:
    body = json.loads(SAMPLE_ALERT.read_text())
    starts = (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    for alert in body["alerts"]:
        alert["startsAt"] = starts
    return body


def demo_signin_link(runtime: Any, base_url: str) -> str:
    """A one-time sign-in link for Priya, as `/incident web` gives; it lasts the day, for a newcomer who reads first."""
    from bot import signin
    from bot.db import transaction

    with transaction(runtime.engine) as session:
        token = signin.issue_link(session, "U0PRIYA", valid_for=timedelta(hours=12))
    return f"{base_url}/signin/{token}"


def bundles_of(service_url: str) -> dict[str, dict[str, Any]]:
    """The example service's bundle catalogue, by version."""
    response = httpx.get(f"{service_url}/control/bundles", headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}, timeout=5)
    response.raise_for_status()
    return {b["version"]: b for b in response.json()["bundles"]}


def run_demo(*, port: int, emulator_port: int, service_port: int, data_dir: Path, watch: bool = False) -> None:
    from bot.emulator import Emulator
    from bot.runtime import Runtime
    from bot.db import upgrade
    from bot.logs import configure
    from bot.web import create_app
    from examples.llm_service import create_app as service_app

    data_dir.mkdir(parents=True, exist_ok=True)
    port, emulator_port, service_port = _port(port), _port(emulator_port), _port(service_port)
    warroom_url = f"http://127.0.0.1:{port}"

    emu = Emulator(signing_secret=DEV_SIGNING_SECRET)
    emu.start(port=emulator_port)
    service = ServerThread(service_app(control_token=CONTROL_TOKEN, warroom_url=warroom_url, warroom_token=DEV_ALERT_TOKEN,
                                       bundle="v42", traffic_rps=2), port=service_port).start()
    # Playbooks read their target and secrets from the environment (see playbooks/targets.yaml).
    os.environ.setdefault("WARROOM_TARGET_LLM_GATEWAY", service.url)
    os.environ.setdefault("WARROOM_SECRET_CONTROL_TOKEN", CONTROL_TOKEN)
    settings = Settings(_env_file=None, **{  # type: ignore[arg-type]
        "WARROOM_ENV": "development", "WARROOM_DATABASE_URL": f"sqlite:///{(data_dir / 'warroom.db').resolve()}",
        "SLACK_API_URL": emu.api_url, "SLACK_BOT_TOKEN": emu.token, "SLACK_SIGNING_SECRET": DEV_SIGNING_SECRET,
        "WARROOM_ALERT_TOKEN": DEV_ALERT_TOKEN, "WARROOM_INCIDENTS_CHANNEL": "C0INCIDENTS",
        "WARROOM_PUBLIC_URL": warroom_url, "WARROOM_RUNBOOKS_DIR": ROOT / "runbooks",
        "WARROOM_PLAYBOOKS_DIR": ROOT / "playbooks",
        **({"WARROOM_SLO_FILE": ROOT / "examples" / "slos.yaml"} if watch else {}),
    })
    configure(settings.log_format, "WARNING")
    runtime = Runtime.build(settings)
    if not watch:
        # The guard judges the automatic fallback from the service's traces by these SLOs even
        # when the built-in watcher is off (the sample alert stands in for Prometheus).
        from bot.automation.wiring import GUARD_SLOS_SERVICE
        from bot.slo import load_slos
        runtime.services[GUARD_SLOS_SERVICE] = load_slos(ROOT / "examples" / "slos.yaml")
    upgrade(runtime.engine)
    bot = ServerThread(create_app(runtime), port=port).start()
    emu.bot_url = f"{bot.url}/slack/events"

    auth = {"Authorization": f"Bearer {DEV_ALERT_TOKEN}"}
    now = datetime.now(timezone.utc)
    with httpx.Client(base_url=bot.url, headers=auth, timeout=10) as http:
        catalogue = bundles_of(service.url)
        for offset, version in ((timedelta(days=2), "v41"), (timedelta(minutes=17), "v42")):
            components = catalogue[version]["components"]
            http.post("/api/bundles", json={"service": SERVICE, "version": version, "components": components,
                                            "deployed_at": (now - offset).isoformat(), "known_good": version == "v41",
                                            "deployed_by": "deploy-bot"})
        fired = http.post("/webhooks/alertmanager", json=sample_alert(now)).json()

    signin_url = demo_signin_link(runtime, bot.url)

    print(f"""
warroom demo is running (data in {data_dir}/).

  Slack (emulator):   {emu.base_url}/            ← open this: watch #incidents and the new incident channel
  warroom incidents:  {bot.url}/incidents
    sign in first:    {signin_url}
                      (as Priya, works once; for a new link type /incident web in the emulator)
    JSON:             curl -H "Authorization: Bearer {DEV_ALERT_TOKEN}" {bot.url}/api/incidents
  example LLM service {service.url}/control/state (serving bad bundle v42; metrics at /metrics)

A sample SLO alert fired (incident #{fired.get('incident_id')}). Before anyone clicks, its runbook's automatic
fallback runs: the channel says what warroom did, why and how to undo it, then the guard's evidence
(hallucination ratio before → after) and the incident turns mitigated. The card names the change
before it (bundle v42 by deploy-bot), and warroom proposes the rollback to v41 for a person to approve.
In the emulator page, pick "Priya" and try:
  • click Acknowledge on the card
  • /incident undo 1            → put the route back (you confirm it); /incident auto off stops automation here
  • approve the rollback proposal as Sam (switch user to Sam)
  • react 📌 on a message, /incident status <text>, /incident resolve, then /incident postmortem

Ctrl-C stops everything.""", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print("stopping…", flush=True)
    bot.stop()
    service.stop()
    emu.stop()
