"""The example service's recent past, replayed into warroom before the demo's alert fires.

A demo starts from an empty database, but its story has a past: bad bundle v42 has been answering
users since it was deployed 17 minutes ago. Its answers for those minutes (the service's own,
computed for v42 on its route, at its traffic rate, with past timestamps) are posted to
``/api/traces`` before the sample alert fires, so the guard's "before" ratio, the card's traffic
and the postmortem's impact are measured from that traffic, and the "after" ratio from the live
traffic that follows the fallback. OTLP mode exports its history through the OpenTelemetry SDK
instead (`bot.demo_otlp`), from the same events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx

from examples.llm_service.answers import answer_question, traffic_questions
from examples.llm_service.bundles import BUNDLES, TOOLS
from examples.llm_service.traces import trace_event

BATCH = 500  # events per POST /api/traces


def history_events(version: str, start: datetime, end: datetime, per_minute: int) -> Iterator[dict[str, object]]:
    """The service's answers under ``version`` from ``start`` to ``end``, evenly spaced, as its trace events."""
    bundle, questions = BUNDLES[version], traffic_questions()
    count = int((end - start).total_seconds() / 60 * per_minute)
    for i in range(count):
        question = questions[i % len(questions)]
        answer = answer_question(question, bundle, bundle.model_route, dict.fromkeys(TOOLS, True))
        event = trace_event(uuid.uuid4().hex, question, bundle, bundle.model_route, answer)
        event["timestamp"] = (start + (end - start) * i / count).isoformat()
        yield event


def replay_json(warroom_url: str, token: str, version: str, since: timedelta, *, per_minute: int,
                now: datetime | None = None) -> int:
    """Post the service's answers of the last ``since`` under ``version`` to warroom; how many."""
    now = now or datetime.now(timezone.utc)
    sent = 0
    batch: list[dict[str, object]] = []
    with httpx.Client(base_url=warroom_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for event in history_events(version, now - since, now, per_minute):
            batch.append(event)
            if len(batch) == BATCH:
                sent += _post(http, batch)
                batch = []
        if batch:
            sent += _post(http, batch)
    return sent


def _post(http: httpx.Client, batch: list[dict[str, object]]) -> int:
    response = http.post("/api/traces", json=batch)
    response.raise_for_status()
    return int(response.json()["accepted"])
