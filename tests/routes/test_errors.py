"""A failure is answered the way the route speaks: JSON for the API, a page for pages, text for the
Markdown, with the status and headers a caller acts on (exception handlers in `bot.routes.errors`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import ALERT_TOKEN, READER, Warroom, make_settings, serve_warroom

MISSING = "There is no incident #4242."
TOO_LARGE = "incident id must be a whole number from 1 to 2147483647"


def test_an_unknown_incident_is_said_in_each_routes_own_form(warroom: Warroom) -> None:
    page = warroom.http.get("/incidents/4242", headers=READER)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text and MISSING in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # the error page is a page like the others
    for url in ("/incidents/4242/postmortem", "/incidents/4242/postmortem.md", "/api/incidents/4242",
                "/api/incidents/4242/postmortem"):
        assert warroom.http.get(url, headers=READER).status_code == 404, url
    markdown = warroom.http.get("/incidents/4242/postmortem.md", headers=READER)
    assert markdown.headers["content-type"].startswith("text/plain") and markdown.text == MISSING
    assert warroom.http.get("/api/incidents/4242", headers=READER).json() == {"error": MISSING}
    assert warroom.http.get("/api/incidents/4242/postmortem", headers=READER).json() == {"error": MISSING}
    put = warroom.http.put("/api/incidents/4242/postmortem", json={"text": "x"},
                           headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert put.status_code == 404 and put.json() == {"error": MISSING}


def test_an_id_out_of_range_is_a_400_in_each_form(warroom: Warroom) -> None:
    page = warroom.http.get("/incidents/99999999999", headers=READER)
    assert page.status_code == 400 and "<h1>Bad request</h1>" in page.text and TOO_LARGE in page.text
    markdown = warroom.http.get("/incidents/99999999999/postmortem.md", headers=READER)
    assert markdown.status_code == 400 and markdown.text == TOO_LARGE
    api = warroom.http.get("/api/incidents/99999999999", headers=READER)
    assert api.status_code == 400 and api.json() == {"error": TOO_LARGE}


def test_an_unknown_bundle_is_a_json_404(warroom: Warroom) -> None:
    response = warroom.post("/api/bundles/llm-gateway/v404/known-good", {})
    assert response.status_code == 404 and "v404" in response.json()["error"]


def test_a_database_outage_is_a_503_with_retry_after_on_the_api_and_on_pages(tmp_path) -> None:
    down = "sqlite:///" + str(tmp_path / "missing-dir" / "x.db")
    with serve_warroom(make_settings(down)) as running:
        api = running.http.get("/api/incidents", headers=READER)
        assert api.status_code == 503 and api.headers["retry-after"] == "5"
        assert api.json()["error"] == "database unavailable, try again" and api.json()["error_id"].startswith("E")
        change = running.post("/api/changes", {"service": "llm-gateway", "kind": "deploy", "summary": "v42"})
        assert change.status_code == 503 and change.headers["retry-after"] == "5"
        page = running.http.get("/incidents/1", headers=READER)
        assert page.status_code == 503 and page.headers["retry-after"] == "5"
        assert page.headers["content-type"].startswith("text/html") and "database unavailable" in page.text


def test_a_bug_is_a_json_500_naming_the_error_id_in_the_log(settings, caplog) -> None:
    from bot.compose import compose
    from bot.routes.errors import Route
    from bot.web import create_app
    from tests.support import ServerThread

    async def broken(request: Request) -> Response:
        raise KeyError("a bug")

    warroom = compose(settings)
    server = ServerThread(create_app(warroom, extra_routes=[Route("/broken", broken, methods=["GET"])])).start()
    try:
        response = Warroom(warroom, server.url).http.get("/broken")
    finally:
        server.stop()
        warroom.engine.dispose()
    assert response.status_code == 500 and response.json()["error"] == "internal error"
    error_id = response.json()["error_id"]
    assert any(getattr(r, "error_id", None) == error_id and r.exc_info for r in caplog.records)
