"""Shared plumbing of the Slack-side benchmarks (open_incident, ack, actions, postmortem).

warroom runs in its own process (this file, run as a script with a JSON of settings), so it does
not share a GIL with the emulator and the load generator, which live in the benchmark's process;
that is also how it runs in production, with Slack elsewhere. The emulator (``bot.emulator``) is
started in-process, so the benchmark can read its state directly. Databases, ports, health checks
and peak RSS come from ``bench/ingest.py``, imported, not copied.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(ROOT), str(BENCH)):
    if path not in sys.path:
        sys.path.insert(0, path)

import ingest

from bot import serving
from bot.serving import stop_process

T = TypeVar("T")
TOKEN = ingest.TOKEN
SIGNING_SECRET = "bench-signing-secret"
INCIDENTS = "C0INCIDENTS"
DEFAULT_PG_ADMIN = ingest.DEFAULT_PG_ADMIN
databases = ingest.databases  # fresh SQLite files or throwaway PostgreSQL databases, dropped afterwards


# --- figures --------------------------------------------------------------------------------


def pct(seconds: list[float], q: float) -> float:
    """Nearest-rank percentile in milliseconds, the definition bench/ingest.py uses."""
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


HEADER = f"  {'':<44} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"


def row(label: str, seconds: list[float], note: str = "") -> str:
    worst = max(seconds) * 1000 if seconds else float("nan")
    return (f"  {label:<44} {len(seconds):5d} {pct(seconds, 0.50):8.1f} {pct(seconds, 0.99):8.1f} {worst:8.1f}"
            f"  {note}").rstrip()


def wait_until(predicate: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.005) -> T:
    """`bot.serving.wait_until`, ending the benchmark (not raising into its threads) on timeout."""
    try:
        return serving.wait_until(predicate, timeout=timeout, interval=interval, what=what)  # type: ignore[return-value]
    except AssertionError as exc:
        raise SystemExit(str(exc)) from None


def machine() -> str:
    # The load average says whether something else shared the machine during the run.
    return f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}"


def alert_body(group: str) -> bytes:
    """An Alertmanager notification opening a new incident for ``group`` (one firing alert whose
    labels pick the hallucination-spike runbook), as bench/ingest.py builds them."""
    return json.dumps(ingest.alertmanager_payload(group, 1)).encode()


# --- the emulator ---------------------------------------------------------------------------


def start_emulator(seed: dict[str, Any] | None = None) -> Any:
    from bot.emulator import Emulator

    emu = Emulator(seed=seed, signing_secret=SIGNING_SECRET)
    emu.start()
    emu.driver.timeout_s = 30.0  # a slow answer is a figure to print, not an exception
    return emu


def reply_text(reply: Any) -> str:
    """What the user saw of a BotReply: Bolt answers JSON, or plain text for a bare ``ack("text")``."""
    body = reply.json
    return str(body.get("text", "")) if isinstance(body, dict) else reply.body


@contextmanager
def keepalive_driver() -> Iterator[Callable[[], Any]]:
    """Make the emulator driver reuse one keep-alive connection per thread.

    The driver sends every request with ``httpx.post``: a new client (and TLS context) and a new
    connection each time, about 20 ms of CPU in *this* process. Twenty sender threads queue for that
    on one GIL, which measured ~400 ms p50 for ``/incident help`` against ~35 ms with kept-alive
    connections: the benchmark's own cost, not warroom's. Yields ``warm``: call it in each sender
    thread before the clock starts, so building its client is not timed either.
    """
    import types

    from bot.emulator import driver

    local, clients, lock = threading.local(), [], threading.Lock()

    def warm() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client()
            with lock:
                clients.append(local.client)
        return local.client

    original = driver.httpx
    driver.httpx = types.SimpleNamespace(post=lambda url, **kwargs: warm().post(url, **kwargs))  # type: ignore[assignment]
    try:
        yield warm
    finally:
        driver.httpx = original
        for client in clients:
            client.close()


def block_number(blocks: list[dict[str, Any]] | None, prefix: str) -> int | None:
    """The number in a block_id like ``card:12`` / ``runbook:12`` / ``announce:12`` (incidents) or
    ``run:3`` (action runs)."""
    for block in blocks or []:
        block_id = str(block.get("block_id", ""))
        if block_id.startswith(prefix + ":") and block_id[len(prefix) + 1:].isdigit():
            return int(block_id[len(prefix) + 1:])
    return None


class MessageWatch:
    """Bot messages carrying a ``prefix:<incident>`` block, by incident (first one wins).

    Each poll reads only the messages posted since the last one: polling every few milliseconds
    must not hold the emulator's lock (and this process's GIL) long while warroom calls it.
    Messages are only appended by posts, and the block ids looked for are set when posted.
    """

    def __init__(self, emu: Any, prefix: str) -> None:
        self.emu, self.prefix = emu, prefix
        self.read: dict[str, int] = {}
        self.found: dict[int, Any] = {}

    def poll(self) -> dict[int, Any]:
        with self.emu.state.lock:
            for channel in self.emu.state.channels.values():
                start = self.read.get(channel.id, 0)
                for message in channel.messages[start:]:
                    incident = block_number(message.blocks, self.prefix)
                    if incident is not None:
                        self.found.setdefault(incident, message)
                self.read[channel.id] = len(channel.messages)
        return self.found


def messages_by_incident(emu: Any, prefix: str) -> dict[int, Any]:
    return MessageWatch(emu, prefix).poll()


def wait_rooms(emu: Any, incident_ids: list[int], timeout: float) -> dict[int, Any]:
    """Wait until every incident's room is set up (its announcement is the last step); their cards."""
    wanted, announced = set(incident_ids), MessageWatch(emu, "announce")
    wait_until(lambda: wanted <= announced.poll().keys(), timeout=timeout, what=f"{len(wanted)} incident rooms",
               interval=0.05)
    cards = messages_by_incident(emu, "card")
    return {i: cards[i] for i in incident_ids}


# --- warroom in a subprocess ----------------------------------------------------------------


@dataclass
class Warroom:
    server: ingest.Server
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def fire(self, body: dict[str, Any] | bytes) -> dict[str, Any]:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = self.http.post(ingest.WEBHOOK, content=content)
        response.raise_for_status()
        return response.json()

    def incident(self, incident_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/incidents/{incident_id}")
        response.raise_for_status()
        return response.json()

    def outbox_pending(self) -> float:
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith("warroom_outbox_pending "):
                return float(line.split()[1])
        return float("nan")

    def settle(self, timeout: float = 60) -> None:
        """Wait until the worker has performed every queued Slack effect."""
        wait_until(lambda: self.outbox_pending() == 0, timeout=timeout, what="the outbox to drain", interval=0.05)


# As the tests have it: each alert group its own incident, and warroom's pacing of Web API calls to
# Slack's rate tiers scaled away (the emulator enforces none unless asked). These benchmarks time
# warroom's own path per room (open, ack, act); with the defaults a burst of groups would be
# correlated or put in storm mode, and new rooms would wait for conversations.create's 20 a minute.
# bench/storm.py measures exactly those and keeps the defaults (``storm_mode=True``).
PER_ROOM = {**ingest.INDEPENDENT_GROUPS, "WARROOM_SLACK_BUDGET_SCALE": 1000}


def warroom_settings(emu: Any, db_url: str, *, storm_mode: bool = False, **overrides: Any) -> dict[str, Any]:
    """Settings as tests/slack/conftest.py gives them (worker on), pointed at the emulator."""
    values: dict[str, Any] = {
        "WARROOM_ENV": "development", "WARROOM_DATABASE_URL": db_url, "WARROOM_ALERT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": emu.api_url, "SLACK_BOT_TOKEN": emu.token,
        "WARROOM_RUNBOOKS_DIR": str(ROOT / "runbooks"), "WARROOM_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "WARROOM_INCIDENTS_CHANNEL": INCIDENTS, "WARROOM_WORKER": True,
        # The scheduler's reminders and escalations run on minutes; off, so they cannot land mid-run.
        "WARROOM_SCHEDULER": False,
        **({} if storm_mode else PER_ROOM),
    }
    values.update(overrides)
    return values


@contextmanager
def warroom(emu: Any, settings: dict[str, Any], workdir: Path, env: dict[str, str] | None = None) -> Iterator[Warroom]:
    """warroom in a child process (this file as a script), connected to ``emu`` both ways."""
    port = ingest._free_port()
    log = workdir / f"warroom-{port}.log"
    # Nothing from the developer's shell leaks in; ``env`` adds what a run needs (targets, secrets).
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    child_env.update(env or {})
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, __file__, json.dumps(settings), str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, env=child_env, cwd=ROOT)
    server = ingest.Server(process, f"http://127.0.0.1:{port}", log)
    # The ingest token also reads /api/incidents (which needs a token or a signed-in person).
    http = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}",
                                                                  "Content-Type": "application/json"})
    try:
        ingest._wait_healthy(server)
        emu.bot_url = server.url + "/slack/events"
        yield Warroom(server, http)
    finally:
        emu.bot_url = None
        http.close()
        stop_process(process)


def add_database_args(parser: argparse.ArgumentParser) -> None:
    """``--db`` and ``--pg-admin``, as every Slack-side benchmark takes them."""
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-admin", default=os.environ.get("WARROOM_BENCH_PG", DEFAULT_PG_ADMIN),
                        help="PostgreSQL URL allowed to CREATE/DROP DATABASE (env WARROOM_BENCH_PG)")


def run_bench(bench: Callable[[argparse.Namespace, Path], None], args: argparse.Namespace) -> None:
    """``bench(args, workdir)`` in a throwaway folder, then the total time."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        bench(args, Path(tmp))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def serve(settings_json: str, port: int) -> None:
    """The child: migrate, then serve warroom (worker on) until SIGTERM."""
    import uvicorn

    from bot.compose import compose
    from bot.config import Settings
    from bot.serving import freeze_startup_objects
    from bot.store.db import upgrade
    from bot.web import create_app

    settings = Settings(_env_file=None, **json.loads(settings_json))
    warroom = compose(settings)
    upgrade(warroom.engine)
    app = create_app(warroom)
    freeze_startup_objects()  # as `warroom serve` does
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
