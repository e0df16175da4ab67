"""A warroom with automation on, the Slack emulator, and the example LLM service the playbooks act on."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.compose import compose
from bot.emulator import Emulator
from bot.runtime import Runtime
from bot.serving import ServerThread
from bot.slo.spec import SLO
from bot.store.db import transaction
from bot.store.models import ActionRun
from bot.web import create_app
from tests.conftest import ROOT
from tests.slack.conftest import SlackHarness, slack_settings
from tests.slack.test_actions import Service, llm_service  # noqa: F401  (the example service, as in the Slack tests)
from tests.support import free_port

AUTH = {"Authorization": "Bearer test-alert-token"}


@pytest.fixture
def runbooks_dir(tmp_path: Path) -> Path:
    """A copy of the shipped runbooks a test may add to."""
    target = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", target)
    return target


@pytest.fixture(scope="session")
def _emu() -> Iterator[Emulator]:
    from tests.conftest import SIGNING_SECRET
    emulator = Emulator(signing_secret=SIGNING_SECRET)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def start_warroom(database_url: str, _emu: Emulator, llm_service: Service,  # noqa: F811
                  runbooks_dir: Path) -> Iterator[Callable[..., SlackHarness]]:
    """Start warroom (automation on) with extra settings; the harness drives it like Slack and Alertmanager."""
    started: list[tuple[ServerThread, Runtime]] = []

    def start(slos: list[SLO] | None = None, **overrides: Any) -> SlackHarness:
        """``slos``: what the guard reads when no SLO file is set (`compose`'s ``slos``)."""
        _emu.reset()
        port = free_port()
        values = {"WARROOM_AUTOMATION": True, "WARROOM_PUBLIC_URL": f"http://127.0.0.1:{port}",
                  "WARROOM_RUNBOOKS_DIR": runbooks_dir, **overrides}
        warroom = compose(slack_settings(database_url, _emu, **values), slos=slos)
        runtime = warroom.runtime
        server = ServerThread(create_app(warroom), port=port).start()
        _emu.bot_url = server.url + "/slack/events"
        started.append((server, runtime))
        return SlackHarness(_emu, warroom, server.url)

    yield start
    for server, runtime in started:
        server.stop()
        runtime.engine.dispose()


def runs(harness: SlackHarness, incident_id: int) -> list[ActionRun]:
    with transaction(harness.runtime.engine) as session:
        found = list(session.execute(select(ActionRun).where(ActionRun.incident_id == incident_id)
                                     .order_by(ActionRun.id)).scalars())
        session.expunge_all()
        return found


def register_bundles(harness: SlackHarness, v42_minutes_ago: float = 17) -> None:
    from datetime import datetime, timedelta
    now = datetime.now(UTC)
    for version, good, deployed in (("v41", True, now - timedelta(days=2)),
                                    ("v42", False, now - timedelta(minutes=v42_minutes_ago))):
        components = {"prompt_version": f"answer-{version}", "model_route": "primary-70b"}
        response = harness.http.post("/api/bundles", headers=AUTH, json={
            "service": "llm-gateway", "version": version, "components": components,
            "deployed_at": deployed.isoformat(), "known_good": good})
        assert response.status_code in (200, 201), response.text
