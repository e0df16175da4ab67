"""The incident pages and the postmortem editor, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from bot.incidents import service
from bot.store.db import transaction
from bot.store.models import Postmortem
from tests.conftest import ALERT_TOKEN, Warroom
from tests.postmortem.test_assemble import seed_incident

HOSTILE = {"title": "<script>alert('title')</script> refund answers", "summary": "<script>alert('summary')</script>"
           "<img src=x onerror=alert(1)>"}


@pytest.fixture(autouse=True)
def signed_in(warroom: Warroom) -> None:
    """These tests are a signed-in person's browser: ``warroom.http`` carries the session cookie."""
    warroom.sign_in()


def assert_no_markup_from_alerts(html: str) -> None:
    assert "<script" not in html and "<img" not in html


def test_the_list_shows_each_incident_with_its_numbers(warroom: Warroom) -> None:
    seeded = seed_incident(warroom, annotations=HOSTILE)
    response = warroom.http.get("/incidents")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f'href="/incidents/{seeded.incident_id}"' in html
    assert f"INC-{seeded.opened:%Y%m%d}-{seeded.incident_id:04d}" in html
    assert "SEV2" in html and "resolved" in html and "llm-gateway" in html
    assert "<td>2 m</td>" in html and "<td>13 m</td>" in html
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt; refund answers" in html
    assert_no_markup_from_alerts(html)
    assert "script-src" not in response.headers["content-security-policy"]  # no scripts allowed at all


def test_the_list_can_show_only_open_incidents(warroom: Warroom) -> None:
    resolved = seed_incident(warroom)
    still_open = seed_incident(warroom, group="second-group", resolve=False)
    html = warroom.http.get("/incidents", params={"status": "open"}).text
    assert f'href="/incidents/{still_open.incident_id}"' in html
    assert f'href="/incidents/{resolved.incident_id}"' not in html


def test_the_incident_page_has_facts_alerts_timeline_actions_chart_and_postmortem_link(warroom: Warroom) -> None:
    seeded = seed_incident(warroom, annotations=HOSTILE)
    response = warroom.http.get(f"/incidents/{seeded.incident_id}")
    assert response.status_code == 200
    html = response.text
    assert "<h2>Alerts (3)</h2>" in html and "model=secondary-13b" in html
    assert "&lt;script&gt;alert(&#39;summary&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert_no_markup_from_alerts(html)
    assert "📌" in html and "refund trace says @U0PRIYA 90 days" in html
    assert "Acknowledged by @U0PRIYA (MTTA 2 m)" in html
    assert "<td>rollback</td>" in html and "bundle=v41" in html and "<td>U0SAM</td>" in html
    assert "<svg" in html and "<polyline" in html and "<rect" in html and ">ack</text>" in html
    assert f'href="/incidents/{seeded.incident_id}/postmortem"' in html
    assert f'href="/incidents/{seeded.incident_id}/postmortem.md"' in html
    assert "<td>hallucination</td><td class=\"num\">9</td>" in html


def test_an_unknown_incident_is_a_404_page(warroom: Warroom) -> None:
    assert warroom.http.get("/incidents/4242").status_code == 404
    assert warroom.http.get("/incidents/4242/postmortem.md").status_code == 404
    assert warroom.http.get("/api/incidents/4242/postmortem").status_code == 404
    assert warroom.http.get("/incidents/not-a-number").status_code == 404


def test_the_markdown_is_generated_on_request_and_reading_stores_nothing(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    first = warroom.http.get(f"/incidents/{seeded.incident_id}/postmortem.md")
    assert first.status_code == 200 and first.headers["content-type"] == "text/markdown; charset=utf-8"
    assert first.text.startswith(f"# Postmortem INC-{seeded.opened:%Y%m%d}-{seeded.incident_id:04d}:")
    assert "prompt answer-v41→answer-v42" in first.text
    assert warroom.http.get(f"/incidents/{seeded.incident_id}/postmortem.md").text == first.text
    assert warroom.count(Postmortem) == 0


def test_an_edit_from_the_form_is_what_the_markdown_then_serves(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    url = f"/incidents/{seeded.incident_id}/postmortem"
    response = warroom.http.post(url, data={"text": "# Review\r\n\r\nThe <b>retriever</b> snapshot was stale.\r\n",
                                            "csrf": warroom.csrf})
    assert response.status_code == 303 and response.headers["location"] == f"{url}?saved=1"
    assert warroom.http.get(f"{url}.md").text == "# Review\n\nThe <b>retriever</b> snapshot was stale.\n"
    page = warroom.http.get(f"{url}?saved=1").text
    assert "Saved." in page and "The &lt;b&gt;retriever&lt;/b&gt; snapshot was stale." in page
    assert "<b>retriever" not in page


def test_regenerating_keeps_the_edit_and_the_page_says_the_draft_changed(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    url = f"/incidents/{seeded.incident_id}/postmortem"
    warroom.http.post(url, data={"text": "my words", "csrf": warroom.csrf})
    assert "changed since you edited it" not in warroom.http.get(url).text
    with transaction(warroom.runtime.engine) as session:
        service.add_followup(session, service.get(session, seeded.incident_id), "Pin retriever snapshots",
                             actor="U0SAM", owner=None)
    response = warroom.http.post(f"{url}/regenerate", data={"csrf": warroom.csrf})
    assert response.status_code == 303 and response.headers["location"] == url
    page = warroom.http.get(url).text
    assert "the draft changed since you edited it" in page.lower()
    assert ">my words</textarea>" in page and "Pin retriever snapshots" in page  # the new draft, under the edit
    assert warroom.http.get(f"{url}.md").text == "my words"


def test_a_form_post_from_another_site_is_refused(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    url = f"/incidents/{seeded.incident_id}/postmortem"
    original = warroom.http.get(f"{url}.md").text
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        assert warroom.http.post(url, data={"text": "pwned", "csrf": warroom.csrf}, headers=headers).status_code == 403
    assert warroom.http.post(f"{url}/regenerate", data={"csrf": warroom.csrf},
                             headers={"Origin": "http://evil.example"}).status_code == 403
    same_origin = {"Origin": warroom.url, "Sec-Fetch-Site": "same-origin"}
    assert warroom.http.post(url, data={"text": "ours", "csrf": warroom.csrf}, headers=same_origin).status_code == 303
    assert warroom.http.get(f"{url}.md").text == "ours" != original


def test_a_form_without_text_or_in_another_encoding_is_a_clear_4xx(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    url = f"/incidents/{seeded.incident_id}/postmortem"
    missing = warroom.http.post(url, data={"other": "x", "csrf": warroom.csrf})
    assert missing.status_code == 400 and "text" in missing.text
    multipart = warroom.http.post(url, files={"text": ("a.md", b"x")})
    assert multipart.status_code == 415


def test_the_json_api_reads_and_edits_the_postmortem(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    url = f"/api/incidents/{seeded.incident_id}/postmortem"
    body = warroom.http.get(url).json()
    assert body["incident_id"] == seeded.incident_id and body["edited"] is None
    assert body["text"] == body["draft"] and "## Failing traces" in body["draft"]
    assert body["draft_changed_since_edit"] is False

    auth = {"Authorization": f"Bearer {ALERT_TOKEN}"}
    assert warroom.http.put(url, json={"text": "x"}).status_code == 401
    assert warroom.http.put(url, content=b"text=x", headers={**auth, "Content-Type": "text/plain"}).status_code == 415
    assert warroom.http.put(url, json={"txt": "x"}, headers=auth).status_code == 400

    edited = warroom.http.put(url, json={"text": "# Ours\n"}, headers=auth)
    assert edited.status_code == 200, edited.text
    assert edited.json()["text"] == "# Ours\n" and edited.json()["draft"] == body["draft"]
    assert warroom.http.get(url).json()["edited"] == "# Ours\n"

    dropped = warroom.http.put(url, json={"text": ""}, headers=auth).json()
    assert dropped["edited"] is None and dropped["text"] == body["draft"]
    assert warroom.count(Postmortem) == 1
