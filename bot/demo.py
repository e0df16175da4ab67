"""`warroom demo`: the whole story on one machine, no credentials.

Starts the Slack emulator, the example LLM service (serving the bad bundle v42), and warroom on a
SQLite file; registers bundles v41 (known-good) and v42, and the candidates v43 (the fix) and v44
(a paraphrase of v42's wrong answer) for the eval gate; fires the sample SLO alert; prints where
to look and what to try. Ctrl-C stops everything.

Each start is a fresh world: the emulator keeps its channels in memory only, so the demo's database
starts empty too (incident #1 is always the sample alert's, and its channel exists). With
``--keep`` both are kept instead: the emulator's channels are saved next to the database when the
demo stops and loaded on the next start. The settings
are written to ``.warroom-demo/warroom.env``, which the CLI reads, so ``warroom postmortem 1`` in
another terminal acts on the demo.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bot.config import DEMO_ENV_FILE, DEV_ALERT_TOKEN, DEV_SIGNING_SECRET, Settings
from bot.serving import ServerThread, free_port, port_is_free

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ALERT = ROOT / "examples" / "alerts" / "alertmanager-hallucination.json"
# The same bad bundle's ticket alert for another SLO: another Alertmanager group, the same incident.
SECOND_ALERT = ROOT / "examples" / "alerts" / "alertmanager-schema-ticket.json"
CONTROL_TOKEN = "demo-control-token"
SERVICE = "llm-gateway"


def _port(wanted: int) -> int:
    return wanted if wanted and port_is_free(wanted) else free_port()  # 0: any free port


def sample_alert(now: datetime, path: Path = SAMPLE_ALERT) -> dict[str, Any]:
    body = json.loads(path.read_text())
    starts = (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    for alert in body["alerts"]:
        alert["startsAt"] = starts
    return body


def demo_signin_link(runtime: Any, base_url: str) -> str:
    """A one-time sign-in link for Priya, as `/incident web` gives; it lasts the day, for a newcomer who reads first."""
    from bot import signin
    from bot.store.db import transaction

    with transaction(runtime.engine) as session:
        token = signin.issue_link(session, "U0PRIYA", valid_for=timedelta(hours=12))
    return f"{base_url}/signin/{token}"


def bundles_of(service_url: str) -> dict[str, dict[str, Any]]:
    """The example service's bundle catalogue, by version."""
    response = httpx.get(f"{service_url}/control/bundles", headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
                         timeout=5)
    response.raise_for_status()
    return {b["version"]: b for b in response.json()["bundles"]}


def eval_settings(service_url: str) -> dict[str, str]:
    """What `warroom evals …` needs to gate against the demo's service (written with the CLI settings)."""
    return {
        "WARROOM_EVAL_TARGETS": json.dumps({SERVICE: f"{service_url}/v1/answer?bundle={{{{bundle}}}}"}),
        "WARROOM_EVAL_SCHEMA_DIR": str(ROOT / "examples" / "llm_service" / "contracts"),
    }


def fresh_database(data_dir: Path) -> Path:
    """Remove the previous run's SQLite file (and its journal): its channels died with the emulator."""
    db = data_dir / "warroom.db"
    for path in (db, *(db.with_name(db.name + suffix) for suffix in ("-journal", "-wal", "-shm"))):
        path.unlink(missing_ok=True)
    return db


def save_workspace(emu: Any, path: Path) -> None:
    """The emulator's channels (messages, pins, bookmarks) and id counters, for ``--keep``."""
    ws = emu.state
    with ws.lock:
        path.write_bytes(pickle.dumps({"channels": ws.channels, "ids": ws._ids, "last_us": ws._last_us}))


def load_workspace(emu: Any, path: Path) -> None:
    # A file this demo wrote itself in its own data folder, never one received from elsewhere.
    saved = pickle.loads(path.read_bytes())
    ws = emu.state
    with ws.lock:
        ws.channels, ws._ids, ws._last_us = saved["channels"], saved["ids"], saved["last_us"]


def write_cli_settings(path: Path, values: dict[str, Any]) -> None:
    """The demo's settings as an env file the CLI reads (bot.config.DEMO_ENV_FILE)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `warroom demo`: the CLI run in this folder uses these settings.",
             "# .env and the environment override them; delete this file to stop using the demo's."]
    lines += [f"{key}={value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_demo(*, port: int, emulator_port: int, service_port: int, data_dir: Path, watch: bool = False,
             keep: bool = False, otlp: str | None = None, rate_limits: bool = True) -> None:
    """``otlp`` ("protobuf" or "json"): the service exports OpenTelemetry traces only, ships v42 once
    warroom has its v41 history (`bot.demo_otlp`), and warroom's watcher raises the incidents.
    ``rate_limits``: the emulator holds warroom to Slack's published limits, as a real workspace would."""
    from bot.compose import compose
    from bot.emulator import Emulator
    from bot.emulator.server import limits_banner
    from bot.logs import configure
    from bot.store.db import upgrade
    from bot.web import create_app
    from examples.llm_service import create_app as service_app

    data_dir.mkdir(parents=True, exist_ok=True)
    snapshot = data_dir / "emulator.pickle"
    database = data_dir / "warroom.db"
    kept = keep and snapshot.exists() and database.exists()
    if not kept:  # both fresh: the database's channels would not exist in a new emulator
        fresh_database(data_dir)
        snapshot.unlink(missing_ok=True)
    port, emulator_port, service_port = _port(port), _port(emulator_port), _port(service_port)
    warroom_url = f"http://127.0.0.1:{port}"

    emu = Emulator(signing_secret=DEV_SIGNING_SECRET, rate_limits=rate_limits)
    if kept:
        load_workspace(emu, snapshot)
    emu.start(port=emulator_port)
    service = ServerThread(service_app(control_token=CONTROL_TOKEN, warroom_url=warroom_url,
                                       warroom_token=DEV_ALERT_TOKEN,
                                       bundle="v41" if otlp else "v42", traffic_rps=5 if otlp else 2,
                                       otlp=otlp),  # type: ignore[arg-type]
                           port=service_port).start()
    # Playbooks read their target and secrets from the environment (see playbooks/targets.yaml).
    os.environ.setdefault("WARROOM_TARGET_LLM_GATEWAY", service.url)
    os.environ.setdefault("WARROOM_SECRET_CONTROL_TOKEN", CONTROL_TOKEN)
    values: dict[str, Any] = {
        "WARROOM_ENV": "development", "WARROOM_DATABASE_URL": f"sqlite:///{database.resolve()}",
        "SLACK_API_URL": emu.api_url, "SLACK_BOT_TOKEN": emu.token, "SLACK_SIGNING_SECRET": DEV_SIGNING_SECRET,
        "WARROOM_ALERT_TOKEN": DEV_ALERT_TOKEN, "WARROOM_INCIDENTS_CHANNEL": "C0INCIDENTS",
        "WARROOM_PUBLIC_URL": warroom_url, "WARROOM_RUNBOOKS_DIR": ROOT / "runbooks",
        "WARROOM_PLAYBOOKS_DIR": ROOT / "playbooks",
        **({"WARROOM_SLO_FILE": ROOT / "examples" / "slos.yaml"} if watch and not otlp else {}),
        **({"WARROOM_SLO_FILE": ROOT / "examples" / "slos-otlp.yaml"} if otlp else {}),
        **eval_settings(service.url),
    }
    settings = Settings(_env_file=None, **values)
    write_cli_settings(DEMO_ENV_FILE, values)
    from bot.runtime import redactor_for
    configure(settings.log_format, "WARNING", redactor_for(settings))
    # Without the watcher, the guard still judges the automatic fallback from the service's traces
    # by these SLOs (the sample alert stands in for Prometheus).
    from bot.slo import load_slos
    warroom = compose(settings, slos=None if watch else load_slos(ROOT / "examples" / "slos.yaml"))
    runtime = warroom.runtime
    upgrade(runtime.engine)
    bot = ServerThread(create_app(warroom), port=port).start()
    emu.bot_url = f"{bot.url}/slack/events"

    auth = {"Authorization": f"Bearer {DEV_ALERT_TOKEN}"}
    now = datetime.now(timezone.utc)
    incident: Any = "1"
    fired = ""
    if not kept:
        with httpx.Client(base_url=bot.url, headers=auth, timeout=10) as http:
            catalogue = bundles_of(service.url)
            for offset, version in ((timedelta(days=2), "v41"), (timedelta(minutes=17), "v42")):
                components = catalogue[version]["components"]
                http.post("/api/bundles", json={"service": SERVICE, "version": version, "components": components,
                                                "deployed_at": (now - offset).isoformat(),
                                                "known_good": version == "v41", "deployed_by": "deploy-bot"})
            # Candidates awaiting the eval gate, not deployed: dated after everything, so the registry
            # never takes them for the live bundle (a deploy re-registers a bundle with its real time).
            for version in ("v43", "v44"):
                http.post("/api/bundles", json={"service": SERVICE, "version": version,
                                                "components": catalogue[version]["components"],
                                                "deployed_at": (now + timedelta(days=30)).isoformat()})
            if otlp:
                from bot.demo_otlp import replay_history
                replayed = replay_history(bot.url, DEV_ALERT_TOKEN, otlp)  # type: ignore[arg-type]
                shipped = httpx.put(f"{service.url}/control/bundle", json={"version": "v42"},
                                    headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}, timeout=5)
                shipped.raise_for_status()
                print(f"OTLP mode ({otlp}): replayed {replayed} answers of v41 from the last 70 minutes, then shipped "
                      "v42; the watcher (examples/slos-otlp.yaml) raises burn-rate and drift alerts within a few "
                      "minutes, one incident for the service (the drift groups join it: WARROOM_CORRELATE).",
                      flush=True)
                fired = "Bad bundle v42 is live and sends OTLP traces only; incidents open as the watcher sees it."
            else:
                # v42 has answered users since its deploy: its traces of those minutes go in first, so the
                # guard's "before" ratio is measured from them and its "after" from live traffic (bot.demo_history).
                from bot.demo_history import replay_json
                replay_json(bot.url, DEV_ALERT_TOKEN, "v42", timedelta(minutes=17), per_minute=60 * 2)  # its 2/s
                incident = http.post("/webhooks/alertmanager", json=sample_alert(now)).json().get("incident_id")
                http.post("/webhooks/alertmanager", json=sample_alert(now, SECOND_ALERT))  # joins it
                fired = (f"Two SLO alert groups fired, one incident (#{incident}): its card lists the "
                         "schema-valid-rate\nticket under \"Also firing\". Before anyone clicks, "
                         "its runbook's automatic\n"
                         "fallback runs: the channel says what warroom did, why and how to undo it, then the guard's\n"
                         "evidence (hallucination ratio before → after) and the incident turns mitigated. "
                         "The card names\n"
                         "the change before it (bundle v42 by deploy-bot), and warroom proposes the rollback to v41.")
    world = ("the previous run's database and channels, kept (--keep)" if kept
             else "a fresh database and emulator; --keep keeps both for the next start")
    if kept:
        fired = "Nothing new fired: your incidents and their channels are as you left them."

    signin_url = demo_signin_link(runtime, bot.url)

    print(f"""
warroom demo is running: {world}, in {data_dir}/.

  Slack (emulator):   {emu.base_url}/            ← open this: watch #incidents and the new incident channel
                      ({limits_banner(rate_limits)})
  warroom incidents:  {bot.url}/incidents
    sign in first:    {signin_url}
                      (as Priya, works once; for a new link type /incident web in the emulator)
    JSON:             curl -H "Authorization: Bearer {DEV_ALERT_TOKEN}" {bot.url}/api/incidents
  example LLM service {service.url}/control/state (serving bad bundle v42; metrics at /metrics)

{fired}
In the emulator page, pick "Priya", open the incident channel and try:
  • click Acknowledge on the card
  • /incident undo 1            → put the route back (you confirm it, a second person approves);
                                  /incident auto off stops automation in this incident
  • the rollback proposal       → a person approves it (switch user to Sam and click Approve)
  • post a message and react 📌 on it, /incident status <text>, /incident resolve, /incident postmortem

The CLI in this folder now uses the demo's database and emulator (settings in {DEMO_ENV_FILE};
.env and the environment override them), e.g. in another terminal:
  .venv/bin/warroom postmortem {incident}      .venv/bin/warroom evals export {incident}

The loop closes (the gate evaluates candidate bundles, never production; eval traffic leaves no trace):
  • /incident evals             → this incident's eval cases; Label the refund one:
                                  expected "Refunds are available within 30 days."
  • in another terminal (the CLI reads the demo's settings, eval target included):
      warroom evals gate llm-gateway:v42   → fails and names the cases (exit 1)
      warroom evals gate llm-gateway:v44   → the paraphrase of v42's wrong answer fails too
      warroom evals gate llm-gateway:v43   → passes; v43 becomes known-good (exit 0)
  • /incident rollback          → now proposes v43, and says which gate run passed it

A storm (storm mode): `.venv/bin/warroom storm` sends 40 alert groups of 8 services at once; the
first services get their own incidents, the rest one storm incident each, in #incidents.

Ctrl-C stops everything.""", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print("stopping…", flush=True)
    bot.stop()
    service.stop()
    save_workspace(emu, snapshot)  # so that `--keep` finds the channels the database points at
    emu.stop()
