"""OTLP trace ingest (``POST /v1/traces``) next to ``POST /api/traces``, and the sensors' watcher cost.

Run ``.venv/bin/python bench/otlp.py --help``; see bench/README.md. warroom runs in its own process
(``bench/ingest.py --serve warroom``, worker and scheduler off), the load generator here. Batches
are made once with the OpenTelemetry SDK and encoded by its exporters' encoders; before each send
the trace ids are renewed, so every span is new to warroom (no dedupe shortcut), and the spans are
moved in time to end now, as an exporter's spans do (see `Batches._move_to_now`).

The watcher part fills a database (SQLite; ``--watcher-db`` for PostgreSQL too) with ``--traces``
traces over 30 days and times rounds of ``evaluate_sensors`` with 10 sensors (5 drift, 5 spike).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(ROOT), str(BENCH)):
    if path not in sys.path:
        sys.path.insert(0, path)

import ingest

SPANS = 1000  # per batch: chat spans (answers), every fourth with an execute_tool child
QUESTIONS = ["What is the refund policy?", "Where is my order 1234?", "Give the order status as JSON for order 1234",
             "What are your support hours?"]


# --- batches ---------------------------------------------------------------------------------


def make_spans(count: int = SPANS) -> list[Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )
    from opentelemetry.trace import Status, StatusCode, set_span_in_context

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "llm-gateway", "service.version": "v42"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    rng = random.Random(1)
    made = 0
    while made < count:
        question = rng.choice(QUESTIONS)
        span = tracer.start_span("chat primary-70b")
        span.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "primary-70b",
            "gen_ai.response.model": "primary-70b", "gen_ai.usage.input_tokens": rng.randint(20, 60),
            "gen_ai.usage.output_tokens": rng.randint(10, 40), "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                                   "parts": [{"type": "text", "content": "Refunds within 30 days."}]}]),
            "warroom.retrieval_ids": ["refunds#2"], "warroom.citations": ["refunds#2"]})
        span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "hallucination",
                                                    "gen_ai.evaluation.score.value": rng.random() * 0.6})
        made += 1
        if made % 4 == 0 and made < count:
            tool = tracer.start_span("execute_tool web_search", context=set_span_in_context(span))
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search"})
            if rng.random() < 0.05:
                tool.set_status(Status(StatusCode.ERROR, "timeout"))
            tool.end()
            made += 1
        span.end()
    return list(memory.get_finished_spans())


class Batches:
    """Bodies of one kind, each send with fresh trace ids (so nothing is a duplicate), ending now."""

    def __init__(self, kind: str, spans: list[Any]) -> None:
        self.kind = kind
        self.ends_ns = max(span.end_time for span in spans)  # the newest end time in the bodies made
        self.lock = threading.Lock()
        self.ready: list[tuple[bytes, dict[str, str]]] = []  # made by `make_ahead`, sent first
        if kind == "protobuf":
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
                encode_spans,
            )
            self.message = encode_spans(spans)
        elif kind == "json":
            from opentelemetry.exporter.otlp.json.common.trace_encoder import (
                encode_spans as encode_json,
            )
            self.template = json.loads(encode_json(spans).to_json())
        else:  # the same answers as /api/traces events
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
                encode_spans,
            )

            from bot.otlp.decode import decode_request
            from bot.otlp.genai import map_spans
            body = encode_spans(spans).SerializeToString()
            self.events = map_spans(decode_request(body, "application/x-protobuf").spans).events

    def make_ahead(self, count: int) -> None:
        """Encode ``count`` bodies now, before the row's clock starts. The load generator shares
        warroom's cores; encoding during the row (JSON's costs the most, see bench/README.md)
        would be taken from warroom's share and counted in its latency."""
        self.ready = [self._make() for _ in range(count)]
        self.ready.reverse()  # popped from the end, in the order made

    def next(self) -> tuple[bytes, dict[str, str]]:
        with self.lock:
            return self.ready.pop() if self.ready else self._make()

    def _move_to_now(self) -> int:
        """How far to move every time in the next body so that its newest span ends now. Bodies
        that all held the same times would put each batch's traces among the earlier batches' in
        the (service, time) index, where a real exporter's land at its end, and made SQLite's
        store dearer than real traffic does (bench/README.md, "2026-12-06, night")."""
        now = time.time_ns()
        shift, self.ends_ns = now - self.ends_ns, now
        return shift

    def _make(self) -> tuple[bytes, dict[str, str]]:
        # One message, renewed per body: callers hold the lock, or no sender has started yet.
        shift = self._move_to_now()
        if self.kind == "protobuf":
            for rs in self.message.resource_spans:
                for ss in rs.scope_spans:
                    renew: dict[bytes, bytes] = {}
                    for span in ss.spans:
                        span.trace_id = renew.setdefault(span.trace_id, os.urandom(16))
                        span.start_time_unix_nano += shift
                        span.end_time_unix_nano += shift
                        for event in span.events:
                            event.time_unix_nano += shift
            body = self.message.SerializeToString()
            return gzip.compress(body, 1), {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        if self.kind == "json":
            renew_hex: dict[str, str] = {}
            for rs in self.template["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        span["traceId"] = renew_hex.setdefault(span["traceId"], os.urandom(16).hex())
                        for timed in (span, *span.get("events", [])):
                            for key in ("startTimeUnixNano", "endTimeUnixNano", "timeUnixNano"):
                                if key in timed:
                                    timed[key] = str(int(timed[key]) + shift)
            return gzip.compress(json.dumps(self.template).encode(), 1), {
                "Content-Type": "application/json", "Content-Encoding": "gzip"}
        for event in self.events:
            event["request_id"] = uuid.uuid4().hex
            event["timestamp"] = (datetime.fromisoformat(event["timestamp"])
                                  + timedelta(microseconds=shift // 1000)).isoformat()
        return json.dumps(self.events).encode(), {"Content-Type": "application/json"}


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and every process under it (the OTLP workers, and the
    multiprocessing resource tracker), in MB."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (comm) state ppid …", and comm may hold spaces or parentheses
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    tree, grew = {pid}, True
    while grew:
        below = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    total = 0.0
    for member in tree:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total if total else float("nan")


def machine_cpu() -> tuple[float, float]:
    """Seconds of CPU the whole machine has spent busy (every process: warroom, its workers,
    PostgreSQL, this load generator, anything else) and stolen by the hypervisor, since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def run_ingest(url: str, pid: int, batches: Batches, seconds: float, senders: int, path: str,
               rate: float | None = None) -> dict[str, Any]:
    """Closed loop (``rate`` None): each sender sends its next batch as soon as the last one is
    answered, so the server is saturated and throughput is its capacity. Open loop: batches are
    due at Poisson arrival times making ``rate`` batches/s in all, as many independent exporters
    would send them; a batch's latency counts from when it was due, so time a sender spent behind
    its schedule is in the figure (no coordinated omission)."""
    if rate:  # the Poisson count rarely passes its mean by a fifth; any more are made when due
        batches.make_ahead(int(rate * seconds * 1.2) + 10)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    rss: list[tuple[float, float]] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    busy_before, stolen_before = machine_cpu()

    def sender(seed: int) -> None:
        arrivals = random.Random(seed)
        due = time.perf_counter()
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {ingest.TOKEN}"}) as client:
            while time.perf_counter() < deadline:
                body, headers = batches.next()  # ready when due, as an exporter's batch is
                if rate:
                    due += arrivals.expovariate(rate / senders)
                    if due >= deadline:
                        break
                    time.sleep(max(0.0, due - time.perf_counter()))
                t = due if rate else time.perf_counter()
                response = client.post(path, content=body, headers=headers)
                with lock:
                    latencies.append(time.perf_counter() - t)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=sender, args=(index,)) for index in range(senders)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        rss.append((time.perf_counter() - started, rss_mb(pid)))
        time.sleep(1)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    busy_after, stolen_after = machine_cpu()
    ordered = sorted(latencies)
    return {"batches": len(latencies), "seconds": elapsed, "statuses": statuses,
            "cpu_ms": (busy_after - busy_before) * 1000 / max(1, len(latencies)),
            "steal": (stolen_after - stolen_before) / (elapsed * (os.cpu_count() or 1)) * 100,
            "p50": ordered[len(ordered) // 2] * 1000,
            "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
            "rss_first": rss[min(len(rss) - 1, 5)][1] if rss else float("nan"),
            "rss_last": rss[-1][1] if rss else float("nan")}


def ingest_bench(args: argparse.Namespace, workdir: Path) -> None:
    spans = make_spans()
    loops = [None] if not args.rate else [args.rate] if args.open_loop_only else [None, args.rate]
    for rate in loops:
        _ingest_rows(args, workdir, spans, rate / len(spans) if rate else None)


def _ingest_rows(args: argparse.Namespace, workdir: Path, spans: list[Any], rate: float | None) -> None:
    senders = args.exporters if rate else args.senders
    load = (f"open loop, {rate * len(spans):,.0f} spans/s offered in Poisson arrivals" if rate
            else "closed loop, as fast as answered")
    print(f"\n== OTLP ingest: batches of {len(spans)} spans (about 750 answers + 250 tool spans), {senders} senders, "
          f"{load}, {args.seconds:g} s per row, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} ==", flush=True)
    print(f"  {'':<28} {'batches':>8} {'spans/s':>9} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'RSS@5s':>8} {'RSS end':>8} {'CPU ms':>7} {'steal':>6}  statuses", flush=True)
    for db in args.db:
        with ingest.databases(db, workdir, args.pg_admin) as fresh:
            for kind, path, processes in _rows(args):
                with ingest.server("warroom", fresh(kind.replace("-", "")), workdir,
                                   otlp_processes=processes) as running:
                    result = run_ingest(running.url, running.process.pid, Batches(kind, spans), args.seconds,
                                        senders, path, rate)
                answers = len(Batches("api-traces", spans).events) * result["batches"] / result["seconds"]
                span_rate = len(spans) * result["batches"] / result["seconds"] if kind != "api-traces" else float("nan")
                label = f"{db} {kind} {path}" + (f" p{processes}" if processes is not None else "")
                print(f"  {label:<28} {result['batches']:8d} {span_rate:9.0f} {answers:10.0f} {result['p50']:8.1f} "
                      f"{result['p99']:8.1f} {result['rss_first']:7.0f}M {result['rss_last']:7.0f}M "
                      f"{result['cpu_ms']:7.0f} {result['steal']:5.1f}%  {result['statuses']}",
                      flush=True)


def _rows(args: argparse.Namespace) -> list[tuple[str, str, int | None]]:
    """(kind, path, OTLP worker processes) of each row: /v1/traces once per ``--otlp-processes``."""
    rows: list[tuple[str, str, int | None]] = []
    for kind, path in (("protobuf", "/v1/traces"), ("json", "/v1/traces"), ("api-traces", "/api/traces")):
        if kind in args.kinds:
            rows += [(kind, path, n) for n in args.otlp_processes] if path == "/v1/traces" else [(kind, path, None)]
    return rows


# --- the watcher ------------------------------------------------------------------------------


SENSORS = """\
slos: []
sensors:
""" + "".join(f"""\
  - name: drift-{field.replace('.', '-')}
    service: llm-gateway
    kind: drift
    field: {field}
""" for field in ("tokens", "latency_ms", "answer_length", "retrieved_documents",
                  "hallucination_score")) + "".join(f"""\
  - name: spike-{name}
    service: llm-gateway
    kind: spike
    trace: {rule}
""" for name, rule in (("tools", "{field: tool_calls, op: any_not_ok}"),
                       ("hallucination", '{field: hallucination_score, op: ">", value: 0.5}'),
                       ("schema", "{field: schema_valid, op: ==, value: false}"),
                       ("latency", '{field: latency_ms, op: ">", value: 2000}'),
                       ("status", "{field: status, op: '!=', value: ok}")))


def watcher_bench(args: argparse.Namespace, workdir: Path) -> None:
    for db in args.watcher_db:
        with ingest.databases(db, workdir, args.pg_admin) as fresh:
            _watcher_rounds(args, db, fresh("watcher"))


def _watcher_rounds(args: argparse.Namespace, db: str, db_url: str) -> None:
    from sqlalchemy import insert, text

    from bot.config import Settings
    from bot.sensors.spec import parse_sensors
    from bot.sensors.watch import evaluate_sensors
    from bot.store.db import make_engine, upgrade
    from bot.store.models import Trace

    sensors, problems = parse_sensors(SENSORS, "bench")
    assert not problems, problems
    engine = make_engine(db_url)
    upgrade(engine)
    now = datetime(2026, 3, 14, 2, 0, tzinfo=timezone.utc)
    rng = random.Random(5)
    started = time.perf_counter()
    step = timedelta(days=30) / args.traces
    chunk = 20_000
    with engine.begin() as conn:
        for base in range(0, args.traces, chunk):
            rows = []
            for i in range(base, min(args.traces, base + chunk)):
                at = now - timedelta(days=30) + step * i
                data = {"request_id": f"t{i}", "service": "llm-gateway", "timestamp": at.isoformat(),
                        "bundle_version": "v41", "tokens": rng.randint(20, 60), "latency_ms": rng.gauss(900, 200),
                        "output": "Refunds are available within 30 days." * rng.randint(1, 3),
                        "retrieval_ids": ["refunds#2"] * rng.randint(0, 3),
                        "hallucination_score": rng.random() * 0.6, "schema_valid": rng.random() > 0.01,
                        "tool_calls": [{"name": "web_search", "ok": rng.random() > 0.05}],
                        "attributes": {"status": "ok"}}
                rows.append({"request_id": f"t{i}", "service": "llm-gateway", "timestamp": at, "bundle_version": "v41",
                             "model": "primary-70b", "failure_types": [], "failed": False, "label": {}, "data": data,
                             "received_at": at})
            conn.execute(insert(Trace), rows)
    if db == "postgresql":  # the planner's statistics, as autovacuum keeps them on a live database
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE trace"))
    filled = time.perf_counter() - started
    print(f"\n== watcher: {args.traces:,} traces over 30 days in {db} (filled in {filled:.0f} s), "
          f"{len(sensors)} sensors (5 drift, 5 spike) ==", flush=True)
    settings = Settings(_env_file=None, WARROOM_DATABASE_URL=db_url, WARROOM_RUNBOOKS_DIR=ROOT / "runbooks",  # type: ignore[call-arg]
                        WARROOM_PLAYBOOKS_DIR=ROOT / "playbooks")
    # Rounds 30 s apart, as the scheduler runs them: the first reads the sensors' history (cold),
    # the next ones reuse it and read only the recent windows. The scheduler runs in the serving
    # process, which has taken its start-up objects out of the collector's sight: so here too.
    from bot.serving import freeze_startup_objects
    freeze_startup_objects()
    for round_ in range(args.rounds):
        t = time.perf_counter()
        results = evaluate_sensors(engine, settings, sensors, now + timedelta(seconds=30 * round_))
        state = "cold" if round_ == 0 else "warm"
        print(f"  round {round_ + 1} ({state}): {(time.perf_counter() - t) * 1000:.0f} ms, "
              f"{len(results)} notification(s)", flush=True)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--seconds", type=float, default=30, help="length of each ingest row (300: the memory check)")
    parser.add_argument("--senders", type=int, default=2, help="concurrent exporters, closed loop")
    parser.add_argument("--exporters", type=int, default=8,
                        help="open loop: independent exporters (service replicas) sharing the offered rate, each "
                             "with one request in flight; 2 puts most of the tail in the exporters' own queues")
    parser.add_argument("--otlp-processes", type=int, nargs="+", default=[0, 2],
                        help="WARROOM_OTLP_PROCESSES of the server, a /v1/traces row for each (default: 0 and 2)")
    parser.add_argument("--rate", type=float, default=5000,
                        help="after the closed-loop rows, the same rows open loop at this many spans/s offered "
                             "(the target's 5,000; 0: closed loop only)")
    parser.add_argument("--open-loop-only", action="store_true",
                        help="skip the closed-loop rows (with --seconds 300: the target over a table that grows)")
    parser.add_argument("--kinds", nargs="+", choices=("protobuf", "json", "api-traces"),
                        default=["protobuf", "json", "api-traces"], help="which ingest rows to run")
    parser.add_argument("--traces", type=int, default=1_000_000, help="stored traces for the watcher part (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="watcher rounds")
    parser.add_argument("--watcher-db", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite"],
                        help="databases for the watcher part (PostgreSQL adds ~2 min of filling)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--pg-admin", default=os.environ.get("WARROOM_BENCH_PG", ingest.DEFAULT_PG_ADMIN))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="warroom-bench-otlp-") as tmp:
        if not args.skip_ingest:
            ingest_bench(args, Path(tmp))
        if args.traces:
            watcher_bench(args, Path(tmp))


if __name__ == "__main__":
    main()
