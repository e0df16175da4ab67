"""The eval suite at scale: clustering an incident's failing traces into cases, and the gate of a
big suite against the example service with promptfoo's default concurrency and with 16.

Run ``.venv/bin/python bench/evals.py --help``; see bench/README.md. Clustering runs
``collect_incident`` (what ``warroom evals collect`` runs: read the traces from SQLite, cluster,
store the cases) in a fresh process, so its peak RSS is its own. The gate runs the real promptfoo
CLI against the example service on loopback. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common

SERVICE = "llm-gateway"
T0 = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
TARGET_CLUSTER_S = 10.0
TARGET_RSS_MB = 300
TOPICS = ("refund window", "warranty period", "shipping fee", "order status", "password reset", "invoice copy",
          "delivery date", "return label", "gift card balance", "store hours")
FILLERS = ("please", "hi", "thanks", "could you tell me", "kindly")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def question(n: int) -> str:
    return f"What is the {TOPICS[n % len(TOPICS)]} for order {n}?"


def near_duplicate(text: str, rng: random.Random) -> str:
    """The same question as another user types it: case, punctuation, filler words, word order."""
    variant = rng.randrange(4)
    if variant == 0:
        return text.lower().rstrip("?") + "??"
    if variant == 1:
        return f"{rng.choice(FILLERS).capitalize()}, {text[0].lower()}{text[1:]}"
    if variant == 2:
        return text.upper()
    body = text.rstrip("?").removeprefix("What is the ")
    return f"{body} -- what is it?"


def seed(engine: Any, count: int, near_share: float, rng: random.Random) -> int:
    """An incident with ``count`` failing traces; ``near_share`` of them re-ask an earlier question
    in other words (a near-duplicate, not the same prompt hash). 1 % carry a human label."""
    from sqlalchemy import insert

    from bot.store.db import transaction
    from bot.store.models import Incident, Trace

    with transaction(engine) as session:
        incident = Incident(title="llm-gateway answers burning the SLO", status="resolved", severity=2, service=SERVICE,
                            opened_at=T0, resolved_at=T0 + timedelta(hours=3), updated_at=T0 + timedelta(hours=3))
        session.add(incident)
        session.flush()
        incident_id = int(incident.id or 0)
    originals = count - int(count * near_share)
    for start in range(0, count, 5_000):
        rows = []
        for i in range(start, min(count, start + 5_000)):
            n = i if i < originals else rng.randrange(originals)
            text = question(n) if i < originals else near_duplicate(question(n), rng)
            at = T0 + timedelta(seconds=i * 0.1)
            data = {"request_id": f"ev-{i}", "timestamp": at.isoformat(), "service": SERVICE, "bundle_version": "v42",
                    "input": text, "output": f"The {TOPICS[n % len(TOPICS)]} for order {n} is 90 days.",
                    "hallucination_score": 0.92, "retrieval_ids": [f"doc-{n % 97}"]}
            label = {"expected": "It is 30 days.", "unsupported_claim": "90 days"} if i % 100 == 0 else {}
            rows.append({"request_id": data["request_id"], "service": SERVICE, "timestamp": at, "bundle_version": "v42",
                         "model": "primary-70b", "prompt_hash": None, "failure_types": ["hallucination"],
                         "failed": True,
                         "incident_id": incident_id, "label": label, "data": data, "received_at": at})
        with transaction(engine) as session:
            session.execute(insert(Trace), rows)
    return incident_id


def collect_child(db_url: str, incident_id: int) -> None:
    """``--collect-child``: one ``collect_incident`` in a fresh process. Prints its figures as JSON."""
    from bot.evals.suite import collect_incident
    from bot.store.db import make_engine, transaction

    engine = make_engine(db_url)
    imported = peak_rss_mb()
    started = time.perf_counter()
    with transaction(engine) as session:
        change = collect_incident(session, incident_id)
    print(json.dumps({"seconds": time.perf_counter() - started, "rss_mb": peak_rss_mb(), "imports_mb": imported,
                      "new": change.new, "updated": change.updated}))


def run_collect(db_url: str, incident_id: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--collect-child", db_url, str(incident_id)],
                          capture_output=True, text=True, cwd=common.ROOT)
    if done.returncode != 0:
        raise SystemExit(f"collecting failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def verdict(value: float, target: float) -> str:
    return "met" if value < target else "MISSED"


def cluster_phase(args: argparse.Namespace, workdir: Path, rng: random.Random) -> None:
    from bot.store.db import make_engine, upgrade

    db_url = f"sqlite:///{workdir / 'cluster.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    seeding = time.perf_counter()
    incident_id = seed(engine, args.traces, args.near, rng)
    engine.dispose()
    seeded = time.perf_counter() - seeding
    first = run_collect(db_url, incident_id)
    again = run_collect(db_url, incident_id)
    print(f"\nclustering (collect_incident, as `warroom evals collect` runs it, each in a fresh process): "
          f"{args.traces:,} failing traces in SQLite, {args.near:.0%} near-duplicates "
          f"(seeded in {seeded:.1f} s, not timed)")
    print(f"  first collect  {first['seconds']:6.2f} s   {args.traces:,} traces -> {first['new']:,} cases   "
          f"target < {TARGET_CLUSTER_S:.0f} s: {verdict(first['seconds'], TARGET_CLUSTER_S)}")
    print(f"  again          {again['seconds']:6.2f} s   {again['new']:,} cases, nothing added")
    rss = max(first["rss_mb"], again["rss_mb"])
    print(f"  peak RSS {first['rss_mb']:.0f} MB, again {again['rss_mb']:.0f} MB ({first['imports_mb']:.0f} MB after "
          f"imports)   target < {TARGET_RSS_MB} MB: {verdict(rss, TARGET_RSS_MB)}")


def seed_suite(engine: Any, cases: int) -> None:
    """A suite of ``cases`` cases the example service can answer: unlabelled hallucination cases
    over distinct questions (they assert the failing sentence is not repeated), plus the demo's
    labelled refund case; bundles v41 (known-good) and v43 registered."""
    from bot.evals.cases import Label
    from bot.evals.suite import Cluster, TraceRow, store_clusters
    from bot.redact import Redactor
    from bot.releases import bundles
    from bot.store.db import transaction
    from examples.llm_service.bundles import BUNDLES

    with transaction(engine) as session:
        for version in ("v41", "v43"):
            bundles.register_bundle(session, service=SERVICE, version=version, components=BUNDLES[version].components(),
                                    known_good=version == "v41" or None)
        clusters = []
        for i in range(cases):
            text = "What is the refund policy?" if i == 0 else f"Bench question number {i} about order {i}?"
            label = (Label(expected="Refunds are available within 30 days.", unsupported_claim="90 days")
                     if i == 0 else None)
            row = TraceRow(f"bench-{i}", T0, text, "Refunds are available within 90 days, no receipt needed.", None,
                           "v42",
                           ("hallucination",), label)
            clusters.append(Cluster("hallucination", f"bench {i}", row, [row.request_id], label, T0, T0))
        store_clusters(session, SERVICE, None, clusters, redactor=Redactor())


def gate_phase(args: argparse.Namespace, workdir: Path) -> None:
    from bot.config import Settings
    from bot.evals.gate import run_gate
    from bot.evals.promptfoo import ensure_promptfoo
    from bot.evals.target import EvalTarget
    from bot.serving import ServerThread
    from bot.store.db import make_engine, upgrade
    from examples.llm_service import create_app

    ensure_promptfoo(common.ROOT / ".cache" / "promptfoo")
    db_url = f"sqlite:///{workdir / 'gate.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    seed_suite(engine, args.cases)
    settings = Settings(_env_file=None, WARROOM_DATABASE_URL=db_url, WARROOM_ENV="test")  # type: ignore[call-arg]
    server = ServerThread(create_app(bundle="v42")).start()
    print(f"\ngate of a {args.cases:,}-case suite against the example service (loopback), v43 vs known-good v41 "
          f"in one promptfoo run ({2 * args.cases:,} requests)")
    try:
        for label, concurrency in (("promptfoo default concurrency", None), ("--max-concurrency 16", 16)):
            started = time.perf_counter()
            report = run_gate(engine, f"{SERVICE}:v43", settings=settings,
                              target=EvalTarget(server.url + "/v1/answer?bundle={{bundle}}"),
                              cache_dir=common.ROOT / ".cache" / "promptfoo", max_concurrency=concurrency, timeout=3600)
            wall = time.perf_counter() - started
            print(f"  {label:32} {wall:7.1f} s   {args.cases / wall:7.1f} cases/s   "
                  f"{2 * args.cases / wall:7.1f} requests/s   {report.status} ({report.passed}/{report.cases})")
    finally:
        server.stop()
        engine.dispose()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--collect-child":
        collect_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000, help="failing traces to cluster")
    parser.add_argument("--near", type=float, default=0.30, help="share of near-duplicate traces")
    parser.add_argument("--cases", type=int, default=2_000, help="cases in the gated suite")
    parser.add_argument("--skip-gate", action="store_true", help="only the clustering phase")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    print(common.machine())
    with tempfile.TemporaryDirectory(prefix="warroom-bench-evals-") as tmp:
        cluster_phase(args, Path(tmp), random.Random(args.seed))
        if not args.skip_gate:
            gate_phase(args, Path(tmp))


if __name__ == "__main__":
    main()
