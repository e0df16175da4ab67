"""`warroom storm`: a scripted alert storm against a running warroom (the demo's, by default).

It sends what a bad day looks like to Alertmanager's receiver: for each of ``services`` services,
``slos`` SLO groups (page and ticket alternating), all at once, so that the storm thresholds
trip (`bot.alerts.correlation`): the first services open their own incidents, then warroom goes
into storm mode and each further service gets one storm incident for all its groups.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from bot.alerts.fingerprint import fingerprint

STORM_SLOS = ("hallucination-rate", "schema-valid-rate", "error-rate", "tool-call-success", "latency")


def storm_payloads(services: int, slos: int, now: datetime) -> list[dict[str, Any]]:
    """One Alertmanager notification per (service, SLO), as a Sloth rule set grouped by SLO sends them."""
    starts = (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    bodies = []
    for s in range(services):
        service = f"storm-svc-{s + 1}"
        for i in range(slos):
            slo = STORM_SLOS[i % len(STORM_SLOS)] + (f"-{i // len(STORM_SLOS) + 1}" if i >= len(STORM_SLOS) else "")
            severity = "page" if i % 2 == 0 else "ticket"
            labels = {"alertname": "LLMSLOErrorBudgetBurn", "service": service, "slo": slo, "sloth_service": service,
                      "sloth_slo": slo, "sloth_severity": severity}
            group_labels = {"alertname": "LLMSLOErrorBudgetBurn", "sloth_service": service, "sloth_slo": slo,
                            "sloth_severity": severity}
            key = "{}/{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
            alert = {"status": "firing", "labels": labels,
                     "annotations": {"title": f"{service} {slo} burning", "summary": "scripted storm (warroom storm)"},
                     "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
                     "fingerprint": fingerprint(labels)}
            bodies.append({"receiver": "warroom", "status": "firing", "alerts": [alert], "groupLabels": group_labels,
                           "commonLabels": labels, "commonAnnotations": alert["annotations"],
                           "externalURL": "http://127.0.0.1:9093", "version": "4", "truncatedAlerts": 0,
                           "groupKey": key + "#" + hashlib.sha1(key.encode()).hexdigest()[:6]})
    return bodies


def send_storm(url: str, token: str, services: int, slos: int, senders: int = 8) -> Counter[str]:
    """Send the storm with ``senders`` at once; how many notifications got each answer."""
    bodies = storm_payloads(services, slos, datetime.now(timezone.utc))
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        def send(body: dict[str, Any]) -> str:
            answer = http.post("/webhooks/alertmanager", json=body)
            return str(answer.json().get("status")) if answer.status_code == 200 else f"HTTP {answer.status_code}"
        with ThreadPoolExecutor(senders) as pool:
            return Counter(pool.map(send, bodies))
