"""Who may see and change what: sign-in links, sessions, bearer tokens, CSRF, attribution.

Real HTTP over loopback to a whole warroom, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bot import signin
from bot.clock import utcnow
from bot.config import Settings
from bot.store.db import transaction
from bot.store.models import Postmortem, WebSession, WebSignInLink
from tests.conftest import ALERT_TOKEN, READER, Warroom, make_settings, serve_warroom, sign_in
from tests.postmortem.test_assemble import seed_incident

READ_TOKEN = "test-read-token"


def issue_link(warroom: Warroom, user: str = "U0PRIYA") -> str:
    with transaction(warroom.runtime.engine) as session:
        return signin.issue_link(session, user, valid_for=timedelta(minutes=5))


def browser(warroom: Warroom) -> httpx.Client:
    return httpx.Client(base_url=warroom.url, timeout=10)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, WARROOM_READ_TOKEN=READ_TOKEN)


def test_pages_and_incident_api_refuse_anyone_not_signed_in(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    anonymous = browser(warroom)
    for path in ("/incidents", f"/incidents/{seeded.incident_id}", f"/incidents/{seeded.incident_id}/postmortem",
                 f"/incidents/{seeded.incident_id}/postmortem.md"):
        page = anonymous.get(path)
        assert page.status_code == 401, path
        assert "/incident web" in page.text and "refund" not in page.text
    for path in ("/api/incidents", f"/api/incidents/{seeded.incident_id}",
                 f"/api/incidents/{seeded.incident_id}/postmortem"):
        answer = anonymous.get(path)
        assert answer.status_code == 401 and "bearer token" in answer.json()["error"], path
        wrong = anonymous.get(path, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid bearer token"
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/metrics").status_code == 200  # public unless WARROOM_METRICS_PUBLIC=false


def test_the_ingest_token_and_the_read_only_token_both_read_but_only_the_ingest_token_writes(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    client = browser(warroom)
    reader = {"Authorization": f"Bearer {READ_TOKEN}"}
    for headers in (READER, reader):
        assert client.get("/api/incidents", headers=headers).json()[0]["id"] == seeded.incident_id
        assert client.get(f"/incidents/{seeded.incident_id}", headers=headers).status_code == 200
    put = client.put(f"/api/incidents/{seeded.incident_id}/postmortem", json={"text": "mine"}, headers=reader)
    assert put.status_code == 401
    assert client.post("/webhooks/alertmanager", json={}, headers=reader).status_code == 401
    assert warroom.count(Postmortem) == 0


def test_metrics_can_be_put_behind_the_token(database_url: str) -> None:
    with serve_warroom(make_settings(database_url, WARROOM_METRICS_PUBLIC=False, WARROOM_READ_TOKEN=READ_TOKEN)) as wr:
        assert wr.http.get("/metrics").status_code == 401
        assert wr.http.get("/metrics", headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 200
        assert wr.http.get("/healthz").status_code == 200


def test_a_sign_in_link_signs_in_once_and_looking_at_it_does_not_use_it(warroom: Warroom) -> None:
    token = issue_link(warroom)
    person = browser(warroom)
    for _ in range(2):  # link previews fetch it too: a GET shows a button and changes nothing
        shown = person.get(f"/signin/{token}")
        assert shown.status_code == 200 and "U0PRIYA" in shown.text
        assert shown.headers["referrer-policy"] == "same-origin"
    signed = person.post("/signin", data={"token": token})
    assert signed.status_code == 303 and signed.headers["location"] == "/incidents"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie and "max-age=43200" in cookie
    assert person.get("/incidents").status_code == 200

    again = browser(warroom).post("/signin", data={"token": token})
    assert again.status_code == 400 and "used already" in again.text and "set-cookie" not in again.headers
    assert browser(warroom).get(f"/signin/{token}").status_code == 400
    assert browser(warroom).post("/signin", data={"token": "made-up"}).status_code == 400


def test_two_clicks_on_one_link_at_once_sign_in_one_browser(warroom: Warroom) -> None:
    token = issue_link(warroom)
    barrier = threading.Barrier(4)

    def click() -> int:
        with browser(warroom) as client:
            barrier.wait()
            return client.post("/signin", data={"token": token}).status_code

    with ThreadPoolExecutor(4) as pool:
        answers = sorted(pool.map(lambda _: click(), range(4)))
    assert answers == [303, 400, 400, 400]
    with transaction(warroom.runtime.engine) as session:
        assert len(session.execute(select(WebSession)).all()) == 1


def test_an_expired_link_and_an_expired_session_sign_nobody_in(warroom: Warroom) -> None:
    token = issue_link(warroom)
    with transaction(warroom.runtime.engine) as session:
        session.execute(update(WebSignInLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert browser(warroom).post("/signin", data={"token": token}).status_code == 400

    person = browser(warroom)
    sign_in(person, warroom.runtime, "U0SAM")
    assert person.get("/incidents").status_code == 200
    with transaction(warroom.runtime.engine) as session:
        session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert person.get("/incidents").status_code == 401


def test_the_database_keeps_only_hashes_of_links_and_sessions(warroom: Warroom) -> None:
    token = issue_link(warroom)
    person = browser(warroom)
    person.post("/signin", data={"token": token})
    cookie = person.cookies["warroom_session"]
    with transaction(warroom.runtime.engine) as session:
        stored = [*session.execute(select(WebSignInLink.token_hash)).scalars(),
                  *session.execute(select(WebSession.token_hash)).scalars()]
    assert len(stored) == 2 and token not in stored and cookie not in stored
    assert all(len(h) == 64 for h in stored)


def test_the_session_cookie_is_secure_behind_tls(database_url: str) -> None:
    public = make_settings(database_url, WARROOM_PUBLIC_URL="https://warroom.example.com")
    with serve_warroom(public) as wr:
        signed = wr.http.post("/signin", data={"token": issue_link(wr)})
        assert signed.status_code == 303 and "secure" in signed.headers["set-cookie"].lower()


def test_signing_out_ends_the_session_for_good(warroom: Warroom) -> None:
    csrf = warroom.sign_in()
    stolen = warroom.http.cookies["warroom_session"]
    assert warroom.http.post("/signout", data={"csrf": "wrong"}).status_code == 403
    out = warroom.http.post("/signout", data={"csrf": csrf})
    assert out.status_code == 303 and 'warroom_session=""' in out.headers["set-cookie"]
    replayed = browser(warroom)
    replayed.cookies.set("warroom_session", stolen)
    assert replayed.get("/incidents").status_code == 401


def test_an_anonymous_or_forged_form_post_does_not_overwrite_the_edit(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    url = f"/incidents/{seeded.incident_id}/postmortem"
    csrf = warroom.sign_in()
    assert warroom.http.post(url, data={"text": "our review", "csrf": csrf}).status_code == 303

    anonymous = browser(warroom)
    assert anonymous.post(url, data={"text": "overwritten"}).status_code == 401
    assert anonymous.post(f"{url}/regenerate").status_code == 401
    with_token_only = anonymous.post(url, data={"text": "overwritten"},
                                     headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert with_token_only.status_code == 401  # a form is a person's: the ingest token does not sign anyone in
    # Signed in, but the form did not come from our page (no CSRF token, or someone else's).
    assert warroom.http.post(url, data={"text": "overwritten"}).status_code == 403
    other = browser(warroom)
    other_csrf = sign_in(other, warroom.runtime, "U0SAM")
    assert warroom.http.post(url, data={"text": "overwritten", "csrf": other_csrf}).status_code == 403
    assert warroom.http.get(f"{url}.md").text == "our review"


def test_every_postmortem_edit_is_on_the_timeline_with_who_made_it(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    url = f"/incidents/{seeded.incident_id}/postmortem"
    priya = warroom.sign_in("U0PRIYA")
    assert warroom.http.post(url, data={"text": "our review", "csrf": priya}).status_code == 303
    sam = browser(warroom)
    assert sam.post(f"{url}/regenerate", data={"csrf": sign_in(sam, warroom.runtime, "U0SAM")}).status_code == 303
    api = warroom.http.put(f"/api{url}", json={"text": "via api"}, headers=READER)
    assert api.status_code == 200

    events = [e for e in warroom.incident(seeded.incident_id)["timeline"] if e["kind"] == "postmortem_edit"]
    # The API's text is for reading (no Slack markup; names when Slack can give them, which this
    # warroom without Slack cannot); the actor and the people named stay ids.
    assert [(e["actor"], e["text"]) for e in events] == [
        ("U0PRIYA", "@U0PRIYA edited the postmortem"),
        ("U0SAM", "@U0SAM regenerated the postmortem draft"),
        ("api", "The API (bearer token) edited the postmortem"),
    ]
    assert [e["people"] for e in events] == [["U0PRIYA"], ["U0SAM"], []]
    # The edits are about the postmortem, not the incident: the draft does not list them.
    assert "edited the postmortem" not in warroom.http.get(f"/api{url}", headers=READER).json()["draft"]
    assert "U0PRIYA" in warroom.http.get(url).text  # the page says who is signed in


def test_reading_a_postmortem_not_drafted_yet_stores_nothing(warroom: Warroom) -> None:
    seeded = seed_incident(warroom)
    warroom.sign_in()
    url = f"/incidents/{seeded.incident_id}/postmortem"
    assert "## Failing traces" in warroom.http.get(url).text
    assert warroom.http.get(f"{url}.md").text.startswith("# Postmortem")
    body = warroom.http.get(f"/api{url}", headers=READER).json()
    assert body["edited"] is None and "## Failing traces" in body["draft"]
    assert warroom.count(Postmortem) == 0
