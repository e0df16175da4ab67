from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playbook_harness import serve, wait_until
from unleash_server import Unleash, unleash_server

from bot.actions import HostAllowList, Playbook, parse_args, run_playbook, run_undo
from examples.llm_service import create_app
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import PRIYA, _emulator, slack  # noqa: F401  (the Slack fixtures, for this module)
from tests.slack.test_actions import run_card

pytestmark = pytest.mark.e2e
FLAG = "llm.tool.web_search"
FEATURE = f"/api/admin/projects/default/features/{FLAG}"


@pytest.fixture(scope="module")
def unleash() -> Iterator[Unleash]:
    with unleash_server() as server:
        yield server


def production_enabled(admin: httpx.Client) -> bool:
    envs = admin.get(FEATURE).json()["environments"]
    return next(e["enabled"] for e in envs if e["name"] == "production")


def test_kill_switch_playbook_turns_the_tool_off_in_the_service(unleash: Unleash,
                                                                playbooks: dict[str, Playbook]) -> None:
    with unleash.admin() as admin:
        created = admin.post("/api/admin/projects/default/features",
                             json={"name": FLAG, "type": "kill-switch", "description": "web_search tool"})
        assert created.status_code == 201, created.text
        admin.post(f"{FEATURE}/environments/production/strategies", json={
            "name": "flexibleRollout",
            "parameters": {"rollout": "100", "stickiness": "default", "groupId": FLAG}}).raise_for_status()
        admin.post(f"{FEATURE}/environments/production/on").raise_for_status()
        backend = admin.post("/api/admin/api-tokens", json={
            "tokenName": "llm-gateway", "type": "backend", "environment": "production", "projects": ["*"]})
        assert backend.status_code == 201, backend.text
        backend_token = backend.json()["secret"]

        app = create_app(control_token="ctl", unleash_url=unleash.url, unleash_token=backend_token)
        with serve(app) as service_url, httpx.Client(base_url=service_url,
                                                     headers={"Authorization": "Bearer ctl"}) as svc:
            def tools() -> dict[str, object]:
                return svc.get("/control/state").json()

            wait_until(lambda: tools()["source"] == "unleash" and tools()["tools"]["web_search"] is True,
                       what="the service to see the flag on")

            pb = playbooks["unleash-kill-switch"]
            kwargs = dict(incident={"id": 1}, secrets={"UNLEASH_TOKEN": unleash.admin_token},
                          allowed_hosts=HostAllowList([urlsplit(unleash.url).netloc]),
                          targets={"unleash": unleash.url})
            with httpx.Client() as client:
                run = run_playbook(pb, parse_args(pb, [FLAG]), client=client, **kwargs)
                assert run.status == "succeeded", run.error
                assert run.verify is not None and run.verify.ok
                assert unleash.admin_token not in run.model_dump_json()
                assert production_enabled(admin) is False
                wait_until(lambda: tools()["tools"]["web_search"] is False, timeout=15,
                           what="the service to see the kill switch")
                answer = svc.post("/v1/answer", json={"question": "What is the refund policy?"}).json()
                assert answer["tool_calls"] == []

                undo = run_undo(pb, run, client=client, **kwargs)
                assert undo.status == "succeeded", undo.error
                assert production_enabled(admin) is True
                wait_until(lambda: tools()["tools"]["web_search"] is True, timeout=15,
                           what="the service to see the tool back on")


# The same kill switch, asked for in Slack: command, confirmation card, Confirm, Unleash says off.


@pytest.fixture
def unleash_target(unleash: Unleash, monkeypatch: pytest.MonkeyPatch) -> Unleash:
    """warroom's settings for the Unleash target; ask for it before ``slack``, which reads them."""
    monkeypatch.setenv("WARROOM_TARGET_UNLEASH", unleash.url)
    monkeypatch.setenv("WARROOM_SECRET_UNLEASH_TOKEN", unleash.admin_token)
    return unleash


def test_kill_switch_from_slack_turns_the_flag_off_in_unleash(unleash_target: Unleash, slack) -> None:  # noqa: F811
    flag = f"llm.tool.code_exec-{secrets.token_hex(3)}"  # one Unleash serves the SQLite and PostgreSQL runs
    feature = f"/api/admin/projects/default/features/{flag}"
    with unleash_target.admin() as admin:
        admin.post("/api/admin/projects/default/features",
                   json={"name": flag, "type": "kill-switch"}).raise_for_status()
        admin.post(f"{feature}/environments/production/on").raise_for_status()

        def enabled() -> bool:
            return next(e["enabled"] for e in admin.get(feature).json()["environments"] if e["name"] == "production")

        incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
        channel = slack.room(incident_id)
        reply = slack.command(f"/incident run unleash-kill-switch {flag}", user=PRIYA, channel=channel)
        assert reply.status == 200 and reply.elapsed_s < 3
        card = run_card(slack, channel, 1)
        assert unleash_target.admin_token not in str(card.blocks)
        assert enabled()  # nothing happens before the confirmation

        slack.emu.click(channel, card.ts, "action.confirm", "1", user=PRIYA)
        wait_until(lambda: not enabled(), timeout=15, what="the flag off in Unleash")
        slack.settle(timeout=20)
        assert any("succeeded" in m.text and "(verified)" in m.text for m in slack.messages(channel))
