"""A second (and third) warroom process for tests/test_scheduler.py: run every job, many times, at once.

    python -m tests.scheduler_proc DATABASE_URL SLO_FILE SIGNAL_DIR NAME NOW [NOW ...]

Each ``NOW`` (ISO 8601) is one phase: the process writes ``SIGNAL_DIR/ready-NAME-I`` and waits for
``SIGNAL_DIR/go-I`` (the test writes it once every process is ready, so phases start together in
all processes and never overlap), then ``THREADS`` threads each call every job body ``ROUNDS``
times at that moment. At the end it prints one JSON object: per job, the sum of what the calls
returned, and how many calls were made.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

from bot.incidents import reminders
from bot.sensors.burn_rate import evaluate_slos, intake_rules
from bot.serving import wait_until
from bot.slo.spec import load_slos
from bot.store.db import make_engine
from tests.conftest import make_settings

THREADS = 4
ROUNDS = 3
START_DEADLINE_SECONDS = 60


class LeaseSkips(logging.Handler):
    """Counts ticks skipped because another thread or process held the job's lease (reported, not
    asserted: how often they collide depends on the machine)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "lease held elsewhere" in record.msg:
            self.count += 1


def main(argv: list[str]) -> int:
    database_url, slo_file, signal_dir, name, *nows = argv
    # With an incidents channel, reminders due together for the same people are one digest.
    settings = make_settings(database_url, WARROOM_INCIDENTS_CHANNEL="C0INCIDENTS")
    engine = make_engine(database_url)
    slos = load_slos(slo_file)
    rules = intake_rules(settings)
    moments = [datetime.fromisoformat(n) for n in nows]
    jobs = {
        "escalate": reminders.escalate_unacknowledged,
        "nudge": reminders.nudge_status_updates,
        "postmortem": reminders.postmortem_due,
        "retry": reminders.retry_setup,
        "prune": reminders.prune_traces,
    }
    totals: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []
    signals = Path(signal_dir)
    skips = LeaseSkips()
    lease_log = logging.getLogger(reminders.__name__)
    lease_log.setLevel(logging.DEBUG)
    lease_log.addHandler(skips)

    def work(now: datetime, start_together: threading.Barrier) -> None:
        try:
            start_together.wait(timeout=START_DEADLINE_SECONDS)
            for _ in range(ROUNDS):
                for job_name, job in jobs.items():
                    done = job(engine, settings, now)
                    with lock:
                        totals[job_name] += done
                        calls[job_name] += 1
                results = evaluate_slos(engine, settings, slos, now, rules=rules)
                with lock:
                    calls["watch"] += 1
                    for result in results:
                        totals[f"watch.{result.outcome}"] += 1
        except BaseException as exc:  # reported to the parent test, which fails on it
            errors.append(exc)

    for phase, now in enumerate(moments):
        (signals / f"ready-{name}-{phase}").touch()
        if not _wait_for_file(signals / f"go-{phase}"):
            print(json.dumps({"errors": [f"no go signal for phase {phase}"]}))
            return 2
        start_together = threading.Barrier(THREADS)
        threads = [threading.Thread(target=work, args=(now, start_together)) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    engine.dispose()
    print(json.dumps({"totals": dict(totals), "calls": dict(calls), "lease_skips": skips.count,
                      "errors": [repr(e) for e in errors]}))
    return 1 if errors else 0


def _wait_for_file(path: Path) -> bool:
    try:
        wait_until(path.exists, timeout=START_DEADLINE_SECONDS, interval=0.005, what=str(path))
    except AssertionError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
