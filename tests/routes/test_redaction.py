"""A credential in alert text, the timeline, a run's error or a pasted edit: no page, API or postmortem shows it."""

from __future__ import annotations

from datetime import timedelta

from bot.incidents import service, timeline
from bot.store.db import transaction
from bot.store.models import ActionRun
from tests.conftest import ALERT_TOKEN, Warroom
from tests.postmortem.test_assemble import seed_incident

IN_ALERT = "glpat-" + "Zq8vK2mN4bX7cR1tY5uW"
PINNED = "AIza" + "SyZq8vK2mN4bX7cR1tY5uW9eA3sD6fG0hJ"
IN_RUN_ERROR = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3YXJyb29tIn0.Zq8vK2mN4bX7cR1tY5uW9eA3sD6fG0hJ"
IN_EDIT = "xoxb-" + "2222222222-Zq8vK2mN4bX7cR1tY5uW"
LEAKS = (IN_ALERT, PINNED, IN_RUN_ERROR, IN_EDIT)


def seed_with_credentials(warroom: Warroom) -> int:
    warroom.sign_in()  # the pages and the incident API are for signed-in people
    seeded = seed_incident(warroom, annotations={"summary": f"CI token {IN_ALERT} failed", "title": "ci"})
    with transaction(warroom.runtime.engine) as session:
        incident = service.get(session, seeded.incident_id)
        timeline.record(session, incident, "pinned", f"the key is {PINNED} (pasted by mistake)", actor="U0PRIYA",
                        at=seeded.opened + timedelta(minutes=5))
        session.add(ActionRun(incident_id=seeded.incident_id, playbook="fallback", params={"route": "x"},
                              idempotency_key="leaky-run", status="failed", requested_by="U0PRIYA",
                              requested_at=seeded.opened + timedelta(minutes=6),
                              error=f"HTTP 401: session {IN_RUN_ERROR} expired",
                              result={"status": "failed", "error": f"session {IN_RUN_ERROR} expired"}))
    return seeded.incident_id


def assert_nothing_leaks(shown: str) -> None:
    for secret in LEAKS:
        assert secret[:12] not in shown and secret[-12:] not in shown


def test_the_pages_show_no_credential_from_alerts_timeline_or_runs(warroom: Warroom) -> None:
    incident_id = seed_with_credentials(warroom)
    html = warroom.http.get(f"/incidents/{incident_id}").text + warroom.http.get("/incidents").text
    assert "the key is [secret] (pasted by mistake)" in html and "CI token [secret] failed" in html
    assert "session [secret] expired" in html
    assert_nothing_leaks(html)


def test_the_api_shows_no_credential_from_alerts_or_the_timeline(warroom: Warroom) -> None:
    incident_id = seed_with_credentials(warroom)
    body = warroom.http.get(f"/api/incidents/{incident_id}").text + warroom.http.get("/api/incidents").text
    assert "the key is [secret] (pasted by mistake)" in body
    assert_nothing_leaks(body)


def test_the_postmortem_shows_no_credential_in_draft_page_markdown_or_api(warroom: Warroom) -> None:
    incident_id = seed_with_credentials(warroom)
    shown = (warroom.http.get(f"/incidents/{incident_id}/postmortem.md").text
             + warroom.http.get(f"/incidents/{incident_id}/postmortem").text
             + warroom.http.get(f"/api/incidents/{incident_id}/postmortem").text)
    assert "[secret]" in shown
    assert_nothing_leaks(shown)


def test_a_credential_pasted_into_a_postmortem_edit_is_not_kept(warroom: Warroom) -> None:
    incident_id = seed_with_credentials(warroom)
    form = warroom.http.post(f"/incidents/{incident_id}/postmortem", data={"text": f"# Review\n\nbot token {IN_EDIT}\n",
                                                                         "csrf": warroom.csrf})
    assert form.status_code == 303
    put = warroom.http.put(f"/api/incidents/{incident_id}/postmortem", json={"text": f"bot token {IN_EDIT} again"},
                           headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert put.status_code == 200 and put.json()["text"] == "bot token [secret] again"
    shown = put.text + warroom.http.get(f"/incidents/{incident_id}/postmortem.md").text
    assert_nothing_leaks(shown)
