"""Alert to incident room: from the Alertmanager webhook POST to the runbook in the new Slack channel.

Run ``.venv/bin/python bench/open_incident.py --help``; see bench/README.md. warroom (worker on)
runs in a child process against the Slack emulator in this one; the emulator's state is polled for
each incident's runbook message. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import common

AIM_CALLS_PER_INCIDENT = 10


def runbook_latency(message: Any, sent_at: float) -> float:
    # A message's ts is the emulator's wall clock when it stored the post (bot/emulator/state.py),
    # so ts - send time is exact whatever the polling interval.
    return float(message.ts) - sent_at


# --- one incident at a time -----------------------------------------------------------------


def one_at_a_time(emu: Any, room: common.Warroom, count: int) -> tuple[list[float], list[float], list[list[Any]]]:
    """Fire, wait for the runbook and then for the whole room, fire the next: no queueing.
    Returns webhook answer times, webhook-to-runbook times and each incident's Web API calls."""
    answers, latencies, calls = [], [], []
    runbooks, announced = common.MessageWatch(emu, "runbook"), common.MessageWatch(emu, "announce")
    for i in range(count):
        before = len(emu.calls)
        answer, latency = open_one(room, f"seq-{i}", runbooks, announced)
        room.settle()
        answers.append(answer)
        latencies.append(latency)
        calls.append(emu.calls[before:])
    return answers, latencies, calls


def open_one(room: common.Warroom, group: str, runbooks: common.MessageWatch,
             announced: common.MessageWatch) -> tuple[float, float]:
    """One new group: its webhook answer time and its webhook-to-runbook time, once its room is done."""
    sent_at, started = time.time(), time.perf_counter()
    incident_id = room.fire(common.alert_body(group))["incident_id"]
    answer = time.perf_counter() - started
    message = common.wait_until(lambda: runbooks.poll().get(incident_id), timeout=30,
                                what=f"the runbook of incident {incident_id}")
    common.wait_until(lambda: incident_id in announced.poll(), timeout=30, what=f"the room of incident {incident_id}")
    return answer, runbook_latency(message, sent_at)


# --- a burst --------------------------------------------------------------------------------


def burst(emu: Any, room: common.Warroom, count: int, senders: int) -> tuple[list[float], float]:
    """``count`` new groups posted by ``senders`` at once: the runbook latency includes the
    queue in front of the one worker. Returns latencies and the seconds until the last runbook."""
    sent: dict[int, float] = {}
    lock, next_index = threading.Lock(), itertools.count()
    started = time.time()

    def sender() -> None:
        while (i := next(next_index)) < count:
            at = time.time()
            incident_id = room.fire(common.alert_body(f"burst-{i}"))["incident_id"]
            with lock:
                sent[incident_id] = at

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    watch = common.MessageWatch(emu, "runbook")

    def all_posted() -> dict[int, Any] | None:
        found = watch.poll()
        return found if found.keys() >= sent.keys() else None

    runbooks = common.wait_until(all_posted, timeout=120, what=f"{count} runbooks", interval=0.01)
    latencies = [runbook_latency(runbooks[i], at) for i, at in sent.items()]
    return latencies, max(float(runbooks[i].ts) for i in sent) - started


# --- the Slack floor ------------------------------------------------------------------------


def slack_floor(emu: Any, calls: list[Any], repeats: int) -> list[float]:
    """The same Web API calls one incident made, replayed back to back with the client warroom
    uses (slack-sdk), no database: what the room costs in Slack round trips alone."""
    from slack_sdk.errors import SlackApiError

    from bot.slack.client import make_web_client

    client = make_web_client(emu.token, emu.api_url)
    times = []
    for k in range(repeats):
        started = time.perf_counter()
        for call in calls:
            args = dict(call.args)
            if call.method == "conversations.create":
                args["name"] = f"{args['name']}-replay-{k}"  # a new channel each time, as for a new incident
            try:
                if call.method.startswith(("chat.", "views.")):  # JSON, as SlackGateway sends them
                    client.api_call(call.method, json=args)
                else:
                    client.api_call(call.method, data=args)
            except SlackApiError:
                pass  # already_pinned and the like: still one round trip, which is what is measured
        times.append(time.perf_counter() - started)
    return times


# --- report ---------------------------------------------------------------------------------


def bench(args: argparse.Namespace, workdir: Path) -> None:
    emu = common.start_emulator()
    try:
        with common.databases(args.db, workdir, args.pg_admin) as fresh:
            settings = common.warroom_settings(emu, fresh("open"))
            with common.warroom(emu, settings, workdir) as room:
                answers, sequential, per_incident = one_at_a_time(emu, room, args.incidents)
                burst_latencies, drained = burst(emu, room, args.incidents, args.senders)
                room.settle()
                rss = room.server.peak_rss_mb()
            floor = slack_floor(emu, per_incident[0], args.floor_repeats)
    finally:
        emu.stop()

    counts = [len(c) for c in per_incident]
    print(f"\n== open incident: {args.db}, {common.machine()} ==")
    print(common.HEADER)
    print(common.row("webhook answer (intake)", answers))
    print(common.row("webhook -> runbook, one at a time", sequential))
    print(common.row(f"webhook -> runbook, burst from {args.senders} senders", burst_latencies,
                     f"last runbook {drained:.1f} s after the first POST"))
    print(common.row("Slack floor: one incident's calls replayed", floor, "(slack-sdk, no database)"))
    methods = Counter(c.method for c in per_incident[0])
    verdict = "within" if max(counts) <= AIM_CALLS_PER_INCIDENT else "OVER"
    print(f"  Web API calls per incident: mean {sum(counts) / len(counts):.1f}, max {max(counts)} "
          f"(aim <= {AIM_CALLS_PER_INCIDENT}: {verdict})")
    print("    " + ", ".join(f"{m} x{n}" if n > 1 else m for m, n in methods.items()))
    print(f"  warroom peak RSS {rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=100,
                        help="incidents per phase, each a new group (default 100)")
    parser.add_argument("--senders", type=int, default=10, help="concurrent senders in the burst (default 10)")
    parser.add_argument("--floor-repeats", type=int, default=30, help="replays of one incident's Slack calls")
    common.add_database_args(parser)
    common.run_bench(bench, parser.parse_args())


if __name__ == "__main__":
    main()
