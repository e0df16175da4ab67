"""Bad webhook input: a clear 4xx naming the problem, nothing stored, never a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.store.models import Alert, AlertGroup, Incident, OutboxItem, TimelineEvent
from tests.alerts.payloads import am_alert, am_payload

TABLES = (Incident, Alert, AlertGroup, TimelineEvent, OutboxItem)


def assert_nothing_stored(warroom) -> None:
    assert [warroom.count(t) for t in TABLES] == [0] * len(TABLES)


def _valid() -> dict:
    return am_payload([am_alert("a")])


def _with(path: str, value: object) -> dict:
    body = _valid()
    target = body
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return body


BAD_BODIES = [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe{}", 400, "not valid UTF-8"),
    (b'{"version": "4", "groupKey": "\\ud800"}', 400, "lone surrogate"),
    (b"[" * 5000 + b"]" * 5000, 400, "nesting"),
    (json.dumps({"x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}).encode(), 400,
     "nesting"),
    (b"", 400, "empty"),
    (b"[]", 422, "JSON object"),
    (b'{"version": "4", "alerts": NaN}', 400, "NaN"),
    (json.dumps(_with("version", "3")).encode(), 422, "unsupported payload version '3'"),
    (json.dumps(_with("alerts", [])).encode(), 422, "alerts"),
    (json.dumps(_with("alerts", KeyError)).encode(), 422, "alerts"),
    (json.dumps(_with("groupKey", 42)).encode(), 422, "groupKey"),
    (json.dumps(_with("alerts.0.labels", {"model": 7})).encode(), 422, "alerts.0.labels.model"),
    (json.dumps(_with("alerts.0.status", "burning")).encode(), 422, "alerts.0.status"),
    (json.dumps(_with("alerts.0.startsAt", "yesterday")).encode(), 422, "alerts.0.startsAt"),
    (json.dumps(_with("alerts.0.startsAt", "0001-01-01T00:00:00Z")).encode(), 422, "alerts.0.startsAt"),
    (json.dumps(_with("truncatedAlerts", -1)).encode(), 422, "truncatedAlerts"),
    (json.dumps(_with("alerts.0.annotations", {"summary": "x" * 20000})).encode(), 422, "alerts.0.annotations.summary"),
    (json.dumps(_with("alerts.0.labels", {"a": "nul\u0000byte"})).encode(), 422, "NUL"),
]


@pytest.mark.parametrize("raw,status,needle", BAD_BODIES, ids=[n for _, _, n in BAD_BODIES])
def test_bad_body_is_a_4xx_that_says_what_is_wrong_and_stores_nothing(warroom, raw, status, needle):
    response = warroom.post("/webhooks/alertmanager", content=raw)
    assert response.status_code == status, response.text
    assert needle in response.text
    assert_nothing_stored(warroom)
    assert warroom.http.get("/healthz").status_code == 200


def test_body_over_the_size_limit_is_413(warroom):
    body = _valid()
    body["alerts"] = [am_alert(f"m{i}", annotations={"summary": "y" * 10000}) for i in range(120)]
    response = warroom.post("/webhooks/alertmanager", content=json.dumps(body).encode())
    assert response.status_code == 413 and "limit of 1048576 bytes" in response.json()["error"]
    assert_nothing_stored(warroom)


def test_unknown_fields_from_newer_alertmanagers_are_accepted(warroom):
    body = _valid()
    body["routeLabels"] = {"team": "ml"}
    body["alerts"][0]["someFutureField"] = {"x": 1}
    assert warroom.alertmanager(body).status_code == 200


def test_grafana_endpoint_refuses_an_alertmanager_body(warroom):
    response = warroom.post("/webhooks/grafana", _valid())
    assert response.status_code == 422 and "version '1'" in response.json()["error"]
    assert_nothing_stored(warroom)


@pytest.mark.parametrize("token", [None, "wrong-token", "x" * 200])
def test_webhooks_need_the_bearer_token(warroom, token):
    response = warroom.post("/webhooks/alertmanager", _valid(), token=token)
    assert response.status_code == 401 and "bearer token" in response.json()["error"]
    assert_nothing_stored(warroom)


def test_database_down_is_503_so_alertmanager_retries(database_url, tmp_path):
    from bot.compose import compose
    from bot.web import create_app
    from tests.conftest import Warroom, make_settings
    from tests.support import ServerThread

    down = ("sqlite:///" + str(tmp_path / "missing-dir" / "x.db") if database_url.startswith("sqlite")
            else "postgresql://postgres@127.0.0.1:1/warroom")
    warroom = compose(make_settings(down))
    server = ServerThread(create_app(warroom)).start()
    try:
        client = Warroom(warroom, server.url)
        response = client.alertmanager(_valid())
        assert response.status_code == 503 and response.headers["retry-after"]
        assert "database unavailable" in response.json()["error"]
        assert client.http.get("/healthz").status_code == 503
    finally:
        server.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values, path=st.sampled_from(["/webhooks/alertmanager", "/webhooks/grafana"]))
def test_any_json_gets_2xx_or_4xx_and_4xx_stores_nothing(warroom, body, path):
    before = [warroom.count(t) for t in TABLES]
    response = warroom.post(path, content=json.dumps(body).encode())
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert [warroom.count(t) for t in TABLES] == before


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), path=st.sampled_from(["/webhooks/alertmanager", "/webhooks/grafana"]))
def test_any_bytes_get_a_4xx_and_store_nothing(warroom, raw, path):
    response = warroom.post(path, content=raw)
    assert 400 <= response.status_code < 500, response.text
    assert_nothing_stored(warroom)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), min_size=1, max_size=5),
       status=st.sampled_from(["firing", "resolved"]))
def test_any_well_formed_alert_is_accepted(warroom, labels, status):
    body = _valid()
    body["alerts"][0]["labels"] = labels
    body["alerts"][0]["status"] = status
    response = warroom.alertmanager(body)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code != 200:
        assert "\\u0000" in json.dumps(labels) or "surrogate" in response.text
