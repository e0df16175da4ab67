"""`warroom demo --otlp`: the example service sends OpenTelemetry traces only, and warroom's own
watcher (burn rates and quality sensors of examples/slos-otlp.yaml) raises the incidents.

A drift needs a baseline, and a demo has no history: before the bad bundle ships, the service's
last 70 minutes under v41 are replayed through the same OTLP exporter with their past timestamps
(the answers are the service's own, computed for v41). Then v42 ships for real and its live
traffic drifts and burns the budget.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.demo_history import history_events
from examples.llm_service.otel import Encoding, OtelShipper

SLO_FILE = "slos-otlp.yaml"
HISTORY = timedelta(minutes=70)  # the drift sensor's 10-minute window plus its 1-hour baseline
HISTORY_PER_MINUTE = 10


def replay_history(warroom_url: str, token: str, encoding: Encoding, *, now: datetime | None = None,
                   history: timedelta = HISTORY, per_minute: int = HISTORY_PER_MINUTE) -> int:
    """Export the service's recent v41 answers (as it answered them) with past timestamps; how many."""
    now = now or datetime.now(timezone.utc)
    shipper = OtelShipper(warroom_url, token, encoding=encoding, interval=0.2)
    count = 0
    try:
        for count, event in enumerate(history_events("v41", now - history, now, per_minute), start=1):
            shipper.submit(event)
            if count % 500 == 0:
                shipper.flush()  # the SDK's queue holds 2,048 spans; it drops beyond that
    finally:
        shipper.stop()
    return count
