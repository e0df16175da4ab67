"""Acting from Slack: ``/incident disable-tool web_search`` and Confirm, until the example LLM
service reports the tool off, next to the same change made directly on its control API.

Run ``.venv/bin/python bench/actions.py --help``; see bench/README.md. The example service
(``examples.llm_service``) and the Slack emulator run in this process, warroom (worker on) in a
child. Between runs the tool is switched back on through the control API. Prints figures;
asserts nothing. The Unleash variant is not measured: it needs an Unleash server besides the
example service.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

import common
import httpx

CONTROL_TOKEN = "bench-control-token"
PRIYA = "U0PRIYA"  # in @ml-oncall, so the runbook's owners invite her and she may run playbooks
TOOL = "web_search"


class Service:
    """The example LLM service on a loopback port, and a keep-alive client for its control API."""

    def __init__(self) -> None:
        from bot.serving import ServerThread
        from examples.llm_service import create_app

        self.server = ServerThread(create_app(control_token=CONTROL_TOKEN, bundle="v42")).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=10,
                                 headers={"Authorization": f"Bearer {CONTROL_TOKEN}"})

    def tool_on(self) -> bool:
        return bool(self.http.get("/control/state").json()["tools"][TOOL])

    def set_tool(self, enabled: bool) -> None:
        self.http.put(f"/control/tools/{TOOL}", json={"enabled": enabled}).raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self.server.stop()


def run_once(emu: Any, service: Service, channel: str) -> dict[str, float]:
    """One disable-tool run, as a person does it: command, wait for the card, press Confirm."""
    service.set_tool(True)
    sent_at, started = time.time(), time.perf_counter()
    reply = emu.command(f"/incident disable-tool {TOOL}", user=PRIYA, channel=channel)
    match = re.search(r"run #(\d+)", common.reply_text(reply))
    if reply.status != 200 or not match:
        raise SystemExit(f"disable-tool was not accepted: {reply.status} {reply.body[:300]}")
    run_id = int(match.group(1))
    card = common.wait_until(lambda: _run_card(emu, channel, run_id), timeout=30, what=f"the card of run #{run_id}")
    clicked_at, click_started = time.time(), time.perf_counter()
    click = emu.click(channel, card.ts, "action.confirm", str(run_id), user=PRIYA)
    # Poll the service as a person watching it would, but tightly: 2 ms against runs of ~100 ms.
    common.wait_until(lambda: not service.tool_on(), timeout=30, what=f"{TOOL} off", interval=0.002)
    off = time.perf_counter()
    done = common.wait_until(lambda: _outcome(emu, channel, run_id), timeout=30, what=f"the outcome of run #{run_id}")
    if "succeeded" not in done.text:
        raise SystemExit(f"run #{run_id} did not succeed: {done.text}")
    return {"command": reply.elapsed_s, "card": float(card.ts) - sent_at, "click": click.elapsed_s,
            "click_to_off": off - click_started, "end_to_end": off - started,
            "verified": float(done.ts) - clicked_at if "(verified)" in done.text else float("nan")}


def _run_card(emu: Any, channel: str, run_id: int) -> Any:
    return next((m for m in emu.messages(channel) if common.block_number(m.blocks, "run") == run_id), None)


def _outcome(emu: Any, channel: str, run_id: int) -> Any:
    # The worker's channel line: "run #N `disable-tool tool=web_search` succeeded in 0.1 s (verified)".
    # (The card's own text also says "succeeded", without "in … s (verified)".)
    return next((m for m in emu.messages(channel) if m.text.startswith(f"run #{run_id} ")
                 and (" succeeded in " in m.text or " failed after " in m.text)), None)


def direct(service: Service, runs: int) -> list[float]:
    """The floor: the playbook's own two requests (PUT the tool off, GET the state) sent directly."""
    times = []
    for _ in range(runs):
        service.set_tool(True)
        started = time.perf_counter()
        service.set_tool(False)
        service.tool_on()
        times.append(time.perf_counter() - started)
    return times


def bench(args: argparse.Namespace, workdir: Path) -> None:
    emu, service = common.start_emulator(), Service()
    env = {"WARROOM_TARGET_LLM_GATEWAY": service.server.url, "WARROOM_SECRET_CONTROL_TOKEN": CONTROL_TOKEN}
    try:
        with common.databases(args.db, workdir, args.pg_admin) as fresh:
            with common.warroom(emu, common.warroom_settings(emu, fresh("actions")), workdir, env) as room:
                incident_id = room.fire(common.alert_body("actions"))["incident_id"]
                channel = common.wait_rooms(emu, [incident_id], timeout=30)[incident_id].channel
                room.settle()
                with common.keepalive_driver() as warm:  # the driver's per-request client is our cost, not warroom's
                    warm()
                    runs = [run_once(emu, service, channel) for _ in range(args.runs)]
                room.settle()
            floor = direct(service, args.runs)
    finally:
        service.stop()
        emu.stop()
    report(args, runs, floor)


def report(args: argparse.Namespace, runs: list[dict[str, float]], floor: list[float]) -> None:
    def column(key: str) -> list[float]:
        return [r[key] for r in runs if r[key] == r[key]]  # NaN (not verified) left out

    print(f"\n== actions: disable-tool {TOOL} x {args.runs}, {args.db}, {common.machine()} ==")
    print(common.HEADER)
    print(common.row("command -> tool off (Confirm pressed at once)", column("end_to_end")))
    print(common.row("Confirm click -> tool off", column("click_to_off")))
    print(common.row("Confirm click -> 'succeeded (verified)' line", column("verified"),
                     f"{len(column('verified'))}/{len(runs)} verified"))
    print(common.row("/incident disable-tool (HTTP answer)", column("command")))
    print(common.row("command -> confirmation card posted", column("card")))
    print(common.row("Confirm click (HTTP answer)", column("click")))
    print(common.row("floor: PUT tool off + GET state, direct", floor))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="disable-tool runs (default 30)")
    common.add_database_args(parser)
    common.run_bench(bench, parser.parse_args())


if __name__ == "__main__":
    main()
