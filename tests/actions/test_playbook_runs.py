from __future__ import annotations

import httpx
from playbook_harness import CONTROL_TOKEN, Gateway

from bot.actions import Playbook, RunEvent, parse_args, validate_params
from bot.actions.playbook import Verify


def ask_refund(gateway: Gateway) -> str:
    return httpx.post(f"{gateway.url}/v1/answer", json={"question": "What is the refund policy?"}).json()["output"]


def test_fallback_switches_the_route_and_verifies_it(gateway: Gateway, playbooks: dict[str, Playbook]) -> None:
    gateway.state.set_bundle("v42")
    events: list[RunEvent] = []
    pb = playbooks["fallback"]
    result = gateway.run(pb, validate_params(pb, {}), on_event=events.append)
    assert result.status == "succeeded", result.error
    assert gateway.state.snapshot()["route"] == "safe-fallback-8b"
    assert result.verify is not None and result.verify.ok
    assert result.verify.last_observation == "route is 'safe-fallback-8b'"
    assert result.saved == {"previous_route": "primary-70b"}
    assert [s.name for s in result.steps] == ["read current route", "switch route"]
    assert all(s.ok and s.status_code == 200 for s in result.steps)
    assert ask_refund(gateway) == "Refunds are available within 30 days."
    assert [e.kind for e in events][-1] == "finished" and events[-1].ok


def test_undo_restores_the_previous_route(gateway: Gateway, playbooks: dict[str, Playbook]) -> None:
    pb = playbooks["fallback"]
    run = gateway.run(pb, validate_params(pb, {}))
    assert gateway.state.snapshot()["route"] == "safe-fallback-8b"
    undo = gateway.undo(pb, run)
    assert undo.status == "succeeded" and undo.kind == "undo", undo.error
    assert gateway.state.snapshot()["route"] == "primary-70b"


def test_verify_that_never_holds_fails_with_the_last_observation(gateway: Gateway,
                                                                 playbooks: dict[str, Playbook]) -> None:
    pb = playbooks["fallback"]
    never = Verify(url="{{ target }}/control/state", headers=pb.verify.headers,
                   expect={"json": {"route": "gpt-9"}}, interval=0.1, timeout=0.5)
    result = gateway.run(pb.model_copy(update={"verify": never}), validate_params(pb, {}))
    assert result.status == "failed"
    assert result.error == "verify timed out after 0.5s: route is 'safe-fallback-8b', expected 'gpt-9'"
    assert result.verify is not None and not result.verify.ok and result.verify.attempts >= 2


def test_failing_step_stops_the_run_and_says_why(gateway: Gateway, playbooks: dict[str, Playbook]) -> None:
    pb = playbooks["fallback"]
    result = gateway.run(pb, {"route": "gpt-9"})
    assert result.status == "failed"
    assert result.error.startswith("step 'switch route' failed: HTTP 422 (expected 200): ")
    assert "unknown route" in result.error and result.verify is None
    assert gateway.state.snapshot()["route"] == "primary-70b"


def test_wrong_control_token_fails_without_leaking_it(gateway: Gateway, playbooks: dict[str, Playbook]) -> None:
    pb = playbooks["fallback"]
    result = gateway.run(pb, validate_params(pb, {}), secrets={"CONTROL_TOKEN": "not-the-token-999"})
    assert result.status == "failed" and "HTTP 401" in result.error
    assert "not-the-token-999" not in result.model_dump_json()


def test_disable_tool_from_slash_args_stops_the_hallucination(gateway: Gateway, playbooks: dict[str, Playbook]) -> None:
    gateway.state.set_bundle("v42")
    assert ask_refund(gateway).startswith("Refunds are available within 90 days")
    pb = playbooks["disable-tool"]
    result = gateway.run(pb, parse_args(pb, ["web_search"], labels={}))
    assert result.status == "succeeded", result.error
    assert ask_refund(gateway) == "Refunds are available within 30 days."
    enable = playbooks["enable-tool"]
    assert gateway.run(enable, parse_args(enable, [], labels={"tool": "web_search"})).status == "succeeded"
    assert gateway.state.snapshot()["tools"]["web_search"] is True


def test_rollback_deploys_the_bundle_and_undo_returns_to_the_previous(gateway: Gateway,
                                                                      playbooks: dict[str, Playbook]) -> None:
    gateway.state.set_bundle("v42")
    pb = playbooks["rollback"]
    assert pb.approval == "second-person" and pb.confirm and pb.destructive
    run = gateway.run(pb, parse_args(pb, ["v41"]))
    assert run.status == "succeeded" and gateway.state.snapshot()["bundle"] == "v41"
    assert gateway.undo(pb, run).status == "succeeded"
    assert gateway.state.snapshot()["bundle"] == "v42"


def test_dry_run_sends_nothing_and_masks_secrets(gateway: Gateway, playbooks: dict[str, Playbook]) -> None:
    pb = playbooks["fallback"]
    result = gateway.run(pb, validate_params(pb, {}), dry_run=True)
    assert result.status == "dry_run" and gateway.sent == []
    assert gateway.state.snapshot()["route"] == "primary-70b"
    switch = result.steps[1].request_preview_masked
    assert switch == {"method": "PUT", "url": f"{gateway.url}/control/route",
                      "headers": {"Authorization": "Bearer ••••"}, "json": {"route": "safe-fallback-8b"}}
    assert CONTROL_TOKEN not in result.model_dump_json()
    undo = gateway.undo(pb, gateway.run(pb, validate_params(pb, {})), dry_run=True)
    assert undo.steps[0].request_preview_masked["json"] == {"route": "primary-70b"}
    assert gateway.state.snapshot()["route"] == "safe-fallback-8b"


def test_secrets_never_reach_results_errors_or_events(gateway: Gateway, playbook_from) -> None:
    pb = playbook_from("""
name: leaky
target: llm-gateway
steps:
  - name: token in the query
    method: GET
    url: "{{ target }}/nowhere?token={{ secrets.CONTROL_TOKEN }}"
    headers: {Authorization: "Bearer {{ secrets.CONTROL_TOKEN }}"}
""")
    events: list[RunEvent] = []
    result = gateway.run(pb, {}, on_event=events.append)
    assert result.status == "failed" and "HTTP 404" in result.error
    assert result.steps[0].url_masked.endswith("/nowhere?token=••••")
    assert len(gateway.sent) == 1 and CONTROL_TOKEN in str(gateway.sent[0].url)  # the real request had it
    shown = result.model_dump_json() + "".join(e.model_dump_json() for e in events)
    assert CONTROL_TOKEN not in shown


def test_missing_secret_names_the_variable_to_set(gateway: Gateway, playbooks: dict[str, Playbook]) -> None:
    result = gateway.run(playbooks["fallback"], {"route": "safe-fallback-8b"}, secrets={})
    assert result.status == "failed" and gateway.sent == []
    assert "secret 'CONTROL_TOKEN' is not set (set WARROOM_SECRET_CONTROL_TOKEN)" in result.error


def test_target_can_be_pointed_elsewhere_but_the_allow_list_still_applies(gateway: Gateway,
                                                                          playbooks: dict[str, Playbook]) -> None:
    result = gateway.run(playbooks["fallback"], {"route": "safe-fallback-8b"},
                         targets={"llm-gateway": "http://router.internal.example:8443"})
    assert result.status == "failed" and gateway.sent == []
    assert "host router.internal.example:8443 is not in the action allow-list" in result.error
