"""Silences against a real Alertmanager (the Debian package on loopback), from the API and from Slack."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.clock import utcnow
from bot.errors import ExternalError, NotFound, UserError
from bot.incidents import service
from bot.incidents.silences import create_silence, expire_silence, parse_duration, silence_incident
from bot.serving import free_port, stop_process, wait_until
from bot.store.db import make_engine, transaction
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import ALEX, INCIDENTS, PRIYA, SlackHarness, _emulator, slack  # noqa: F401  (fixtures)
from tests.support import wait_for

# Nothing is sent anywhere: silences only need the API, not a receiver that works.
ALERTMANAGER_CONFIG = 'route: {receiver: "null"}\nreceivers: [{name: "null"}]\n'
GROUP_LABELS = {"alertname": "LLMSLOErrorBudgetBurn", "sloth_service": "llm-gateway-hallucination",
                "sloth_severity": "page"}


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager with its own storage and no HA gossip; stopped by its own PID."""
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "prometheus-alertmanager is not on PATH (apt-get install prometheus-alertmanager)"
    workdir = tmp_path_factory.mktemp("alertmanager")
    (workdir / "alertmanager.yml").write_text(ALERTMANAGER_CONFIG, encoding="utf-8")
    url = f"http://127.0.0.1:{free_port()}"
    with (workdir / "alertmanager.log").open("wb") as log:
        proc = subprocess.Popen([binary, f"--config.file={workdir / 'alertmanager.yml'}",
                                 f"--storage.path={workdir / 'data'}", f"--web.listen-address={url[len('http://'):]}",
                                 f"--web.external-url={url}", "--cluster.listen-address="],
                                cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _ready(url, proc, workdir), timeout=30, what="Alertmanager /-/ready", interval=0.1)
        yield url
    finally:
        stop_process(proc, timeout=10)


def _ready(url: str, proc: subprocess.Popen[bytes], workdir: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"Alertmanager exited with {proc.returncode}:\n"
                             + (workdir / "alertmanager.log").read_text(errors="replace")[-2000:])
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def fetch_silence(alertmanager: str, silence_id: str) -> dict[str, Any]:
    response = httpx.get(f"{alertmanager}/api/v2/silence/{silence_id}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def matchers_of(silence: dict[str, Any]) -> dict[str, str]:
    assert all(m["isRegex"] is False and m.get("isEqual", True) is True for m in silence["matchers"])
    return {m["name"]: m["value"] for m in silence["matchers"]}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)  # Python 3.11 reads the "Z"


# -- durations -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("1h30m", timedelta(minutes=90)),
    (" 1D12H ", timedelta(hours=36)), ("7d", timedelta(days=7)), ("90m", timedelta(minutes=90)),
])
def test_parse_duration_reads_days_hours_and_minutes(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "says"), [
    ("0m", "longer than 0"), ("0h0m", "longer than 0"), ("-5m", "negative"), ("8d", "longer than 7 days"),
    ("169h", "longer than 7 days"), ("soon", "not a duration"), ("30", "not a duration"),
    ("30s", "not a duration"), ("1h1h", "not a duration"), ("30m1h", "not a duration"),
    ("1.5h", "not a duration"), ("", "how long"),
])
def test_parse_duration_refuses_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(UserError, match=says) as caught:
        parse_duration(text)
    assert "30m" in str(caught.value) or "7 days" in str(caught.value)  # every refusal shows what works


# -- the API, against a real Alertmanager -------------------------------------------------------------

def test_create_silence_posts_matchers_times_and_author(alertmanager: str, client: httpx.Client) -> None:
    now = utcnow()
    silence_id = create_silence(client, alertmanager, matchers={"alertname": "LLMSLOErrorBudgetBurn",
                                                                "sloth_slo": "hallucination-rate"},
                                duration=timedelta(minutes=30), created_by="warroom/U0PRIYA",
                                comment="warroom incident #7 (INC-20260314-0007)", incident_ref="INC-20260314-0007",
                                now=now)
    silence = fetch_silence(alertmanager, silence_id)
    assert silence["status"]["state"] == "active"
    assert matchers_of(silence) == {"alertname": "LLMSLOErrorBudgetBurn", "sloth_slo": "hallucination-rate"}
    assert silence["createdBy"] == "warroom/U0PRIYA"
    assert "INC-20260314-0007" in silence["comment"]
    assert abs(parse_time(silence["endsAt"]) - (now + timedelta(minutes=30))) < timedelta(seconds=1)


@pytest.mark.parametrize(("matchers", "created_by", "now_offset", "says"), [
    ({"alert name": "x"}, "warroom/U1", timedelta(), "invalid label name"),             # 400
    ({"alertname": ""}, "warroom/U1", timedelta(), "must not match the empty string"),  # 400
    ({"alertname": "x"}, "warroom/U1", -timedelta(hours=2), "past"),                    # 400
])
def test_a_silence_alertmanager_refuses_is_a_user_error_with_its_message(
        alertmanager: str, client: httpx.Client, matchers: dict[str, str], created_by: str,
        now_offset: timedelta, says: str) -> None:
    with pytest.raises(UserError, match=says) as caught:
        create_silence(client, alertmanager, matchers=matchers, duration=timedelta(minutes=30), created_by=created_by,
                       comment="test", incident_ref="INC-1", now=utcnow() + now_offset)
    assert str(caught.value).startswith("Alertmanager refused the silence: ")


def test_no_matchers_are_refused_before_calling_alertmanager(client: httpx.Client) -> None:
    with pytest.raises(UserError, match="no alert labels"):
        create_silence(client, "http://127.0.0.1:9", matchers={}, duration=timedelta(minutes=5), created_by="x",
                       comment="x", incident_ref="INC-1", now=utcnow())


def test_expire_silence_ends_it_and_an_unknown_id_is_not_found(alertmanager: str, client: httpx.Client) -> None:
    silence_id = create_silence(client, alertmanager, matchers={"alertname": "Expiring"}, duration=timedelta(hours=1),
                                created_by="warroom/U1", comment="test", incident_ref="INC-1", now=utcnow())
    expire_silence(client, alertmanager, silence_id)
    assert fetch_silence(alertmanager, silence_id)["status"]["state"] == "expired"
    expire_silence(client, alertmanager, silence_id)  # again: already over, nothing to do
    with pytest.raises(NotFound, match="no silence"):
        expire_silence(client, alertmanager, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(UserError, match="must be of type uuid"):  # go-swagger's 422
        expire_silence(client, alertmanager, "not-a-silence")


def test_an_unreachable_alertmanager_is_an_external_error(client: httpx.Client) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ExternalError, match="did not answer"):
        create_silence(client, closed, matchers={"alertname": "x"}, duration=timedelta(minutes=5), created_by="x",
                       comment="x", incident_ref="INC-1", now=utcnow())


def test_a_declared_incident_has_nothing_to_silence(database_url: str, alertmanager: str,
                                                    client: httpx.Client) -> None:
    engine = make_engine(database_url)
    try:
        with transaction(engine) as session:
            incident_id = service.declare(session, title="checkout is slow", severity=3, actor=PRIYA).id
        with pytest.raises(UserError, match="did not come from an alert"):
            silence_incident(engine, client, alertmanager, incident_id, duration=timedelta(minutes=30), actor=PRIYA)
    finally:
        engine.dispose()


# -- /incident silence, through Slack ----------------------------------------------------------------

@pytest.fixture
def alertmanager_env(alertmanager: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Must come before ``slack`` in a test's arguments: the app reads it when it starts."""
    monkeypatch.setenv("WARROOM_ALERTMANAGER_URL", alertmanager)
    return alertmanager


def answer(slack: SlackHarness, line: str, *, channel: str, user: str = PRIYA) -> str:  # noqa: F811
    """What ``user`` is told, whether it came in the ack or later through response_url."""
    before = len(slack.said_to(user))
    slack.command(line, user=user, channel=channel)
    return wait_for(lambda: next((t for t in slack.said_to(user)[before:] if t and not t.startswith("⏳")), None),
                    timeout=10, what=f"the answer to {line!r}")


def silenced_events(slack: SlackHarness, incident_id: int) -> list[dict[str, Any]]:  # noqa: F811
    return [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "silenced"]


def test_silence_command_silences_the_alert_group_and_records_it(alertmanager_env: str, slack) -> None:  # noqa: F811
    incident_id = slack.fire(am_payload([am_alert("primary-70b"), am_alert("backup-8b")]))
    channel = slack.room(incident_id)
    text = answer(slack, "/incident silence 30m", channel=channel)
    assert text.startswith("🔕 Silenced") and " UTC" in text

    [event] = silenced_events(slack, incident_id)
    silence_id = event["data"]["silence_id"]
    assert f"`{silence_id}`" in text and event["actor"] == PRIYA
    silence = fetch_silence(alertmanager_env, silence_id)
    assert silence["status"]["state"] == "active"
    assert matchers_of(silence) == GROUP_LABELS  # the group, so both models' alerts are muted
    assert silence["createdBy"] == f"warroom/{PRIYA}"
    assert f"#{incident_id}" in silence["comment"] and "INC-" in silence["comment"]
    ends = parse_time(silence["endsAt"])
    assert abs(ends - parse_time(event["data"]["ends_at"])) < timedelta(seconds=1)
    assert f"{ends:%Y-%m-%d %H:%M} UTC" in text
    slack.settle()
    assert any("silenced the alert group" in m.text and silence_id in m.text for m in slack.messages(channel))


def test_silence_uses_the_alert_labels_when_the_group_has_none(alertmanager_env: str, slack) -> None:  # noqa: F811
    payload = am_payload([am_alert("primary-70b")])
    payload["groupLabels"], payload["groupKey"] = {}, "{}:{}"  # Alertmanager without group_by
    incident_id = slack.fire(payload)
    channel = slack.room(incident_id)
    answer(slack, "/incident silence 2h", channel=channel)
    [event] = silenced_events(slack, incident_id)
    silence = fetch_silence(alertmanager_env, event["data"]["silence_id"])
    assert matchers_of(silence) == {"alertname": "LLMSLOErrorBudgetBurn", "service": "llm-gateway",
                                    "slo": "hallucination-rate"}
    assert parse_time(silence["endsAt"]) - parse_time(silence["startsAt"]) > timedelta(hours=1, minutes=59)


def test_silence_refuses_bad_durations_and_outsiders(alertmanager_env: str, slack) -> None:  # noqa: F811
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    assert "longer than 7 days" in answer(slack, "/incident silence 8d", channel=channel)
    assert "not a duration" in answer(slack, "/incident silence forever", channel=channel)
    assert "Usage: `/incident silence &lt;duration&gt;`" in answer(slack, "/incident silence", channel=channel)
    outsider = answer(slack, f"/incident silence #{incident_id} 30m", channel=INCIDENTS, user=ALEX)
    assert "Only people in the incident channel" in outsider
    assert silenced_events(slack, incident_id) == []


def test_silence_without_alertmanager_url_says_to_set_it(slack) -> None:  # noqa: F811
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    assert "set WARROOM_ALERTMANAGER_URL" in answer(slack, "/incident silence 30m", channel=channel)
    assert silenced_events(slack, incident_id) == []
