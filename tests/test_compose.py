"""The composition root: two warrooms built in one process share nothing (issue 17, part 3)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from bot.compose import Warroom, compose
from bot.web import create_app
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import ROOT, make_settings
from tests.conftest import Warroom as Client
from tests.support import ServerThread

ORDER_ID = "ACME-123456"  # a site's own identifier: only the warroom told so redacts it


@pytest.fixture
def two(database_url: str, tmp_path: Path) -> Iterator[tuple[Warroom, Warroom]]:
    """Two warrooms on one database with different settings: A redacts ACME order ids and has every
    runbook; B redacts nothing of the site's and has only the default runbook."""
    only_default = tmp_path / "runbooks"
    only_default.mkdir()
    shutil.copy(ROOT / "runbooks" / "default.md", only_default / "default.md")
    a = compose(make_settings(database_url, WARROOM_REDACT_PATTERNS='["ACME-\\\\d{6}"]'))
    b = compose(make_settings(database_url, WARROOM_RUNBOOKS_DIR=only_default))
    yield a, b
    for warroom in (a, b):
        warroom.engine.dispose()


def test_each_warroom_has_its_own_parts(two: tuple[Warroom, Warroom]) -> None:
    a, b = two
    assert a.runbooks.get("hallucination-spike") is not None
    assert b.runbooks.get("hallucination-spike") is None and b.runbooks.ids == ["default"]
    assert a.redactor.redact_credentials(ORDER_ID) != ORDER_ID
    assert b.redactor.redact_credentials(ORDER_ID) == ORDER_ID
    # The Slack side (Bolt app, its listeners and command table), the worker and its handlers
    # belong to one warroom each.
    assert a.slack.app is not b.slack.app
    assert not {id(listener) for listener in a.slack.app._listeners} & {
        id(listener) for listener in b.slack.app._listeners
    }
    assert a.worker is not b.worker and a.worker.handlers is not b.worker.handlers
    assert a.actions is not b.actions and a.automation is not b.automation
    assert a.runtime.wake is not b.runtime.wake


def test_each_served_app_shows_the_same_incident_with_its_own_redaction(two: tuple[Warroom, Warroom]) -> None:
    """Built in one process, served side by side: what B was built with never reaches A, nor the reverse."""
    a, b = two
    with ExitStack() as stack:
        servers = [ServerThread(create_app(warroom)).start() for warroom in (a, b)]
        for server in servers:
            stack.callback(server.stop)
        client_a, client_b = Client(a, servers[0].url), Client(b, servers[1].url)
        alert = am_alert(annotations={"summary": f"Refunds fail for order {ORDER_ID}"})
        incident_id = client_b.alertmanager(am_payload([alert])).json()["incident_id"]

        seen_by_a, seen_by_b = str(client_a.incident(incident_id)), str(client_b.incident(incident_id))
        assert ORDER_ID not in seen_by_a and "[redacted]" in seen_by_a
        assert ORDER_ID in seen_by_b
