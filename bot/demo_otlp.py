"""`warroom demo --otlp`: the example service sends OpenTelemetry traces only, and warroom's own
watcher (burn rates and quality sensors of examples/slos-otlp.yaml) raises the incidents.

A drift needs a baseline, and a demo has no history: before the bad bundle ships, the service's
last 70 minutes under v41 are replayed through the same OTLP exporter with their past timestamps
(the answers are the service's own, computed for v41). Then v42 ships for real and its live
traffic drifts and burns the budget.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from examples.llm_service.answers import answer_question, traffic_questions
from examples.llm_service.bundles import BUNDLES
from examples.llm_service.otel import Encoding, OtelShipper
from examples.llm_service.traces import trace_event

SLO_FILE = "slos-otlp.yaml"
HISTORY = timedelta(minutes=70)  # the drift sensor's 10-minute window plus its 1-hour baseline
HISTORY_PER_MINUTE = 10


def replay_history(warroom_url: str, token: str, encoding: Encoding, *, now: datetime | None = None,
                   history: timedelta = HISTORY, per_minute: int = HISTORY_PER_MINUTE) -> int:
    """Export the service's recent v41 answers (as it answered them) with past timestamps; how many."""
    now = now or datetime.now(timezone.utc)
    shipper = OtelShipper(warroom_url, token, encoding=encoding, interval=0.2)
    bundle, questions = BUNDLES["v41"], traffic_questions()
    count = int(history.total_seconds() / 60 * per_minute)
    try:
        for i in range(count):
            question = questions[i % len(questions)]
            answer = answer_question(question, bundle, "primary-70b", {"web_search": True, "order_lookup": True})
            event = trace_event(uuid.uuid4().hex, question, bundle, "primary-70b", answer)
            event["timestamp"] = (now - history + history * i / count).isoformat()
            shipper.submit(event)
            if i % 500 == 499:
                shipper.flush()  # the SDK's queue holds 2,048 spans; it drops beyond that
    finally:
        shipper.stop()
    return count
