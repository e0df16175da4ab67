"""Alert storms through Slack's rate limits: what #incidents, the rooms and an acknowledging person see.

Run ``.venv/bin/python bench/storm.py --help``; see bench/README.md ("Storm (issue 18)"). warroom
(worker and scheduler on) runs in one or two child processes against the Slack emulator in this
one, with the emulator's rate limits on (Slack's tiers, about one message per second per channel).
Scenarios: one service's SLO family paging at once (page and ticket groups of many SLOs), and a
mixed storm of many services, with one process and with two on one PostgreSQL database. While each
storm runs, a person acknowledges incidents through the emulator, and the time until the card
shows it is measured. Prints figures next to the issue's targets; asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import common
import httpx

# The targets (#18).
TARGET_CHANNELS_SAME_SERVICE = 1
TARGET_ANNOUNCEMENTS_SAME_SERVICE = 1
TARGET_ACK_P99_S = 5.0

# A service's SLO family: the SLOs the runbooks know first, then per-route variants of them, so
# 25 SLOs x (page, ticket) make the 50 groups of one bad deploy.
SLO_BASES = ("hallucination-rate", "schema-valid-rate", "tool-call-success", "latency", "cost-per-request",
             "guardrail-block-rate", "retrieval-drift")
SEVERITIES = ("page", "ticket")
PERSON = "U0PRIYA"  # in @ml-oncall, whom every runbook invites: a member of every incident channel
ALERTS_FIELD = re.compile(r"\*Alerts\*\n(\d+) firing")
ACKED_FIELD = "*Acknowledged*"


# --- what is sent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One Alertmanager group as Sloth's rules make them: one SLO's page or ticket alerts."""

    key: str
    body: bytes
    fingerprints: tuple[str, ...]


def slo_name(k: int) -> str:
    base = SLO_BASES[k % len(SLO_BASES)]
    return base if k < len(SLO_BASES) else f"{base}-r{k // len(SLO_BASES)}"


def make_group(service: str, slo: str, severity: str, alerts: int) -> Group:
    from bot.alerts.fingerprint import fingerprint

    items: list[dict[str, Any]] = []
    for m in range(alerts):
        labels = {"alertname": "LLMSLOErrorBudgetBurn", "service": service, "slo": slo, "sloth_service": service,
                  "sloth_slo": slo, "sloth_severity": severity, "model": f"model-{m}"}
        items.append({"status": "firing", "labels": labels, "fingerprint": fingerprint(labels),
                      "annotations": {"title": f"{service} {slo} burning 14.4x",
                                      "summary": "error budget burn rate is too fast"},
                      "startsAt": "2026-03-14T02:06:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
                      "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=slo%3Asli_error"})
    group_labels = {"alertname": "LLMSLOErrorBudgetBurn", "sloth_service": service, "sloth_slo": slo,
                    "sloth_severity": severity}
    matchers = ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    key = '{}/{sloth_severity=~"page|ticket"}:{' + matchers + "}"
    common_labels = {k: v for k, v in items[0]["labels"].items() if k != "model"}
    body = {"receiver": "warroom", "status": "firing", "alerts": items, "groupLabels": group_labels,
            "commonLabels": common_labels, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
            "version": "4", "groupKey": key, "truncatedAlerts": 0, "notification_reason": "first notification"}
    return Group(key, json.dumps(body).encode(), tuple(a["fingerprint"] for a in items))


def service_groups(service: str, count: int, alerts: int) -> list[Group]:
    """``count`` groups of one service: SLO k's page, then its ticket, for k = 0, 1, …"""
    return [make_group(service, slo_name(i // 2), SEVERITIES[i % 2], alerts) for i in range(count)]


@dataclass
class Scenario:
    name: str
    groups: list[Group]
    processes: int
    same_service: bool


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    same = service_groups("llm-gateway", args.groups, args.alerts_per_group)
    mixed = [g for s in range(args.services)
             for g in service_groups(f"svc-{s:02d}", args.groups_per_service, args.alerts_per_group)]
    wanted = {"same": Scenario(f"same-service storm: {len(same)} groups of llm-gateway", same, 1, True),
              "mixed": Scenario(f"mixed storm: {args.services} services x {args.groups_per_service} groups, "
                                "1 process", mixed, 1, False),
              "mixed2": Scenario(f"mixed storm: {args.services} services x {args.groups_per_service} groups, "
                                 "2 processes", mixed, 2, False)}
    return [wanted[name] for name in args.scenarios.split(",")]


@dataclass
class Sent:
    group: Group
    at: float  # wall clock, as the emulator's timestamps
    answer_s: float
    status: str
    incident_id: int | None


def send_storm(urls: list[str], groups: list[Group], *, senders: int, seconds: float, twice: bool,
               seed: int) -> tuple[list[Sent], list[str]]:
    """Every group's notification (twice, as an HA pair of Alertmanagers, with ``twice``), shuffled,
    each due at an even pace over ``seconds``, posted by ``senders`` threads to the processes in
    turn. Returns what was answered and the errors."""
    plan = list(groups) * (2 if twice else 1)
    random.Random(seed).shuffle(plan)
    start = time.monotonic()
    step = seconds / max(1, len(plan))
    sent: list[Sent] = []
    errors: list[str] = []
    lock, next_index = threading.Lock(), itertools.count()

    def sender() -> None:
        clients = [httpx.Client(base_url=u, timeout=60, headers={"Authorization": f"Bearer {common.TOKEN}",
                                                                 "Content-Type": "application/json"}) for u in urls]
        try:
            while (i := next(next_index)) < len(plan):
                delay = start + i * step - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                group, at, began = plan[i], time.time(), time.perf_counter()
                try:
                    response = clients[i % len(clients)].post("/webhooks/alertmanager", content=group.body)
                    answer = response.json() if response.status_code == 200 else {}
                    if response.status_code != 200:
                        with lock:
                            errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    answer = {}
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                with lock:
                    sent.append(Sent(group, at, time.perf_counter() - began, str(answer.get("status", "error")),
                                     answer.get("incident_id")))
        finally:
            for client in clients:
                client.close()

    threads = [threading.Thread(target=sender, name=f"sender-{k}") for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent, errors


# --- what Slack shows -----------------------------------------------------------------------


@dataclass
class Ack:
    incident: int
    channel: str
    ts: str
    sent_at: float = 0.0
    answer_s: float | None = None
    status: int | None = None
    error: str | None = None
    card_at: float | None = None  # the chat.update that put the ack on the card


class Person:
    """Acknowledges incidents on their cards through the emulator, each click in its own thread
    (a person does not wait for one answer before clicking on the next card)."""

    def __init__(self, emu: Any) -> None:
        self.emu = emu
        self.acks: dict[int, Ack] = {}
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def ack(self, incident: int, card: Any) -> None:
        with self.lock:
            if incident in self.acks:
                return
            self.acks[incident] = ack = Ack(incident, card.channel, card.ts)
        thread = threading.Thread(target=self._click, args=(ack,), name=f"ack-{incident}")
        self.threads.append(thread)
        thread.start()

    def _click(self, ack: Ack) -> None:
        ack.sent_at = time.time()
        try:
            reply = self.emu.click(ack.channel, ack.ts, "incident.ack", user=PERSON)
            ack.answer_s, ack.status = reply.elapsed_s, reply.status
        except Exception as exc:  # a failed click is a figure, not the end of the run
            ack.error = f"{type(exc).__name__}: {exc}"

    def join(self) -> None:
        for t in self.threads:
            t.join()


def card_firing(message: Any) -> int:
    for block in message.blocks or []:
        for item in block.get("fields") or []:
            match = ALERTS_FIELD.search(item.get("text", ""))
            if match:
                return int(match.group(1))
    return 0


def card_acked(message: Any) -> bool:
    return any(ACKED_FIELD in item.get("text", "")
               for block in message.blocks or [] for item in block.get("fields") or [])


def ack_on_card(calls: list[Any], acks: list[Ack]) -> None:
    """Per ack, the first answered chat.update of its card that shows the ack (the emulator's
    record of the call: its arrival time, this machine's wall clock)."""
    waiting = {(a.channel, a.ts): a for a in acks if a.sent_at}
    for call in calls:
        if call.method != "chat.update" or call.status != 200:
            continue
        ack = waiting.get((str(call.args.get("channel")), str(call.args.get("ts"))))
        if ack is not None and ack.card_at is None and call.time >= ack.sent_at \
                and ACKED_FIELD in json.dumps(call.args.get("blocks")):
            ack.card_at = call.time


# --- the run --------------------------------------------------------------------------------


@dataclass
class Bystander:
    incident: int
    card: Any
    announcement_ts: str


def open_bystanders(emu: Any, room: common.Warroom, count: int, db_url: str, storm_minutes: int) -> list[Bystander]:
    """Incidents already open when the storm starts, one service each, acknowledged during it.

    Opened with the rate limits off (their rooms are not what is measured), then their
    ``opened_at`` is moved back past storm mode's window: they stand for incidents opened a while
    ago, so they do not put warroom in storm mode before the storm does."""
    if not count:
        return []
    ids = [room.fire(make_group(f"open-{i:02d}", "hallucination-rate", "page", 1).body)["incident_id"]
           for i in range(count)]
    cards = common.wait_rooms(emu, ids, timeout=30 + count)
    room.settle()
    announced = common.messages_by_incident(emu, "announce")
    backdate(db_url, ids, timedelta(minutes=storm_minutes + 1))
    return [Bystander(i, cards[i], announced[i].ts) for i in ids]


def backdate(db_url: str, ids: list[int], by: timedelta) -> None:
    from sqlalchemy import update
    from sqlmodel import col

    from bot.clock import utcnow
    from bot.store.db import make_engine
    from bot.store.models import Incident

    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(Incident).where(col(Incident.id).in_(ids)).values(opened_at=utcnow() - by))
    finally:
        engine.dispose()


@dataclass
class StormRun:
    """What happened while the storm was sent and drained (seconds from the first notification)."""

    sent: list[Sent]
    send_errors: list[str]
    sending_s: float
    visible_s: float | None  # every alert sent counted on the storm's cards
    drained_s: float | None  # the outbox empty (every Slack effect performed)
    waited_s: float
    alerts_sent: int
    alerts_shown: int
    storm_acks: list[Ack]
    bystander_acks: list[Ack]


@dataclass
class Result:
    scenario: Scenario
    db: str
    run: StormRun
    calls: list[Any]  # the emulator's record of every Web API call from the first notification on
    bystanders: list[Bystander]
    channels_created: list[str]
    incidents: dict[str, int]  # the storm's incidents: regular / storm
    check: list[str]  # what the database shows lost or duplicated
    rss_mb: list[float]
    pending: float  # outbox rows not yet performed when the scenario stopped


def run_scenario(args: argparse.Namespace, scenario: Scenario, fresh: Any, workdir: Path) -> Result:
    emu = common.start_emulator()
    try:
        db_url = fresh(f"storm{scenario.processes}")
        overrides: dict[str, Any] = {
            "WARROOM_SCHEDULER": True, "WARROOM_ACK_ESCALATION_MINUTES": args.escalation_minutes,
            "WARROOM_STORM_MINUTES": args.storm_minutes,
            # No automatic playbook runs: the service they act on is not running here.
            "WARROOM_AUTOMATION": False}
        if args.correlate is not None:
            overrides["WARROOM_CORRELATE"] = args.correlate
        settings = common.warroom_settings(emu, db_url, storm_mode=True, **overrides)
        with ExitStack() as stack:
            # The second process starts after the first has migrated the database; Slack's
            # interactions go to the last one (one request URL, as behind a load balancer).
            rooms = [stack.enter_context(common.warroom(emu, settings, workdir)) for _ in range(scenario.processes)]
            emu.set_rate_limits(False)
            bystanders = open_bystanders(emu, rooms[0], args.bystanders, db_url, args.storm_minutes)
            channels_before = set(emu.state.channels)
            calls_before = len(emu.calls)
            emu.set_rate_limits(not args.no_limits)  # budgets start full, as after a quiet hour
            run = storm(args, emu, rooms, scenario, bystanders)
            calls = emu.calls[calls_before:]
            ack_on_card(calls, run.storm_acks + run.bystander_acks)
            check, incidents = check_rows(db_url, scenario, run.sent, {b.incident for b in bystanders})
            return Result(scenario, args.db, run, calls, bystanders,
                          [c.name for cid, c in emu.state.channels.items() if cid not in channels_before],
                          incidents, check, [r.server.peak_rss_mb() for r in rooms], rooms[0].outbox_pending())
    finally:
        emu.stop()


def storm(args: argparse.Namespace, emu: Any, rooms: list[common.Warroom], scenario: Scenario,
          bystanders: list[Bystander]) -> StormRun:
    """Send the storm while a person acknowledges: each storm incident as soon as its card shows,
    and the bystanders at an even pace over ``--ack-seconds``. Then wait until every alert is
    counted on a card, every ack is on its card and the outbox is empty, or ``--deadline``."""
    person = Person(emu)
    known = {b.incident for b in bystanders}
    cards = common.MessageWatch(emu, "card")
    sent: list[Sent] = []
    errors: list[str] = []
    started = time.time()
    sender = threading.Thread(target=lambda: sent.extend(_send(args, rooms, scenario, errors)), name="storm")
    sender.start()
    due = [(started + (k + 0.5) * args.ack_seconds / max(1, len(bystanders)), b) for k, b in enumerate(bystanders)]
    alerts_sent = len({(g.key, f) for g in scenario.groups for f in g.fingerprints})
    visible_at = drained_at = sending_done = None
    shown, next_outbox = 0, 0.0
    while (now := time.time()) < started + args.deadline:
        while due and due[0][0] <= now:
            bystander = due.pop(0)[1]
            person.ack(bystander.incident, bystander.card)
        with emu.state.lock:  # cards are edited in place by chat.update
            found = dict(cards.poll())
            storm_cards = {i: m for i, m in found.items() if i not in known}
            shown = sum(card_firing(m) for m in storm_cards.values())
            acks_shown = all(card_acked(found[i]) for i in person.acks if i in found)
        for incident, message in storm_cards.items():
            person.ack(incident, message)  # a person answering each page as it appears
        if sending_done is None and not sender.is_alive():
            sending_done = now
        if visible_at is None and sending_done and shown >= alerts_sent:
            visible_at = now
        if visible_at and now >= next_outbox:
            next_outbox = now + 0.5
            drained_at = (drained_at or now) if rooms[0].outbox_pending() == 0 else None
        if visible_at and drained_at and not due and acks_shown:
            break
        time.sleep(0.1)
    sender.join()
    person.join()
    acks = list(person.acks.values())

    def since(at: float | None) -> float | None:
        return None if at is None else at - started

    return StormRun(sent, errors, (sending_done or time.time()) - started, since(visible_at), since(drained_at),
                    time.time() - started, alerts_sent, shown, [a for a in acks if a.incident not in known],
                    [a for a in acks if a.incident in known])


def _send(args: argparse.Namespace, rooms: list[common.Warroom], scenario: Scenario, errors: list[str]) -> list[Sent]:
    sent, failed = send_storm([r.url for r in rooms], scenario.groups, senders=args.senders, seconds=args.send_seconds,
                              twice=args.twice, seed=args.seed)
    errors.extend(failed)
    return sent


def check_rows(db_url: str, scenario: Scenario, sent: list[Sent],
               bystanders: set[int]) -> tuple[list[str], dict[str, int]]:
    """Every alert sent is one row, attached to an incident; nothing else was stored. Returns what
    differed and the storm's incident counts."""
    from sqlalchemy import select
    from sqlmodel import col

    from bot.store.db import make_engine
    from bot.store.models import Alert, AlertGroup, Incident

    expected = Counter((g.key, f) for g in scenario.groups for f in g.fingerprints)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            every = conn.execute(select(col(AlertGroup.group_key), col(Alert.fingerprint), col(Alert.incident_id))
                                 .join_from(Alert, AlertGroup)).all()
            kinds = conn.execute(select(col(Incident.id), col(Incident.storm))).all()
    finally:
        engine.dispose()
    # The bystanders' own alerts are not the storm's; a storm alert on a bystander would still count.
    rows = [(key, fp, incident) for key, fp, incident in every if (key, fp) in expected or incident not in bystanders]
    stored = Counter((key, fp) for key, fp, _ in rows)
    problems = []
    lost = expected - stored
    doubled = {k: n for k, n in stored.items() if n > 1}
    stray = set(stored) - set(expected)
    unattached = sum(1 for *_, incident in rows if incident is None)
    if lost:
        problems.append(f"{sum(lost.values())} alert(s) sent but not stored")
    if doubled:
        problems.append(f"{len(doubled)} alert(s) stored more than once")
    if stray:
        problems.append(f"{len(stray)} alert row(s) never sent")
    if unattached:
        problems.append(f"{unattached} alert row(s) on no incident")
    if any(s.status == "error" for s in sent):
        problems.append(f"{sum(1 for s in sent if s.status == 'error')} notification(s) not answered 200")
    by_kind = Counter("storm" if storm_flag else "regular" for incident, storm_flag in kinds
                      if incident not in bystanders)
    return problems, dict(by_kind)


# --- report ---------------------------------------------------------------------------------


def seconds(value: float | None, waited: float) -> str:
    return f"{value:.1f} s" if value is not None else f"not within {waited:.0f} s"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(r: Result, args: argparse.Namespace) -> None:
    s, run, groups = r.scenario, r.run, len(r.scenario.groups)
    print(f"\n== {s.name}, {r.db}, {common.machine()} ==")
    answers = Counter(x.status for x in run.sent)
    print(f"  sent {len(run.sent)} notifications ({groups} groups, {run.alerts_sent} alerts) in {run.sending_s:.1f} s "
          f"from {args.senders} senders; answers: " + ", ".join(f"{k} {n}" for k, n in sorted(answers.items()))
          + (f"; {len(run.send_errors)} errors, first: {run.send_errors[0]}" if run.send_errors else ""))
    incidents = sum(r.incidents.values())
    print(f"  incidents created: {incidents} (" + ", ".join(f"{n} {k}" for k, n in sorted(r.incidents.items())) + ")")
    report_slack(r, incidents)
    print(f"  every alert visible on a card: {seconds(run.visible_s, run.waited_s)} after the first notification "
          f"({run.alerts_shown}/{run.alerts_sent} alerts counted on the storm's cards); outbox empty: "
          f"{seconds(run.drained_s, run.waited_s)}"
          + (f" ({r.pending:.0f} rows left: the calls above stop there)" if r.pending else ""))
    print(common.HEADER)
    print(common.row("webhook answer (intake)", [x.answer_s for x in run.sent]))
    report_acks(run)
    problems = list(r.check)
    doubled = sorted({incident for (incident, _), n in room_posts(r.calls).items() if n > 1})
    if doubled:
        problems.append(f"incident(s) {', '.join(map(str, doubled[:10]))} got a card or announcement twice")
    if len(r.channels_created) > incidents:
        problems.append(f"{len(r.channels_created)} channels for {incidents} incidents")
    print("  nothing lost or duplicated: " + ("met (every alert sent is one row, on an incident; at most one "
                                                "channel, card and announcement per incident)" if not problems
                                                else "MISSED: " + "; ".join(problems)))
    print("  warroom peak RSS " + ", ".join(f"{m:.0f} MB" for m in r.rss_mb))


def report_slack(r: Result, incidents: int) -> None:
    """Channels, #incidents, calls and 429s. Calls about the bystanders (their channels, cards and
    announcements: the acks' updates and membership checks) are not the storm's."""
    bystander_channels = {b.card.channel for b in r.bystanders}
    bystander_ts = {b.card.ts for b in r.bystanders} | {b.announcement_ts for b in r.bystanders}
    def about_bystander(call: Any) -> bool:
        return str(call.args.get("channel")) in bystander_channels or str(call.args.get("ts")) in bystander_ts

    storm_calls = [c for c in r.calls if not about_bystander(c)]
    posts = [c for c in r.calls if c.method == "chat.postMessage" and c.status == 200]
    announcements = sum(n for (_, step), n in room_posts(posts).items() if step == "announce")
    same = r.scenario.same_service
    creates = Counter(str((c.response or {}).get("error", "ok")) for c in r.calls if c.method == "conversations.create")
    names = ", ".join(r.channels_created[:3]) + (" …" if len(r.channels_created) > 3 else "")
    print(f"  channels created: {len(r.channels_created)} ({names}); conversations.create answers: "
          + ", ".join(f"{k} {n}" for k, n in creates.items())
          + (f"  target {TARGET_CHANNELS_SAME_SERVICE}: "
             f"{verdict(len(r.channels_created) == TARGET_CHANNELS_SAME_SERVICE)}" if same else ""))
    to_incidents = sum(1 for c in posts if str(c.args.get("channel")) == common.INCIDENTS)
    reminders = sum(1 for c in posts if str(c.args.get("text", "")).startswith("⏰"))
    print(f"  messages in #incidents: {to_incidents}, of which {announcements} announcement(s)"
          + (f"  target {TARGET_ANNOUNCEMENTS_SAME_SERVICE}: "
             f"{verdict(announcements == TARGET_ANNOUNCEMENTS_SAME_SERVICE)}" if same else "")
          + f"; reminders and escalations (⏰) anywhere: {reminders}")
    answered = sum(1 for c in storm_calls if c.status == 200)
    groups = len(r.scenario.groups)
    print(f"  Slack calls per alert group: {len(storm_calls) / groups:.1f} ({len(storm_calls)} calls for the storm, "
          f"{answered} answered 200; the bystanders' acks made {len(r.calls) - len(storm_calls)} more)")
    limited = Counter(c.method for c in r.calls if c.status == 429)
    print("    " + ", ".join(f"{m} {n}" + (f" ({limited[m]} x 429)" if limited[m] else "")
                             for m, n in Counter(c.method for c in storm_calls).most_common()))
    theirs = Counter(c.method for c in r.calls if about_bystander(c))
    if theirs:
        print("    the bystanders': " + ", ".join(f"{m} {n}" for m, n in theirs.most_common()))
    print(f"  429s returned: {sum(limited.values())} of {len(r.calls)} calls")


def report_acks(run: StormRun) -> None:
    everyone = run.storm_acks + run.bystander_acks
    if not everyone:
        return
    for label, acks in (("ack -> card, storm incidents", run.storm_acks),
                        ("ack -> card, incidents open before", run.bystander_acks), ("ack -> card, all", everyone)):
        latencies = [a.card_at - a.sent_at for a in acks if a.card_at is not None]
        missing = len(acks) - len(latencies)
        note = f"{missing} not on the card when the run stopped" if missing else ""
        if acks is everyone:
            p99 = common.pct(latencies, 0.99) / 1000 if latencies else float("inf")
            note += f"{'; ' if note else ''}target p99 <= {TARGET_ACK_P99_S:.0f} s: " \
                    f"{verdict(not missing and p99 <= TARGET_ACK_P99_S)}"
        if acks:
            print(common.row(label, latencies, note))
    failed = sorted({a.error or f"HTTP {a.status}" for a in everyone if a.error or a.status != 200})
    print(common.row("ack (HTTP answer)", [a.answer_s for a in everyone if a.answer_s is not None], ", ".join(failed)))


POST_KEY = re.compile(r":incident:(\d+):(card|announce)\b")


def room_posts(calls: list[Any]) -> Counter[tuple[int, str]]:
    """Answered cards and announcements per incident, by the key warroom puts in each post's
    metadata (``…:incident:<id>:<step>``), which does not change when the message is edited."""
    found: Counter[tuple[int, str]] = Counter()
    for call in calls:
        if call.method == "chat.postMessage" and call.status == 200:
            match = POST_KEY.search(json.dumps(call.args.get("metadata")))
            if match:
                found[(int(match.group(1)), match.group(2))] += 1
    return found


def bench(args: argparse.Namespace, workdir: Path) -> None:
    wanted = scenarios(args)
    with common.databases(args.db, workdir, args.pg_admin) as fresh:
        for scenario in wanted:
            if scenario.processes > 1 and args.db != "postgresql":
                print(f"\n== {scenario.name}: skipped, two processes run on PostgreSQL (--db postgresql) ==")
                continue
            print(f"running {scenario.name} …", flush=True)
            report(run_scenario(args, scenario, fresh, workdir), args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="same,mixed,mixed2",
                        help="comma-separated: same, mixed, mixed2 (two processes, PostgreSQL only)")
    parser.add_argument("--groups", type=int, default=50, help="groups in the same-service storm (default 50)")
    parser.add_argument("--services", type=int, default=20, help="services in the mixed storm (default 20)")
    parser.add_argument("--groups-per-service", type=int, default=10,
                        help="groups per service in the mixed storm (default 10)")
    parser.add_argument("--alerts-per-group", type=int, default=2, help="alerts in each group (default 2)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--send-seconds", type=float, default=10.0,
                        help="the storm is sent over this long (default 10)")
    parser.add_argument("--twice", action="store_true", help="deliver every notification twice (an HA pair)")
    parser.add_argument("--bystanders", type=int, default=20,
                        help="incidents open before the storm, acknowledged during it (default 20)")
    parser.add_argument("--ack-seconds", type=float, default=30.0,
                        help="the bystanders' acks are spread over this long from the first notification (default 30)")
    parser.add_argument("--deadline", type=float, default=90.0,
                        help="seconds from the first notification after which a scenario stops waiting (default 90)")
    parser.add_argument("--escalation-minutes", type=int, default=1,
                        help="WARROOM_ACK_ESCALATION_MINUTES (default 1, as in the issue's report)")
    parser.add_argument("--storm-minutes", type=int, default=2,
                        help="warroom's WARROOM_STORM_MINUTES (default 2): the bystanders are backdated past it")
    parser.add_argument("--correlate", default=None, help="WARROOM_CORRELATE (default: warroom's own, service)")
    parser.add_argument("--no-limits", action="store_true", help="the emulator without rate limits, for comparison")
    parser.add_argument("--seed", type=int, default=18)
    common.add_database_args(parser)
    common.run_bench(bench, parser.parse_args())


if __name__ == "__main__":
    main()
