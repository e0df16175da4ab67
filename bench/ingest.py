"""Alert intake under load: warroom against a bare baseline, on SQLite and PostgreSQL.

Run ``.venv/bin/python bench/ingest.py --help``; see bench/README.md. Each server runs in its own
subprocess (this script, re-invoked with ``--serve``), so its peak RSS is its own and the load
generator does not share its GIL. Figures are printed, not asserted, except the alert storm, which
checks the exactly-once rules and prints PASS or FAIL (exit status 1 on FAIL).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.serving import stop_process

TOKEN = "bench-alert-token"
# Each alert group its own incident, as the tests have it (no correlation, no storm mode): these
# benchmarks time warroom's path per group; bench/storm.py measures correlation and storm mode.
INDEPENDENT_GROUPS: dict[str, Any] = {"WARROOM_CORRELATE": "", "WARROOM_STORM_INCIDENTS": 0,
                                      "WARROOM_STORM_SERVICE_INCIDENTS": 0}
WEBHOOK = "/webhooks/alertmanager"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NOTIFICATIONS_PER_GROUP = 4  # a group's alert list grows by one per notification, as Alertmanager's does


# --- payloads -------------------------------------------------------------------------------


def alertmanager_payload(group: str, alert_count: int) -> dict[str, Any]:
    from bot.alerts.fingerprint import fingerprint

    alerts: list[dict[str, Any]] = []
    for i in range(alert_count):
        labels = {"alertname": "LLMSLOErrorBudgetBurn", "service": group, "slo": "hallucination-rate",
                  "sloth_severity": "page", "model": f"model-{i}"}
        alerts.append({"status": "firing", "labels": labels, "fingerprint": fingerprint(labels),
                       "annotations": {"title": f"{group} hallucination-rate burning 14.4x"},
                       "startsAt": "2026-03-14T02:06:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
                       "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=slo%3Asli_error"})
    group_labels = {"alertname": "LLMSLOErrorBudgetBurn", "service": group}
    group_key = '{}:{alertname="LLMSLOErrorBudgetBurn", service="' + group + '"}'
    return {"receiver": "warroom", "status": "firing", "alerts": alerts, "groupLabels": group_labels,
            "commonLabels": {k: v for k, v in alerts[0]["labels"].items() if k != "model"},
            "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093", "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0}


def steady_bodies(prefix: str, requests: int) -> list[bytes]:
    """Round-major: every group's first notification, then every group's second …, so two
    notifications of one group are rarely in flight together (Alertmanager serialises per group)."""
    groups = max(1, requests // NOTIFICATIONS_PER_GROUP)
    return [json.dumps(alertmanager_payload(f"{prefix}-{i % groups}",
                                            (i // groups) % NOTIFICATIONS_PER_GROUP + 1)).encode()
            for i in range(requests)]


def alerts_in(body: bytes) -> int:
    return body.count(b'"fingerprint"')


# --- load -----------------------------------------------------------------------------------


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)
    alerts: int = 0
    seconds: float = 0.0

    def record(self, latency: float, response: httpx.Response | None) -> None:
        self.latencies.append(latency)
        status = response.status_code if response is not None else 0
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if response is not None and status == 200:
            self.answers.append(response.json())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def _post(client: httpx.Client, body: bytes) -> httpx.Response | None:
    try:
        return client.post(WEBHOOK, content=body)
    except httpx.HTTPError:
        return None  # counted as status 0


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}",
                                                           "Content-Type": "application/json"})


def closed_loop(url: str, bodies: list[bytes], concurrency: int) -> Run:
    """``concurrency`` senders, each posting its next body as soon as the last one is answered."""
    run, lock, next_index = Run(), threading.Lock(), itertools.count()

    def sender(client: httpx.Client) -> None:
        while (i := next(next_index)) < len(bodies):
            started = time.perf_counter()
            response = _post(client, bodies[i])
            with lock:
                run.record(time.perf_counter() - started, response)

    run.seconds = _in_threads(sender, url, concurrency)
    run.alerts = sum(alerts_in(b) for b in bodies)
    return run


def fixed_rate(url: str, bodies: list[bytes], rate: float, senders: int = 64) -> Run:
    """Open loop: request i is due at ``i / rate``; latency counts from when it was due, so a
    server that falls behind shows it (no coordinated omission)."""
    run, lock, next_index = Run(), threading.Lock(), itertools.count()
    start = 0.0

    def sender(client: httpx.Client) -> None:
        while (i := next(next_index)) < len(bodies):
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            response = _post(client, bodies[i])
            with lock:
                run.record(time.perf_counter() - due, response)

    def on_your_marks() -> None:
        nonlocal start
        start = time.perf_counter() + 0.05

    run.seconds = _in_threads(sender, url, senders, before_start=on_your_marks) - 0.05
    run.alerts = sum(alerts_in(b) for b in bodies)
    return run


def _in_threads(target: Callable[[httpx.Client], None], url: str, count: int,
                before_start: Callable[[], None] = lambda: None) -> float:
    """Run ``count`` senders, each with its own keep-alive client; the seconds they took."""
    # Clients are built before the clock starts: building one costs milliseconds (an SSL context).
    clients = [_client(url) for _ in range(count)]
    threads = [threading.Thread(target=target, args=(client,)) for client in clients]
    # The load generator's own garbage collector stays off while it sends: its full collections
    # stopped every sender thread for up to 300 ms, which the rows showed as server latency
    # (fixed-rate p99 of the bare baseline: 170-340 ms with it, 5-9 ms without).
    gc.collect()
    gc.disable()
    before_start()
    started = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        gc.enable()
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return elapsed


# --- servers --------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def server(kind: str, db_url: str, workdir: Path, *, otlp_processes: int | None = None) -> Iterator[Server]:
    port = _free_port()
    log = workdir / f"{kind}-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    with log.open("wb") as out:
        extra = [] if otlp_processes is None else ["--otlp-processes", str(otlp_processes)]
        process = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--db-url", db_url, "--port", str(port),
                                    *extra],
                                   stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    running = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_healthy(running)
        yield running
    finally:
        stop_process(process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(running: Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise SystemExit(f"server exited on start:\n{running.log.read_text()[-3000:]}")
        try:
            health = httpx.get(running.url + "/healthz", timeout=2)
            # A server measured while its OTLP workers start would count their start in its tail.
            if health.status_code == 200 and health.json().get("otlp_workers") != "starting":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server did not become healthy in 60 s:\n{running.log.read_text()[-3000:]}")


def serve_warroom(db_url: str, port: int, otlp_processes: int | None = None) -> None:
    import uvicorn

    from bot.compose import compose
    from bot.config import Settings
    from bot.serving import freeze_startup_objects
    from bot.store.db import upgrade
    from bot.web import create_app

    # No worker or scheduler: this measures intake (validate, commit, queue the outbox row), not Slack.
    # Each group its own incident: the mix is one incident opened and three updates per group, and
    # the storm check counts one incident per group.
    settings = Settings(_env_file=None, WARROOM_ENV="development", WARROOM_DATABASE_URL=db_url,  # type: ignore[call-arg]
                        WARROOM_ALERT_TOKEN=TOKEN, WARROOM_RUNBOOKS_DIR=ROOT / "runbooks",
                        WARROOM_PLAYBOOKS_DIR=ROOT / "playbooks", WARROOM_WORKER=False, WARROOM_SCHEDULER=False,
                        **INDEPENDENT_GROUPS)
    if otlp_processes is not None:  # else the default: one per core
        settings = settings.model_copy(update={"otlp_processes": otlp_processes})
    warroom = compose(settings)
    upgrade(warroom.engine)
    app = create_app(warroom)
    freeze_startup_objects()  # as `warroom serve` does
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_baseline(db_url: str, port: int) -> None:
    """The floor: a bare Starlette endpoint that parses the JSON and inserts one row, nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    local = threading.local()
    postgres = db_url.startswith("postgresql")

    def connect() -> Any:
        if postgres:
            import psycopg
            return psycopg.connect(db_url, autocommit=True)
        import sqlite3
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def insert(group_key: str, body: str) -> None:
        if not hasattr(local, "conn"):
            local.conn = connect()
        mark = "%s" if postgres else "?"
        local.conn.execute(f"INSERT INTO baseline_alert (group_key, body) VALUES ({mark}, {mark})", (group_key, body))

    setup = connect()
    key = "id SERIAL PRIMARY KEY" if postgres else "id INTEGER PRIMARY KEY"
    setup.execute(f"CREATE TABLE IF NOT EXISTS baseline_alert ({key}, group_key TEXT NOT NULL, body TEXT NOT NULL)")
    setup.close()

    async def webhook(request: Request) -> JSONResponse:
        raw = await request.body()
        payload = json.loads(raw)
        await run_in_threadpool(insert, payload["groupKey"], raw.decode())
        return JSONResponse({"status": "ok", "alerts": len(payload["alerts"])})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route(WEBHOOK, webhook, methods=["POST"]), Route("/healthz", healthz)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- databases ------------------------------------------------------------------------------


@contextmanager
def databases(kind: str, workdir: Path, pg_admin: str) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, empty databases of ``kind``; the PostgreSQL ones are dropped afterwards."""
    made: list[str] = []

    def fresh(purpose: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{workdir / f'{purpose}-{uuid.uuid4().hex[:6]}.db'}"
        import psycopg
        name = f"warroom_bench_{purpose}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return pg_admin.rsplit("/", 1)[0] + "/" + name

    try:
        yield fresh
    finally:
        if made:
            import psycopg
            with psycopg.connect(pg_admin, autocommit=True) as conn:
                for name in made:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the alert storm ------------------------------------------------------------------------


def storm(url: str, db_url: str, *, alerts: int, groups: int, concurrency: int, seed: int) -> tuple[Run, list[str]]:
    """Every group's notification delivered twice, all shuffled; then the database must show one
    incident per group and every alert exactly once. Returns the run and what was wrong."""
    from sqlalchemy import func, select
    from sqlmodel import col

    from bot.store.db import make_engine
    from bot.store.models import Alert, Incident

    per_group = alerts // groups
    bodies = [json.dumps(alertmanager_payload(f"storm-{g}", per_group)).encode() for g in range(groups)] * 2
    random.Random(seed).shuffle(bodies)
    run = closed_loop(url, bodies, concurrency)

    problems = []
    if run.errors:
        problems.append(f"non-200 answers: {run.statuses}")
    opened = sum(1 for a in run.answers if a["status"] == "opened")
    if opened != groups:
        problems.append(f"{opened} answers said 'opened', expected {groups}")
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            incidents = conn.execute(select(func.count()).select_from(Incident)).scalar_one()
            rows = conn.execute(select(func.count()).select_from(Alert)).scalar_one()
            distinct = conn.execute(select(func.count()).select_from(
                select(col(Alert.group_id), col(Alert.fingerprint)).distinct().subquery())).scalar_one()
            per_incident = set(conn.execute(select(func.count()).select_from(Alert)
                                            .group_by(col(Alert.incident_id))).scalars())
    finally:
        engine.dispose()
    expected_alerts = per_group * groups
    if incidents != groups:
        problems.append(f"{incidents} incidents, expected {groups}")
    if rows != expected_alerts or distinct != expected_alerts:
        problems.append(f"{rows} alert rows ({distinct} distinct), expected {expected_alerts} once each")
    if per_incident != {per_group}:
        problems.append(f"alerts per incident {sorted(per_incident)}, expected {per_group} each")
    return run, problems


# --- report ---------------------------------------------------------------------------------


def row(label: str, run: Run, rss: float | None = None) -> str:
    rss_text = f"{rss:7.0f} MB" if rss is not None else " " * 10
    return (f"  {label:<34} {len(run.latencies):6d} {len(run.latencies) / run.seconds:8.0f} "
            f"{run.alerts / run.seconds:9.0f} {run.pct(0.50):8.1f} {run.pct(0.99):8.1f} {run.errors:6d} {rss_text}")


HEADER = (f"  {'':<34} {'reqs':>6} {'req/s':>8} {'alerts/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
          f"{'peak RSS':>10}")


def measure(name: str, db_url: str, workdir: Path, args: argparse.Namespace, tag: str) -> tuple[Run, Run, float]:
    """One fresh server on a fresh database: the warm-up (not counted), the closed loop, the fixed rate."""
    with server(name, db_url, workdir) as running:
        if args.warmup:
            closed_loop(running.url, steady_bodies(f"{name}-{tag}-warmup", args.warmup), args.concurrency)
        steady = closed_loop(running.url, steady_bodies(f"{name}-{tag}-steady", args.requests), args.concurrency)
        paced = fixed_rate(running.url, steady_bodies(f"{name}-{tag}-paced", int(args.rate * args.rate_seconds)),
                           args.rate)
        return steady, paced, running.peak_rss_mb()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def bench(kind: str, args: argparse.Namespace, workdir: Path) -> bool:
    print(f"\n== {kind} ({os.cpu_count()} cores, concurrency {args.concurrency}, {args.rounds} round(s), "
          f"warm-up {args.warmup} requests) ==", flush=True)
    ok = True
    throughput: dict[str, list[float]] = {"warroom": [], "baseline": []}
    paced_p99: dict[str, list[float]] = {"warroom": [], "baseline": []}
    with databases(kind, workdir, args.pg_admin) as fresh:
        print(HEADER)
        for round_ in range(args.rounds):
            # Alternate who goes first: a machine that slows down or speeds up during the run
            # then weighs on both servers alike.
            order = ("warroom", "baseline") if round_ % 2 == 0 else ("baseline", "warroom")
            for name in order:
                steady, paced, rss = measure(name, fresh(name), workdir, args, f"r{round_}")
                throughput[name].append(len(steady.latencies) / steady.seconds)
                paced_p99[name].append(paced.pct(0.99))
                print(row(f"{name} closed loop", steady, rss), flush=True)
                print(row(f"{name} fixed {args.rate:.0f} req/s for {args.rate_seconds:.0f} s", paced), flush=True)
        ratios = [w / b for w, b in zip(throughput["warroom"], throughput["baseline"], strict=True)]
        share = median(throughput['warroom']) / median(throughput['baseline'])
        print(f"  median closed loop: warroom {median(throughput['warroom']):.0f} req/s, baseline "
              f"{median(throughput['baseline']):.0f} req/s -> {share:.0%} "
              f"of the baseline (per round: {', '.join(f'{r:.0%}' for r in ratios)}; target >= 50 %)")
        print(f"  fixed {args.rate:.0f} req/s p99: warroom median {median(paced_p99['warroom']):.1f} ms, worst "
              f"{max(paced_p99['warroom']):.1f} ms; baseline median {median(paced_p99['baseline']):.1f} ms, worst "
              f"{max(paced_p99['baseline']):.1f} ms (target < 50 ms)", flush=True)
        if args.storm_alerts:
            db_url = fresh("storm")
            with server("warroom", db_url, workdir) as running:
                run, problems = storm(running.url, db_url, alerts=args.storm_alerts, groups=args.storm_groups,
                                      concurrency=args.concurrency, seed=args.seed)
                rss = running.peak_rss_mb()
            print(row(f"warroom storm ({args.storm_groups} groups x2)", run, rss))
            verdict = "PASS" if not problems else "FAIL: " + "; ".join(problems)
            print(f"  storm: {args.storm_alerts} alerts in {args.storm_groups} groups, each notification delivered "
                  f"twice in random order -> {verdict}", flush=True)
            ok = not problems
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="closed-loop notifications per server (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent senders (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="warroom/baseline pairs per database, alternating "
                        "which goes first; the summary gives medians (default 3)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="requests sent to each new server before it is measured (default 200)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed-rate run, requests per second (default 200)")
    parser.add_argument("--rate-seconds", type=float, default=8.0, help="fixed-rate run length (default 8)")
    parser.add_argument("--storm-alerts", type=int, default=10_000, help="alerts in the storm; 0 skips it")
    parser.add_argument("--storm-groups", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7, help="shuffle seed of the storm's deliveries")
    parser.add_argument("--pg-admin", default=os.environ.get("WARROOM_BENCH_PG", DEFAULT_PG_ADMIN),
                        help="PostgreSQL URL allowed to CREATE/DROP DATABASE (env WARROOM_BENCH_PG)")
    parser.add_argument("--serve", choices=("warroom", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--otlp-processes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        if args.serve == "warroom":
            serve_warroom(args.db_url, args.port, args.otlp_processes)
        else:
            serve_baseline(args.db_url, args.port)
        return
    if args.storm_alerts and args.storm_alerts % args.storm_groups:
        parser.error("--storm-alerts must be a multiple of --storm-groups")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
        results = [bench(kind, args, Path(tmp)) for kind in kinds]
    print(f"\ntotal {time.perf_counter() - started:.0f} s; latencies are client-side over loopback, "
          f"client and server sharing {os.cpu_count()} cores")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
