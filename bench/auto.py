"""Automatic first response: alert delivered → warroom's automatic fallback verified, over many
incidents; and a change event → visible on an open incident's card.

Run ``.venv/bin/python bench/auto.py --help``; see bench/README.md. The example service and the
Slack emulator run in this process, warroom (worker on, automation on) in a child. Before each
incident the route is put back through the control API. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import common
import httpx

CONTROL_TOKEN = "bench-control-token"
FALLBACK = "safe-fallback-8b"
CHANGES_SERVICE = "auto-changes"  # bench alerts name their group as the service


class Service:
    def __init__(self) -> None:
        from bot.serving import ServerThread
        from examples.llm_service import create_app

        self.server = ServerThread(create_app(control_token=CONTROL_TOKEN, bundle="v42")).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=10,
                                 headers={"Authorization": f"Bearer {CONTROL_TOKEN}"})

    def route(self) -> str:
        return str(self.http.get("/control/state").json()["route"])

    def reset(self) -> None:
        self.http.put("/control/route", json={"route": "primary-70b"}).raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self.server.stop()


def _event_at(room: Any, incident_id: int, kind: str, needle: str = "") -> float | None:
    for event in room.incident(incident_id)["timeline"]:
        if event["kind"] == kind and needle in event["text"]:
            return datetime.fromisoformat(event["at"]).timestamp()
    return None


def one_incident(room: Any, service: Service, n: int) -> dict[str, float]:
    service.reset()
    sent = time.time()
    incident_id = room.fire(common.alert_body(f"auto-{n}"))["incident_id"]
    answered = time.time()
    common.wait_until(lambda: service.route() == FALLBACK, timeout=60, what="the route switch", interval=0.002)
    switched = time.time()
    verified = common.wait_until(lambda: _event_at(room, incident_id, "action_succeeded", "(verified)"), timeout=60,
                                 what="the verified run", interval=0.01)
    return {"webhook": answered - sent, "switched": switched - sent, "verified": verified - sent}


def one_change(room: Any, emu: Any, channel: str, n: int) -> float:
    summary = f"prompt answer-v42.{n} (bench)"
    sent = time.time()
    response = room.http.post("/api/changes", content=common.json.dumps(
        {"service": CHANGES_SERVICE, "kind": "prompt", "summary": summary, "who": "bench"}).encode())
    response.raise_for_status()

    def on_card() -> bool:
        return any(m.blocks and any(str(b.get("block_id", "")).startswith("card:") for b in m.blocks)
                   and summary in str(m.blocks) for m in emu.messages(channel))

    common.wait_until(on_card, timeout=30, what="the change on the card", interval=0.002)
    return time.time() - sent


def bench(args: argparse.Namespace, workdir: Path) -> None:
    emu, service = common.start_emulator(), Service()
    env = {"WARROOM_TARGET_LLM_GATEWAY": service.server.url, "WARROOM_SECRET_CONTROL_TOKEN": CONTROL_TOKEN}
    try:
        with common.databases(args.db, workdir, args.pg_admin) as fresh:
            settings = common.warroom_settings(emu, fresh("auto"), WARROOM_AUTOMATION=True,
                                               WARROOM_AUTOMATION_MAX_PER_HOUR=args.incidents + 10)
            with common.warroom(emu, settings, workdir, env) as room:
                one_incident(room, service, -1)  # warm-up: pools, caches, the first room
                room.settle()
                incidents = []
                for n in range(args.incidents):
                    incidents.append(one_incident(room, service, n))
                    room.settle()
                last = room.fire(common.alert_body(CHANGES_SERVICE))["incident_id"]
                channel = common.wait_rooms(emu, [last], timeout=30)[last].channel
                room.settle()
                changes = [one_change(room, emu, channel, n) for n in range(args.changes)]
    finally:
        service.stop()
        emu.stop()
    print(f"\n== auto: {args.incidents} incidents, {args.changes} changes, {args.db}, {common.machine()} ==")
    print(common.HEADER)
    print(common.row("alert sent -> automatic fallback verified", [r["verified"] for r in incidents]))
    print(common.row("alert sent -> route switched on the service", [r["switched"] for r in incidents]))
    print(common.row("alert webhook answered", [r["webhook"] for r in incidents]))
    print(common.row("change posted -> on the open incident's card", changes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=50, help="incidents, one automatic fallback each (default 50)")
    parser.add_argument("--changes", type=int, default=50, help="change events posted to an open incident (default 50)")
    common.add_database_args(parser)
    common.run_bench(bench, parser.parse_args())


if __name__ == "__main__":
    main()
