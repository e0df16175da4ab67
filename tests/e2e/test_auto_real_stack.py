"""Automatic first response with real parts: a bad release pages, warroom's automatic fallback is
verified, the guard reads Prometheus and says it worked, the burn stops, Alertmanager resolves.
And the run where the fallback does not help: the guard says so and warroom undoes it.

Real: the example LLM service under steady traffic, Prometheus running the rules ``warroom slo
rules`` generates (windows scaled as in test_real_stack), Alertmanager posting to warroom, warroom
on PostgreSQL with automation on and ``WARROOM_PROMETHEUS_URL`` set, and the Slack emulator.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.compose import compose
from bot.emulator import Emulator
from bot.serving import ServerThread, free_port
from bot.slo.rules import prometheus_rules
from bot.slo.spec import load_slos
from bot.slo.windows import WindowSet
from bot.web import create_app
from tests.conftest import ALERT_TOKEN, ROOT
from tests.e2e.promstack import PromStack, wait_until
from tests.e2e.test_real_stack import SCALED, LLMGateway, llm_gateway, page_incident  # noqa: F401  (a fixture)
from tests.slack.conftest import SlackHarness, _emulator, slack_settings  # noqa: F401  (_emulator: a fixture)

AUTO = "warroom (auto)"


@pytest.fixture
def auto_stack(llm_gateway: LLMGateway, database_url: str, _emulator: Emulator, tmp_path: Path,  # noqa: F811
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., tuple[PromStack, SlackHarness]]]:
    opened: list[Any] = []

    def start(runbooks: Path = ROOT / "runbooks") -> tuple[PromStack, SlackHarness]:
        warroom_port = free_port()
        slos = load_slos(ROOT / "examples" / "slos.yaml")
        rules = prometheus_rules(slos, windows=WindowSet.from_overrides(SCALED))
        prom = PromStack(tmp_path, [llm_gateway.target], rules,
                         f"http://127.0.0.1:{warroom_port}/webhooks/alertmanager", ALERT_TOKEN).__enter__()
        opened.append(prom)
        _emulator.reset()
        warroom = compose(slack_settings(
            database_url, _emulator, WARROOM_AUTOMATION=True, WARROOM_RUNBOOKS_DIR=runbooks,
            WARROOM_PROMETHEUS_URL=prom.prometheus_url, WARROOM_GUARD_SECONDS=45, WARROOM_GUARD_CHECK_SECONDS=2,
            WARROOM_ALERTMANAGER_URL=prom.alertmanager_url), slos=slos)
        server = ServerThread(create_app(warroom), port=warroom_port).start()
        _emulator.bot_url = server.url + "/slack/events"
        opened.append(server)
        return prom, SlackHarness(_emulator, warroom, server.url)

    yield start
    for thing in reversed(opened):
        if isinstance(thing, PromStack):
            thing.__exit__(None, None, None)
        else:
            thing.stop()


def kinds(slack: SlackHarness, incident_id: int) -> list[str]:
    return [e["kind"] for e in slack.incident(incident_id)["timeline"]]


def event(slack: SlackHarness, incident_id: int, kind: str) -> dict[str, Any] | None:
    return next((e for e in slack.incident(incident_id)["timeline"] if e["kind"] == kind), None)


@pytest.mark.e2e
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_bad_release_is_fallen_back_automatically_the_guard_confirms_and_alertmanager_resolves(
        llm_gateway: LLMGateway, auto_stack) -> None:  # noqa: F811
    _prom, slack = auto_stack()
    llm_gateway.ship("v42")
    incident = wait_until(lambda: page_incident(slack), timeout=90, what="warroom to open the page incident")
    wait_until(lambda: llm_gateway.state()["route"] == "safe-fallback-8b", timeout=30,
               what="the automatic fallback")
    requested = wait_until(lambda: event(slack, incident["id"], "action_requested"), timeout=10, what="the request")
    assert requested["actor"] == AUTO
    improved = wait_until(lambda: event(slack, incident["id"], "guard_improved"), timeout=60, what="the guard")
    assert "hallucination-rate error ratio" in improved["text"] and "from prometheus" in improved["text"]

    def resolved() -> dict[str, Any] | None:
        current = slack.incident(incident["id"])
        return current if current["status"] == "resolved" else None

    story = wait_until(resolved, timeout=120, what="Alertmanager's resolved notification")
    order = [e["kind"] for e in story["timeline"]]
    for earlier, later in (("alert_fired", "action_requested"), ("action_requested", "action_succeeded"),
                           ("action_succeeded", "guard_started"), ("guard_started", "guard_improved"),
                           ("guard_improved", "mitigated"), ("mitigated", "alert_resolved"),
                           ("alert_resolved", "resolved")):
        assert order.index(earlier) < order.index(later), (earlier, later, order)
    assert llm_gateway.state()["bundle"] == "v42"  # the fallback alone stopped the burn; nobody rolled back


@pytest.mark.e2e
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_fallback_that_does_not_help_is_reported_and_undone(
        llm_gateway: LLMGateway, auto_stack, tmp_path: Path) -> None:  # noqa: F811
    # A runbook whose automatic "fallback" names the route that is failing: it cannot help.
    runbooks = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", runbooks)
    path = runbooks / "hallucination-spike.md"
    path.write_text(path.read_text().replace("  - run: fallback\n",
                                             "  - run: fallback\n    params: {route: primary-70b}\n", 1))
    _prom, slack = auto_stack(runbooks)
    llm_gateway.ship("v42")
    incident = wait_until(lambda: page_incident(slack), timeout=90, what="warroom to open the page incident")
    verdict = wait_until(lambda: event(slack, incident["id"], "guard_not_improved"), timeout=120,
                         what="the guard's verdict")
    assert "from prometheus" in verdict["text"]
    undo = wait_until(lambda: event(slack, incident["id"], "auto_undo"), timeout=10, what="the automatic undo")
    assert undo["actor"] == AUTO
    wait_until(lambda: kinds(slack, incident["id"]).count("action_succeeded") == 2, timeout=30,
               what="the undo to be verified")
    assert slack.incident(incident["id"])["status"] != "mitigated"
    slack.settle(timeout=30)
    channel = slack.incident(incident["id"])["channel_id"]
    assert any("Paging the owners again" in m.text for m in slack.messages(channel))
