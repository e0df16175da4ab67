"""`warroom demo`: the sample alerts' one incident is mitigated by the automatic fallback before anyone clicks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from bot.config import DEV_ALERT_TOKEN
from bot.serving import stop_process
from tests.conftest import ROOT
from tests.support import free_port, wait_for


def test_the_demo_s_incident_is_mitigated_by_the_automatic_fallback_with_the_guard_s_evidence(tmp_path: Path):
    port, emulator_port, service_port = free_port(), free_port(), free_port()
    log = (tmp_path / "demo.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "bot", "demo", "--port", str(port), "--emulator-port",
                                str(emulator_port), "--service-port", str(service_port), "--data-dir", str(tmp_path)],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5,
                        headers={"Authorization": f"Bearer {DEV_ALERT_TOKEN}"})

    def incident() -> dict | None:
        try:
            response = http.get("/api/incidents/1")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    try:
        mitigated = wait_for(lambda: (i := incident()) and i["status"] == "mitigated" and i, timeout=90,
                             interval=0.5, what="the automatic mitigation")
        by_kind = {e["kind"]: e for e in mitigated["timeline"]}
        assert by_kind["action_requested"]["actor"] == "warroom (auto)"
        improved = by_kind["guard_improved"]["text"]
        # Real evidence: v42's traffic before the fallback (replayed since its deploy), live traffic after.
        found = re.search(r"Guard: improved — hallucination-rate error ratio ([\d.]+) % → ([\d.]+) % within", improved)
        assert found, improved
        before, after = float(found.group(1)), float(found.group(2))
        assert before > after and before > 5, improved  # v42 hallucinates on one traffic question in eight
        assert by_kind["mitigated"]["actor"] == "warroom (auto)"
        assert "bundle v42 by deploy-bot" in by_kind["change"]["text"]
        assert not any(e["actor"] in ("U0PRIYA", "U0SAM") for e in mitigated["timeline"])  # nobody clicked
        state = httpx.get(f"http://127.0.0.1:{service_port}/control/state",
                          headers={"Authorization": "Bearer demo-control-token"}).json()
        assert state["route"] == "safe-fallback-8b"
        seen = httpx.get(f"http://127.0.0.1:{emulator_port}/ui/state",  # what the emulator page shows Priya
                         params={"channel": mitigated["channel_id"], "user": "U0PRIYA"}).text
        assert "warroom is running run #1" in seen and "/incident undo 1" in seen  # what, how to undo
        assert "runbook <strong>Hallucination rate spike</strong> declares it" in seen  # why (mrkdwn bold on the page)
        assert "Changed 17 min before: bundle v42 by deploy-bot" in seen  # the card names the change
        # The card's figures of the incident's window, measured from v42's traffic, and where they came from.
        assert "Error budget consumed since it started:" in seen
        assert "30d budget (its 99.5 % objective over 30d; from traces:" in seen
        # The bad bundle's ticket alert for another SLO came as another Alertmanager group: one room.
        assert [g["name"] for g in mitigated["groups"]] == ["hallucination-rate (page)", "schema-valid-rate (ticket)"]
        assert "Also firing: schema-valid-rate (ticket)" in seen
    finally:
        http.close()
        stop_process(process)
        log.close()
