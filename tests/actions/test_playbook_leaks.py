"""A control plane that echoes credentials: nothing of them reaches the run result or its events."""

from __future__ import annotations

import json

import httpx
import pytest

from bot.actions import HostAllowList, RunEvent, run_playbook

CONTROL_TOKEN = "cp-9f3Kq7ZxW2mB8vLt4RnY6hJd"
PASTED = "ghp_" + "Zq8vK2mN4bX7cR1tY5uW9eA3sD6fG0hJ2kL4"

PLAYBOOK = """
name: echo
target: control
steps:
  - name: switch
    method: PUT
    url: "{{ target }}/switch"
    headers: {Authorization: "Bearer {{ secrets.CONTROL_TOKEN }}"}
    json: {route: safe}
"""


def run_against(playbook_from, body: str, status: int = 401, content_type: str = "application/json") -> str:
    """Run the playbook against a control plane answering ``body``; everything the run shows, as text."""
    client = httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(status, text=body, headers={"content-type": content_type})))
    events: list[RunEvent] = []
    result = run_playbook(playbook_from(PLAYBOOK), {}, incident={"id": 1}, secrets={"CONTROL_TOKEN": CONTROL_TOKEN},
                          allowed_hosts=HostAllowList(["control.internal"]), client=client,
                          targets={"control": "http://control.internal"}, on_event=events.append)
    assert result.status == "failed"
    return result.model_dump_json() + "".join(event.model_dump_json() for event in events)


def test_a_token_the_control_plane_echoes_is_masked_in_the_error(playbook_from) -> None:
    shown = run_against(playbook_from, json.dumps({"error": f"token {CONTROL_TOKEN} is revoked"}))
    assert "HTTP 401" in shown and "••••" in shown
    assert CONTROL_TOKEN not in shown


def test_half_a_token_echoed_is_masked_too(playbook_from) -> None:
    half = CONTROL_TOKEN[len(CONTROL_TOKEN) // 2:]
    shown = run_against(playbook_from, json.dumps({"error": f"unknown token …{half}"}))
    assert half not in shown and half[:12] not in shown


def test_a_snippet_cut_in_the_middle_of_the_token_shows_no_prefix_of_it(playbook_from) -> None:
    # The body is cut at 200 characters, right inside the token.
    body = "x" * 190 + " " + CONTROL_TOKEN + " tail"
    shown = run_against(playbook_from, body, content_type="text/plain")
    assert CONTROL_TOKEN[:9] not in shown


@pytest.mark.parametrize("body", [
    json.dumps({"error": "bad scope", "debug": {"github_token": PASTED}}),
    "x" * 185 + " " + PASTED,  # cut inside the pasted token
])
def test_a_third_party_credential_in_a_response_is_masked(playbook_from, body: str) -> None:
    shown = run_against(playbook_from, body, content_type="text/plain")
    assert "HTTP 401" in shown and PASTED[:10] not in shown and PASTED[-12:] not in shown
