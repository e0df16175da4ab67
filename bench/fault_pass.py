"""Fault pass: a burst of alerts into two warroom processes while Slack fails, then count.

    .venv/bin/python bench/fault_pass.py [--alerts 20] [--db postgresql|sqlite]

Everything is a real process on 127.0.0.1: `warroom emulator` (faults injected through its
``/control/faults`` endpoint, as a user rehearsing would), two `warroom serve` processes sharing
one database, each with its worker. The alerts all have the same name, so their channel names
clash. At the end the script reads Slack back through the Web API (conversations.list/history,
not warroom's database) and prints, per incident, its channels, cards and announcements;
exit status 1 unless each is exactly one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.serving import free_port

TOKEN, ALERT_TOKEN, SECRET, INCIDENTS = "xoxb-fault-pass", "fault-pass-alerts", "fault-pass-secret", "C0INCIDENTS"
SLACK_TIMEOUT_S = 3  # warroom gives up on a Slack answer after this; "timeout" faults outlast it

FAULTS = [
    {"method": "conversations.create", "kind": "500", "times": 6},
    {"method": "conversations.create", "kind": "timeout", "times": 2, "delay_s": SLACK_TIMEOUT_S + 2},
    {"method": "conversations.create", "kind": "429", "times": 4, "retry_after": 1},
    {"method": "chat.postMessage", "kind": "500", "times": 6},
    {"method": "chat.postMessage", "kind": "timeout", "times": 4, "delay_s": SLACK_TIMEOUT_S + 2},
    {"method": "chat.postMessage", "kind": "429", "times": 6, "retry_after": 1},
    {"method": "chat.postMessage", "kind": "delay", "times": 10, "delay_s": 2},
]


def wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def alert(group: str) -> dict[str, Any]:
    labels = {"alertname": "LLMSLOErrorBudgetBurn", "service": "llm-gateway", "slo": "hallucination-rate",
              "severity": "critical", "group": group}
    return {"version": "4", "groupKey": f"{{}}:{{group=\"{group}\"}}", "status": "firing", "receiver": "warroom",
            "groupLabels": {"group": group}, "commonLabels": labels, "commonAnnotations": {},
            "externalURL": "http://alertmanager", "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": labels, "fingerprint": uuid.uuid4().hex[:16],
                        "annotations": {"title": "llm-gateway hallucination-rate burning"},
                        "startsAt": "2026-12-04T23:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-admin", default=os.environ.get("WARROOM_BENCH_PG",
                                                             "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warroom-fault-pass-"))
    pg_name = f"warroom_faults_{uuid.uuid4().hex[:8]}"
    if args.db == "postgresql":
        with psycopg.connect(args.pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        db_url = args.pg_admin.rsplit("/", 1)[0] + "/" + pg_name
    else:
        db_url = f"sqlite:///{work / 'warroom.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    emu_port = free_port()
    emu_base = f"http://127.0.0.1:{emu_port}"
    env.update({"PYTHONPATH": str(ROOT), "WARROOM_ENV": "test", "WARROOM_DATABASE_URL": db_url,
                "WARROOM_ALERT_TOKEN": ALERT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_API_URL": f"{emu_base}/api/", "WARROOM_INCIDENTS_CHANNEL": INCIDENTS,
                "WARROOM_RUNBOOKS_DIR": str(ROOT / "runbooks"), "WARROOM_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
                "WARROOM_WORKER": "true", "WARROOM_SCHEDULER": "false",
                "WARROOM_SLACK_TIMEOUT_SECONDS": str(SLACK_TIMEOUT_S)})
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *cmd: str) -> None:
        log = (work / f"{name}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "bot", *cmd], env=env, cwd=ROOT, stdout=log,
                                      stderr=subprocess.STDOUT))

    try:
        start("emulator", "emulator", "--port", str(emu_port))
        wait(lambda: up(f"{emu_base}/healthz"), 30, "the emulator")
        subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            start(f"warroom-{i}", "serve", "--port", str(port))
        for port in ports:
            wait(lambda p=port: up(f"http://127.0.0.1:{p}/healthz"), 60, f"warroom on {port}")
        response = httpx.post(f"{emu_base}/control/faults", json=FAULTS)
        response.raise_for_status()

        incident_ids = set()
        for i in range(args.alerts):
            port = ports[i % 2]
            reply = httpx.post(f"http://127.0.0.1:{port}/webhooks/alertmanager", json=alert(f"burst-{i}"),
                               headers={"Authorization": f"Bearer {ALERT_TOKEN}"}, timeout=30)
            reply.raise_for_status()
            incident_ids.add(reply.json()["incident_id"])
        started = time.monotonic()

        def all_open() -> bool:
            rows = [httpx.get(f"http://127.0.0.1:{ports[0]}/api/incidents/{i}", timeout=10).json()
                    for i in incident_ids]
            done = [r for r in rows if any(e["text"] == "Set-up: incident announced" for e in r.get("timeline", []))]
            return len(done) == len(incident_ids)

        wait(all_open, 300, "every incident's room")
        time.sleep(SLACK_TIMEOUT_S + 3)  # let late answers and any stray retry land before counting
        elapsed = time.monotonic() - started
        left = httpx.get(f"{emu_base}/control/faults").json()["faults"]
        return report(emu_base, ports[0], sorted(incident_ids), elapsed, left, work)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.db == "postgresql":
            with psycopg.connect(args.pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def report(emu_base: str, port: int, incident_ids: list[int], elapsed: float, left: list[Any], work: Path) -> int:
    slack = httpx.Client(base_url=f"{emu_base}/api/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    channels = slack.post("conversations.list", data={"types": "public_channel,private_channel"}).json()["channels"]
    incidents = {i: httpx.get(f"http://127.0.0.1:{port}/api/incidents/{i}", timeout=10).json() for i in incident_ids}
    announcements = slack.post("conversations.history", data={"channel": INCIDENTS, "limit": 999}).json()["messages"]
    rows, ok = [], True
    for incident_id, incident in incidents.items():
        marker = f":incident:{incident_id})"
        marked = [c for c in channels if c["purpose"]["value"].endswith(marker)]
        channel_id = incident["channel_id"]
        sharing = [i for i, other in incidents.items() if other["channel_id"] == channel_id]
        history = slack.post("conversations.history", data={"channel": channel_id, "limit": 999}).json()["messages"]
        cards = [m for m in history if any(str(b.get("block_id", "")).startswith("card:") for b in m.get("blocks", []))]
        announced = [m for m in announcements
                     if m["text"].startswith("New incident") and f"<#{channel_id}>" in json.dumps(m.get("blocks"))]
        row = {"incident": incident_id, "channel": incident.get("channel_name"), "marked_channels": len(marked),
               "incidents_in_its_channel": len(sharing), "cards": len(cards), "announcements": len(announced)}
        ok &= row["marked_channels"] == row["incidents_in_its_channel"] == row["cards"] == row["announcements"] == 1
        rows.append(row)
    unmarked = [c["name"] for c in channels
                if c["id"] != INCIDENTS and not c["purpose"]["value"].startswith("Incident room")
                and c["name"] not in ("general", "random") and c["name"].startswith("inc-")]
    for row in rows:
        print(json.dumps(row))
    totals: Counter[str] = Counter()
    for row in rows:
        for key in ("marked_channels", "cards", "announcements", "incidents_in_its_channel"):
            totals[f"{key}={row[key]}"] += 1
    print(json.dumps({"incidents": len(rows), "seconds_to_all_rooms": round(elapsed, 1), "tally": dict(totals),
                      "unmarked_orphan_channels": unmarked, "faults_left_unused": left, "logs": str(work),
                      "result": "PASS" if ok else "FAIL"}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
