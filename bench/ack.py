"""Acknowledging under load: HTTP answer time of ``/incident ack`` and of the Acknowledge button,
20 people at once, next to ``/incident help`` (no database, no Slack call) and ``/incident status``
(one database read) sent the same way.

Run ``.venv/bin/python bench/ack.py --help``; see bench/README.md. Every ack is a real state change:
each one goes to its own incident, triggered until then. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import yaml

TARGET_P99_MS = 300.0


def seed(users: int) -> dict[str, Any]:
    """The emulator's default workspace plus ``users`` responders, all in @ml-oncall, so the
    runbook's owners invite every one of them into every incident channel (ack needs membership)."""
    from bot.emulator.state import DEFAULT_SEED

    data = copy.deepcopy(yaml.safe_load(DEFAULT_SEED.read_text()))
    ids = [f"U0BENCH{i:03d}" for i in range(users)]
    data["users"] += [{"id": u, "name": f"responder{i}", "email": f"responder{i}@example.com"}
                      for i, u in enumerate(ids)]
    for group in data["usergroups"]:
        if group["handle"] == "ml-oncall":
            group["users"] += ids
    for channel in data["channels"]:
        channel["members"] += ids
    return data


def open_rooms(emu: Any, room: common.Warroom, count: int, prefix: str) -> list[tuple[int, str, str]]:
    """``count`` incidents with their rooms set up: (incident, channel, card ts)."""
    ids = [room.fire(common.alert_body(f"{prefix}-{i}"))["incident_id"] for i in range(count)]
    cards = common.wait_rooms(emu, ids, timeout=30 + count)
    room.settle()
    return [(i, cards[i].channel, cards[i].ts) for i in ids]


def concurrently(users: list[str], per_user: int, send: Callable[[str, int], Any],
                 warm: Callable[[], Any] = lambda: None) -> tuple[list[float], list[Any]]:
    """Each user sends ``per_user`` requests one after another, all users at once; ``send(user, k)``
    gets the request's global index. Returns the answer times (the driver's) and the replies."""
    lock, latencies, replies = threading.Lock(), [], []
    start = threading.Barrier(len(users))

    def person(slot: int, user: str) -> None:
        warm()
        start.wait()
        for k in range(per_user):
            reply = send(user, slot * per_user + k)
            with lock:
                latencies.append(reply.elapsed_s)
                replies.append(reply)

    threads = [threading.Thread(target=person, args=(slot, user)) for slot, user in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, replies


def acknowledged(room: common.Warroom) -> set[int]:
    listing = room.http.get("/api/incidents", params={"status": "acknowledged", "limit": "1000"}).json()
    return {incident["id"] for incident in listing}


def wait_acknowledged(room: common.Warroom, incidents: set[int], timeout: float = 30) -> None:
    """A click is answered first and applied after (in the background), so wait for the changes;
    a change that never comes shows in the report, so this does not fail."""
    deadline = time.monotonic() + timeout
    while not incidents <= acknowledged(room) and time.monotonic() < deadline:
        time.sleep(0.05)


def card_updates(emu: Any, targets: list[tuple[int, str, str]], sent_at: dict[int, float]) -> list[float]:
    """Per incident, from the request to the worker's chat.update of its card: what people see."""
    by_ts = {ts: incident for incident, _, ts in targets}
    first: dict[str, float] = {}
    for call in emu.calls_to("chat.update"):  # in arrival order; Call.time is the emulator's wall clock
        ts = str(call.args.get("ts"))
        if ts in by_ts and ts not in first and by_ts[ts] in sent_at and call.time > sent_at[by_ts[ts]]:
            first[ts] = call.time
    return [first[ts] - sent_at[by_ts[ts]] for ts in first]


def bench(args: argparse.Namespace, workdir: Path) -> None:
    users = [f"U0BENCH{i:03d}" for i in range(args.users)]
    count = args.users * args.per_user
    emu = common.start_emulator(seed(args.users))
    try:
        with common.databases(args.db, workdir, args.pg_admin) as fresh, \
                common.warroom(emu, common.warroom_settings(emu, fresh("ack")), workdir) as room:
            print(f"opening {2 * count} incidents …", flush=True)
            started = time.perf_counter()
            by_command, by_click = open_rooms(emu, room, count, "cmd"), open_rooms(emu, room, count, "click")
            print(f"  rooms ready in {time.perf_counter() - started:.0f} s", flush=True)
            results = measure(emu, room, users, args.per_user, by_command, by_click)
            acked = acknowledged(room)
    finally:
        emu.stop()
    report(args, results, acked, by_command, by_click)


def measure(emu: Any, room: common.Warroom, users: list[str], per_user: int,
            by_command: list[tuple[int, str, str]], by_click: list[tuple[int, str, str]]) -> dict[str, Any]:
    sent: dict[int, float] = {}

    def ack_command(user: str, k: int) -> Any:
        incident, channel, _ = by_command[k]
        sent[incident] = time.time()
        return emu.command("/incident ack", user=user, channel=channel)

    def ack_click(user: str, k: int) -> Any:
        incident, channel, ts = by_click[k]
        sent[incident] = time.time()
        return emu.click(channel, ts, "incident.ack", user=user)

    def help_command(user: str, k: int) -> Any:
        return emu.command("/incident help", user=user)

    results: dict[str, Any] = {}
    # With the driver's own transport first, to show what it costs on this side (see keepalive_driver).
    results["help stock"] = concurrently(users, per_user, help_command)
    with common.keepalive_driver() as warm:
        # The floor: Bolt, the signature check and the HTTP round trip; no database, no Slack call.
        results["help"] = concurrently(users, per_user, help_command, warm)
        results["status"] = concurrently(users, per_user, lambda u, k: emu.command(
            "/incident status", user=u, channel=by_command[k][1]), warm)
        results["ack command"] = concurrently(users, per_user, ack_command, warm)
        room.settle()
        results["ack click"] = concurrently(users, per_user, ack_click, warm)
    wait_acknowledged(room, {i for i, _, _ in by_click})
    room.settle()
    results["command card"] = card_updates(emu, by_command, sent)
    results["click card"] = card_updates(emu, by_click, sent)
    return results


def report(args: argparse.Namespace, results: dict[str, Any], acked: set[int],
           by_command: list[tuple[int, str, str]], by_click: list[tuple[int, str, str]]) -> None:
    print(f"\n== ack: {args.db}, {args.users} concurrent users x {args.per_user} requests, {common.machine()} ==")
    print(common.HEADER)
    rows = (("/incident help, driver's stock transport", "help stock"),
            ("/incident help (floor: no DB, no Slack)", "help"), ("/incident status (one DB read)", "status"),
            ("/incident ack (HTTP answer)", "ack command"), ("Acknowledge button (HTTP answer)", "ack click"))
    for label, key in rows:
        latencies, replies = results[key]
        bad = sum(1 for r in replies if r.status != 200)
        verdict = ""
        if key.startswith("ack"):
            met = common.pct(latencies, 0.99) < TARGET_P99_MS
            verdict = f"target p99 < {TARGET_P99_MS:.0f}: {'met' if met else 'MISSED'}"
        print(common.row(label, latencies, (f"{bad} non-200 " if bad else "") + verdict))
    print(common.row("/incident ack -> card updated", results["command card"]))
    print(common.row("button -> card updated", results["click card"]))
    said = sum(1 for r in results["ack command"][1] if common.reply_text(r).startswith("Acknowledged"))
    print(f"  state changes: {len({i for i, _, _ in by_command} & acked)}/{len(by_command)} incidents acknowledged by "
          f"command ({said} replies said so), {len({i for i, _, _ in by_click} & acked)}/{len(by_click)} by button")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument("--per-user", type=int, default=5, help="requests per user and phase (default 5)")
    common.add_database_args(parser)
    common.run_bench(bench, parser.parse_args())


if __name__ == "__main__":
    main()
