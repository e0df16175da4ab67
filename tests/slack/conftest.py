"""The `slack` fixture: the emulator on a free port, warroom against it, both over real HTTP.

A test reads like the story: ``slack.fire(payload)``, ``channel = slack.room(incident)``,
``reply = slack.command("/incident ack", user=PRIYA)``, then assertions on the emulator's
recorded calls and state and on the bot's API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.compose import Warroom as ComposedWarroom
from bot.compose import compose
from bot.config import Settings
from bot.emulator import Emulator
from bot.runtime import Runtime
from bot.store.db import transaction
from bot.store.models import IncidentStep
from bot.web import create_app
from tests.conftest import ALERT_TOKEN, READER, SIGNING_SECRET, make_settings
from tests.support import ServerThread, free_port, wait_for

PRIYA, SAM, ALEX = "U0PRIYA", "U0SAM", "U0ALEX"
INCIDENTS = "C0INCIDENTS"


class SlackHarness:
    def __init__(self, emu: Emulator, warroom: ComposedWarroom, url: str) -> None:
        self.emu, self.warroom, self.url = emu, warroom, url
        self.http = httpx.Client(base_url=url, timeout=15)

    @property
    def runtime(self) -> Runtime:
        return self.warroom.runtime

    # Alertmanager's side
    def fire(self, body: dict[str, Any]) -> int:
        response = self.http.post("/webhooks/alertmanager", json=body,
                                  headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
        assert response.status_code == 200, response.text
        return response.json()["incident_id"]

    def incident(self, incident_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/incidents/{incident_id}", headers=READER)
        assert response.status_code == 200, response.text
        return response.json()

    def steps_done(self, incident_id: int) -> set[str]:
        with transaction(self.runtime.engine) as session:
            rows = session.execute(select(IncidentStep).where(IncidentStep.incident_id == incident_id)).scalars()
            return {r.name for r in rows if r.done_at is not None}

    def room(self, incident_id: int, timeout: float = 10) -> str:
        """Wait until the incident room is fully set up; its channel id."""
        wait_for(lambda: "announce" in self.steps_done(incident_id), timeout=timeout, what="the incident room")
        return self.incident(incident_id)["channel_id"]

    def settle(self, timeout: float = 10) -> None:
        """Wait until every queued Slack effect that is due has been performed (rows queued for
        later, such as the next failing-traces post, are not waited for)."""
        from bot.store import outbox
        def idle() -> bool:
            with transaction(self.runtime.engine) as session:
                return outbox.due_count(session) == 0
        wait_for(idle, timeout=timeout, what="the outbox to drain")

    # Slack's side
    def command(self, line: str, *, user: str = PRIYA, channel: str = INCIDENTS):
        return self.emu.command(line, user=user, channel=channel)

    def resolve(self, channel: str, summary: str = "", *, user: str = PRIYA) -> str:
        """``/incident resolve``, pressing "Resolve anyway" when alerts still fire; the answer's text."""
        reply = self.command(f"/incident resolve {summary}".strip(), user=user, channel=channel)
        prompt = next((m for m in reversed(self.emu.messages(channel, viewer=user)) if m.ephemeral_to == user and
                       m.blocks and "incident.resolve_anyway" in str(m.blocks)), None)
        if prompt is None or "still firing" not in reply_text(reply):
            return reply_text(reply)
        self.emu.click(channel, prompt.ts, "incident.resolve_anyway", None, user=user)
        return wait_for(lambda: next((t for t in self.said_to(user) if t.startswith("Resolved")), None),
                        what="the incident to resolve")

    def said_to(self, user: str) -> list[str]:
        """Every ephemeral answer ``user`` got: acks with text and response_url replies."""
        return [str(r.body.get("text", "")) for r in self.emu.responses if r.user == user]

    def messages(self, channel: str) -> list[Any]:
        return self.emu.messages(channel)

    def card(self, channel: str) -> Any:
        return next(m for m in self.messages(channel) if m.blocks and any(
            b.get("block_id", "").startswith("card:") for b in m.blocks))


def reply_text(reply: Any) -> str:
    body = reply.json
    if isinstance(body, dict):
        return body.get("text", "")
    return reply.body


@pytest.fixture(scope="session")
def _emulator() -> Iterator[Emulator]:
    emulator = Emulator(signing_secret=SIGNING_SECRET)
    emulator.start()
    yield emulator
    emulator.stop()


def slack_settings(database_url: str, emu: Emulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"SLACK_API_URL": emu.api_url, "SLACK_BOT_TOKEN": emu.token, "WARROOM_WORKER": True,
                              "WARROOM_INCIDENTS_CHANNEL": INCIDENTS}
    values.update(overrides)
    return make_settings(database_url, **values)


@contextmanager
def running(database_url: str, emu: Emulator, *, port: int | None = None, slos: Any = None,
            **overrides: Any) -> Iterator[SlackHarness]:
    """warroom against a freshly reset emulator, with these settings changed (``port``: where it
    listens, when something started before it must know; ``slos``: instead of the SLO file's)."""
    emu.reset()
    port = port or free_port()  # known before the settings, so links the bot gives (sign-in, postmortem) point here
    overrides.setdefault("WARROOM_PUBLIC_URL", f"http://127.0.0.1:{port}")
    warroom = compose(slack_settings(database_url, emu, **overrides), slos=slos)
    server = ServerThread(create_app(warroom), port=port).start()
    emu.bot_url = server.url + "/slack/events"
    try:
        yield SlackHarness(emu, warroom, server.url)
    finally:  # also when the test fails: no server or pool is left behind for the next one
        server.stop()
        warroom.runtime.engine.dispose()


@pytest.fixture
def slack(database_url: str, _emulator: Emulator) -> Iterator[SlackHarness]:
    with running(database_url, _emulator) as harness:
        yield harness


@pytest.fixture
def slack_dated_names(database_url: str, _emulator: Emulator) -> Iterator[SlackHarness]:
    """The `slack` harness with a channel template that leaves the incident number out, as a
    team's own template may: incidents of one alert kind then ask for the same name."""
    with running(database_url, _emulator, WARROOM_CHANNEL_TEMPLATE="inc-{date}-{slug}") as harness:
        yield harness


@pytest.fixture
def opened(slack: SlackHarness) -> tuple[int, str]:
    """An incident opened by one firing alert, and its room's channel."""
    from tests.alerts.payloads import am_alert, am_payload

    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    return incident_id, slack.room(incident_id)
