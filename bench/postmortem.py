"""After the incident: postmortem render time on a big incident, eval export time and memory on a
large trace set, and trace ingest throughput next to alert ingest on the same server.

Run ``.venv/bin/python bench/postmortem.py --help``; see bench/README.md. Render and export run in
this process (SQLite rows inserted directly, not through the API); trace ingest runs against warroom
in a child process, started by bench/ingest.py's own helpers. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common
import httpx
import ingest

TARGET_RENDER_S, TARGET_EXPORT_S, TARGET_RSS_MB = 1.0, 5.0, 300
SERVICE = "llm-gateway"
KINDS = ("hallucination", "schema_invalid", "tool_error", "latency")
T0 = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# --- synthetic traces -----------------------------------------------------------------------


def trace_dict(request_id: str, prompt: int, kind: str | None, at: datetime, service: str = SERVICE) -> dict[str, Any]:
    """One trace event as an LLM service sends it; ``kind`` picks the one rule it breaks (None: healthy)."""
    event: dict[str, Any] = {
        "request_id": request_id, "timestamp": at.isoformat(), "service": service, "bundle_version": "v42",
        "model": "primary-70b", "prompt_template_id": "answer", "prompt_hash": f"ph{prompt:07d}",
        "input": f"Question {prompt}: what is the refund window for order {prompt}?",
        "output": f"The refund window for order {prompt} is 90 days. Contact support at help@example.com.",
        "retrieval_ids": [f"doc-{prompt % 97}"], "latency_ms": 850.0, "tokens": 412, "schema_valid": True,
        "hallucination_score": 0.05, "tool_calls": [{"name": "web_search", "ok": True}],
    }
    if kind == "hallucination":
        event["hallucination_score"] = 0.92
    elif kind == "schema_invalid":
        event["schema_valid"], event["output"] = False, '{"answer": "90 days", '
    elif kind == "tool_error":
        event["tool_calls"] = [{"name": "web_search", "ok": False, "error": "tool call failed: upstream timeout"}]
    elif kind == "latency":
        event["latency_ms"] = 5200.0
    return event


# --- postmortem render ----------------------------------------------------------------------


def seed_incident(engine: Any, events: int, traces: int, rng: random.Random) -> int:
    """A resolved incident with ``events`` timeline events (mostly automated noise, 5 % people)
    and ``traces`` failing traces linked to it, inserted in bulk."""
    from sqlalchemy import insert

    from bot.store.db import transaction
    from bot.store.models import ActionRun, Followup, Incident, TimelineEvent, Trace
    from bot.traces.rules import TraceEvent, failure_types

    span = timedelta(hours=3)
    with transaction(engine) as session:
        incident = Incident(title="llm-gateway hallucination-rate burning 14.4x", status="resolved", severity=2,
                            service=SERVICE, slo="hallucination-rate", runbook_id="hallucination-spike",
                            channel_id="C0BENCH", channel_name="inc-1-hallucination", commander="U0PRIYA",
                            acknowledged_by="U0PRIYA", opened_at=T0, acknowledged_at=T0 + timedelta(minutes=4),
                            mitigated_at=T0 + timedelta(minutes=31), resolved_at=T0 + span, updated_at=T0 + span,
                            summary="Answers cited a stale retriever snapshot.\n\nRolled back to v41.")
        session.add(incident)
        session.flush()
        incident_id = int(incident.id or 0)  # set by the flush
        session.execute(insert(TimelineEvent),
                        [_timeline_row(incident_id, i, events, span, rng) for i in range(events)])
        rows = []
        for i in range(traces):
            data = trace_dict(f"pm-{i}", rng.randrange(traces // 2), KINDS[i % len(KINDS)], T0 + span * (i / traces))
            event = TraceEvent.model_validate(data)
            label = {"failure_type": "hallucination", "expected": "30 days"} if i % 500 == 0 else {}
            rows.append({"request_id": event.request_id, "service": SERVICE, "timestamp": event.timestamp,
                         "bundle_version": "v42", "model": event.model, "prompt_hash": event.prompt_hash,
                         "failure_types": failure_types(event), "failed": True, "incident_id": incident_id,
                         "label": label, "data": event.model_dump(mode="json"), "received_at": event.timestamp})
        session.execute(insert(Trace), rows)
        for n, (playbook, status) in enumerate((("fallback", "succeeded"), ("rollback", "succeeded"))):
            at = T0 + timedelta(minutes=20 + 10 * n)
            session.add(ActionRun(incident_id=incident_id, playbook=playbook, params={}, idempotency_key=f"bench-{n}",
                                  status=status, requested_by="U0PRIYA", requested_at=at, started_at=at,
                                  finished_at=at + timedelta(seconds=2), result={"verify": {"ok": True}}))
        for n in range(5):
            session.add(Followup(incident_id=incident_id, text=f"Follow-up {n}: add an eval for stale snapshots",
                                 owner="U0SAM", created_by="U0PRIYA", created_at=T0 + span))
    return incident_id


def _timeline_row(incident_id: int, i: int, total: int, span: timedelta, rng: random.Random) -> dict[str, Any]:
    at = T0 + span * (i / total)
    if i % 20 == 0:  # people: notes, pins, status updates, with Slack markup to unwrap
        kind = rng.choice(("note", "pinned", "status_update"))
        return {"incident_id": incident_id, "at": at, "kind": kind, "actor": "U0PRIYA",
                "text": f"<@U0SAM> checked <#C0BENCH|inc> trace {i}: <https://grafana.example/d/{i}|panel>",
                "data": {}, "dedupe_key": None}
    kind = rng.choice(("alert_update", "traces_linked", "reminder", "setup"))
    return {"incident_id": incident_id, "at": at, "kind": kind, "actor": "warroom",
            "text": f"{kind.replace('_', ' ')} #{i}: 3 alerts firing, 12 failing traces", "data": {"n": i},
            "dedupe_key": None}


def time_render(engine: Any, incident_id: int, repeats: int) -> dict[str, list[float]]:
    """build_context (the reads), render_postmortem (jinja2), and store.generate (both, plus the
    row), each ``repeats`` times; the first generate stores the draft, later ones compare."""
    from bot.postmortem import store
    from bot.postmortem.assemble import build_context
    from bot.postmortem.render import render_postmortem
    from bot.store.db import transaction

    times: dict[str, list[float]] = {"context": [], "render": [], "generate": []}
    text = ""
    for _ in range(repeats):
        with transaction(engine) as session:
            started = time.perf_counter()
            ctx = build_context(session, incident_id)
            built = time.perf_counter()
            text = render_postmortem(ctx)
            times["context"].append(built - started)
            times["render"].append(time.perf_counter() - built)
        with transaction(engine) as session:
            started = time.perf_counter()
            store.generate(session, incident_id)
            times["generate"].append(time.perf_counter() - started)
    times["chars"] = [float(len(text))]
    return times


# --- eval export ---------------------------------------------------------------------------


def seed_export(engine: Any, count: int, duplicate_share: float, rng: random.Random) -> tuple[int, int]:
    """A resolved incident with ``count`` failing traces: ``duplicate_share`` of them repeat an
    earlier one's prompt and failure type (the same bad answer seen again), so they merge into its
    case; 1 % carry a human label. Inserted in chunks, in no useful order. ``(incident id, labels)``"""
    from sqlalchemy import insert

    from bot.store.db import transaction
    from bot.store.models import Incident, Trace
    from bot.traces.rules import TraceEvent, failure_types

    with transaction(engine) as session:
        incident = Incident(title="llm-gateway answers burning the SLO", status="resolved", severity=2, service=SERVICE,
                            opened_at=T0, resolved_at=T0 + timedelta(hours=3), updated_at=T0 + timedelta(hours=3))
        session.add(incident)
        session.flush()
        incident_id = int(incident.id or 0)
    originals = count - int(count * duplicate_share)
    order = list(range(count))
    rng.shuffle(order)
    labels = 0
    for start in range(0, count, 5_000):
        rows = []
        for i in order[start:start + 5_000]:
            prompt = i if i < originals else rng.randrange(originals)
            event = TraceEvent.model_validate(trace_dict(f"ex-{i}", prompt, KINDS[prompt % len(KINDS)],
                                                         T0 + timedelta(seconds=i * 0.1)))
            label = {"expected": f"The refund window for order {prompt} is 30 days.",
                     "notes": "checked against the policy doc"} if i % 100 == 0 else {}
            labels += bool(label)
            rows.append({"request_id": event.request_id, "service": SERVICE, "timestamp": event.timestamp,
                         "bundle_version": event.bundle_version, "model": event.model, "prompt_hash": event.prompt_hash,
                         "failure_types": failure_types(event), "failed": True, "incident_id": incident_id,
                         "label": label, "data": event.model_dump(mode="json"), "received_at": event.timestamp})
        with transaction(engine) as session:
            session.execute(insert(Trace), rows)
    return incident_id, labels


def export_child(db_url: str, incident_id: int, out_dir: str) -> None:
    """``--export-child``: one ``export_incident`` in a fresh process (what ``warroom evals export``
    runs), so its peak RSS is the export's own. Prints its figures as JSON."""
    from bot.evals.export import export_incident
    from bot.store.db import make_engine, transaction

    engine = make_engine(db_url)
    imported = peak_rss_mb()
    started = time.perf_counter()
    with transaction(engine) as session:
        result = export_incident(session, incident_id, Path(out_dir), target_url="http://127.0.0.1:9201")
    print(json.dumps({"seconds": time.perf_counter() - started, "rss_mb": peak_rss_mb(), "imports_mb": imported,
                      "written": result.written, "deduplicated": result.deduplicated, "total": result.total,
                      "bytes": sum(p.stat().st_size for p in result.paths)}))


def run_export(db_url: str, incident_id: int, out_dir: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--export-child", db_url, str(incident_id), str(out_dir)],
                          capture_output=True, text=True, cwd=common.ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the export failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- trace ingest next to alert ingest ------------------------------------------------------


def trace_bodies(batches: int, size: int, service: str, rng: random.Random) -> list[bytes]:
    """Batches as a service's trace shipper sends them: ``size`` events, 30 % failing, now-ish."""
    now = datetime.now(UTC)
    bodies = []
    for _ in range(batches):
        events = [trace_dict(f"in-{uuid.uuid4().hex}", rng.randrange(5000),
                             KINDS[i % len(KINDS)] if rng.random() < 0.3 else None, now, service)
                  for i in range(size)]
        bodies.append(json.dumps(events).encode())
    return bodies


def post_traces(url: str, bodies: list[bytes], concurrency: int, size: int) -> ingest.Run:
    """bench/ingest.py's closed loop, aimed at /api/traces (its own posts to the alert webhook)."""
    run, lock, next_index = ingest.Run(), threading.Lock(), itertools.count()

    def sender(client: Any) -> None:
        while (i := next(next_index)) < len(bodies):
            started = time.perf_counter()
            try:
                response = client.post("/api/traces", content=bodies[i])
            except httpx.HTTPError:  # counted as status 0, as ingest.py does
                response = None
            with lock:
                run.record(time.perf_counter() - started, response)

    run.seconds = ingest._in_threads(sender, url, concurrency)
    run.alerts = size * len(bodies)  # "alerts" column: events here
    return run


def ingest_rates(args: argparse.Namespace, workdir: Path,
                 rng: random.Random) -> tuple[ingest.Run, ingest.Run, float, int]:
    with ingest.databases("sqlite", workdir, ingest.DEFAULT_PG_ADMIN) as fresh, \
            ingest.server("warroom", fresh("traces"), workdir) as running:
        alerts = ingest.closed_loop(running.url, ingest.steady_bodies("pm", args.alert_requests), args.concurrency)
        # Traces of the first alert group's service: its incident is open, so failures get linked.
        bodies = trace_bodies(args.trace_batches, args.batch, "pm-0", rng)
        traces = post_traces(running.url, bodies, args.concurrency, args.batch)
        rss = running.peak_rss_mb()
    accepted = sum(a.get("accepted", 0) for a in traces.answers)
    return alerts, traces, rss, accepted


# --- report ---------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "met" if value < target else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="timeline events of the incident (default 10,000)")
    parser.add_argument("--traces", type=int, default=5_000, help="failing traces linked to it (default 5,000)")
    parser.add_argument("--repeats", type=int, default=5, help="renders to time (default 5)")
    parser.add_argument("--export-traces", type=int, default=100_000, help="traces to export (default 100,000)")
    parser.add_argument("--duplicates", type=float, default=0.30, help="share of duplicate traces (default 0.30)")
    parser.add_argument("--alert-requests", type=int, default=600, help="alert notifications, baseline (default 600)")
    parser.add_argument("--trace-batches", type=int, default=200, help="trace POSTs (default 200)")
    parser.add_argument("--batch", type=int, default=100, help="events per trace POST (default 100)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent senders for ingest (default 16)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", nargs="+", choices=("render", "export", "ingest"),
                        default=["render", "export", "ingest"], help="phases to run (default: all three)")
    parser.add_argument("--export-child", nargs=3, metavar=("DB_URL", "INCIDENT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(args.export_child[0], int(args.export_child[1]), args.export_child[2])
        return
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(f"== postmortem, export, trace ingest: sqlite, {common.machine()} ==", flush=True)
    print(f"  peak RSS after imports {peak_rss_mb():.0f} MB")
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        workdir = Path(tmp)
        for name, phase in (("render", render_phase), ("export", export_phase), ("ingest", ingest_phase)):
            if name in args.only:
                phase(args, workdir, rng)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def render_phase(args: argparse.Namespace, workdir: Path, rng: random.Random) -> None:
    from bot.store.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{workdir / 'postmortem.db'}")
    upgrade(engine)
    seeding = time.perf_counter()
    incident_id = seed_incident(engine, args.events, args.traces, rng)
    seeded = time.perf_counter() - seeding
    times = time_render(engine, incident_id, args.repeats)
    engine.dispose()
    generate = statistics.median(times["generate"])
    print(f"\npostmortem of one incident: {args.events:,} timeline events, {args.traces:,} linked traces "
          f"(inserted in {seeded:.1f} s, not timed)")
    print(common.HEADER)
    print(common.row("build_context (database reads)", times["context"]))
    print(common.row("render_postmortem (jinja2)", times["render"], f"{times['chars'][0]:,.0f} chars"))
    print(common.row("store.generate (both + store)", times["generate"],
                     f"target < {TARGET_RENDER_S:.0f} s: {verdict(generate, TARGET_RENDER_S)}"))
    print(f"  peak RSS after the render phase {peak_rss_mb():.0f} MB")


def export_phase(args: argparse.Namespace, workdir: Path, rng: random.Random) -> None:
    from bot.store.db import make_engine, upgrade

    db_url = f"sqlite:///{workdir / 'export.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    seeding = time.perf_counter()
    incident_id, labels = seed_export(engine, args.export_traces, args.duplicates, rng)
    engine.dispose()
    seeded = time.perf_counter() - seeding
    first = run_export(db_url, incident_id, workdir / "evals")
    again = run_export(db_url, incident_id, workdir / "evals")
    print(f"\neval export (export_incident, as `warroom evals export` runs it, each in a fresh process): "
          f"{args.export_traces:,} failing traces in SQLite, {args.duplicates:.0%} duplicates, {labels:,} labelled "
          f"(seeded in {seeded:.1f} s, not timed)")
    print(f"  first export   {first['seconds']:6.2f} s   {args.export_traces:,} traces -> {first['total']:,} cases, "
          f"{first['bytes'] / 1e6:.1f} MB on disk   target < {TARGET_EXPORT_S:.0f} s: "
          f"{verdict(first['seconds'], TARGET_EXPORT_S)}")
    print(f"  again          {again['seconds']:6.2f} s   {again['written']:,} new, {again['deduplicated']:,} already "
          f"in the folder (read back, merged, rewritten)")
    rss = max(first["rss_mb"], again["rss_mb"])
    print(f"  peak RSS of the export process {first['rss_mb']:.0f} MB, again {again['rss_mb']:.0f} MB "
          f"({first['imports_mb']:.0f} MB after imports)   target < {TARGET_RSS_MB} MB: {verdict(rss, TARGET_RSS_MB)}")


def ingest_phase(args: argparse.Namespace, workdir: Path, rng: random.Random) -> None:
    alerts, traces, rss, accepted = ingest_rates(args, workdir, rng)
    print(f"\ningest on one warroom (worker off, sqlite), {args.concurrency} senders; server peak RSS {rss:.0f} MB")
    print(ingest.HEADER.replace("alerts/s", "items/s"))
    print(ingest.row("alerts: Alertmanager webhook", alerts))
    print(ingest.row(f"traces: POST /api/traces x{args.batch}", traces))
    print(f"  {accepted:,} trace events accepted of {args.trace_batches * args.batch:,}; items/s counts alerts in "
          f"the notifications, events in the trace batches")


if __name__ == "__main__":
    main()
