from __future__ import annotations

import pytest
from playbook_harness import CONTROL_TOKEN, Gateway

from bot.actions import HostAllowList, HostRefused, ParamError, Playbook, parse_args, validate_params


def test_rendered_url_to_cloud_metadata_is_refused_before_sending(gateway: Gateway, playbook_from) -> None:
    pb = playbook_from("""
name: metadata
params:
  host: {type: string, default: 169.254.169.254}
steps:
  - name: steal credentials
    url: "http://{{ params.host }}/latest/meta-data/iam/security-credentials/"
""")
    result = gateway.run(pb, validate_params(pb, {}))
    assert result.status == "failed" and gateway.sent == []
    assert result.error == ("step 'steal credentials' failed: host 169.254.169.254:80 is not in the action "
                            "allow-list (WARROOM_ACTION_HOSTS)")


@pytest.mark.parametrize("url, refused", [
    ("http://169.254.169.254/latest", "host 169.254.169.254:80 is not in the action allow-list"),
    ("http://gateway.internal:9201@169.254.169.254/", "user info in URLs (user@host) is not allowed"),
    ("http://evil.example/x", "host evil.example:80 is not in the action allow-list"),
    ("http://gateway.internal:9999/x", "host gateway.internal:9999 is not in the action allow-list"),
    ("file:///etc/passwd", "only http and https are allowed"),
    ("http://gateway.internal:9201\\@evil.example/", "backslashes"),
    ("http://127.1:9201/", "host 127.1:9201 is not in the action allow-list"),
    ("http://[::1]:9201/", "host [::1]:9201 is not in the action allow-list"),
])
def test_allow_list_refuses_hosts_it_does_not_name(url: str, refused: str) -> None:
    hosts = HostAllowList(["gateway.internal:9201", "*.corp.example", "unleash.internal"])
    with pytest.raises(HostRefused) as caught:
        hosts.check(url)
    assert refused in str(caught.value)


@pytest.mark.parametrize("url", [
    "http://gateway.internal:9201/control/route",
    "https://router.corp.example/x",
    "http://unleash.internal:4242/api",
    "https://unleash.internal/api",
])
def test_allow_list_admits_listed_hosts(url: str) -> None:
    HostAllowList(["gateway.internal:9201", "*.corp.example", "unleash.internal"]).check(url)


def test_allow_list_from_env_or_targets() -> None:
    from_env = HostAllowList.from_env({"WARROOM_ACTION_HOSTS": "a.example:1, *.b.example"})
    assert from_env.allows("x.b.example", 443) and not from_env.allows("b.example", 443)
    from_targets = HostAllowList.from_env({}, targets={"llm-gateway": "http://127.0.0.1:9201"})
    assert from_targets.allows("127.0.0.1", 9201) and not from_targets.allows("127.0.0.1", 22)


@pytest.mark.parametrize("value, complaint", [
    ("{{7*7}}", "must not contain template syntax"),
    ("{% raw %}", "must not contain template syntax"),
    ("../../admin", "must not contain '..'"),
    ("web_search\nX-Injected: 1", "must not contain newlines or control characters"),
    ("web_search?enabled=true", "must not contain '?'"),
    ("web-search", "'web-search' does not match the pattern ^[a-z][a-z0-9_]{0,40}$"),
])
def test_disable_tool_refuses_injection_and_names_the_param(playbooks: dict[str, Playbook], value: str,
                                                            complaint: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_args(playbooks["disable-tool"], [value])
    assert caught.value.param == "tool"
    assert str(caught.value).startswith("tool: ") and complaint in str(caught.value)


def test_url_shaping_characters_are_refused_even_without_a_pattern(playbook_from) -> None:
    pb = playbook_from("""
name: free-text
params:
  name: {type: string}
steps:
  - name: go
    url: "http://gateway.internal/{{ params.name }}"
""")
    for value, shaper in (("../etc", ".."), ("a/b", "/"), ("a?x=1", "?"), ("a#frag", "#"), ("me@evil", "@")):
        with pytest.raises(ParamError, match=f"name: must not contain '{shaper}'"):
            validate_params(pb, {"name": value})
    assert validate_params(pb, {"name": "plain-value_1"}) == {"name": "plain-value_1"}


def test_params_are_typed_and_unknown_ones_refused(playbooks: dict[str, Playbook], playbook_from) -> None:
    with pytest.raises(ParamError, match="bundle: 'v41; rm -rf' does not match the pattern"):
        parse_args(playbooks["rollback"], ["v41; rm -rf"])
    with pytest.raises(ParamError, match=r"bundle: is required"):
        parse_args(playbooks["rollback"], [])
    with pytest.raises(ParamError, match="rollback has no param 'force'"):
        validate_params(playbooks["rollback"], {"bundle": "v41", "force": "yes"})
    with pytest.raises(ParamError, match="unexpected extra argument"):
        parse_args(playbooks["rollback"], ["v41", "v40"])
    pb = playbook_from("""
name: typed
params:
  count: {type: int, default: 3}
  force: {type: bool, default: false}
  mode: {type: enum, choices: [fast, safe], default: safe}
steps: [{name: go, url: "http://x.example/"}]
""")
    assert parse_args(pb, ["5", "force=yes"]) == {"count": 5, "force": True, "mode": "safe"}
    with pytest.raises(ParamError, match="count: expected a whole number"):
        parse_args(pb, ["five"])
    with pytest.raises(ParamError, match="mode: must be one of fast, safe"):
        parse_args(pb, ["mode=reckless"])


def test_unleash_flag_defaults_come_from_alert_labels(playbooks: dict[str, Playbook]) -> None:
    pb = playbooks["unleash-kill-switch"]
    assert parse_args(pb, [], labels={"feature_flag": "llm.tool.web_search"}) == {
        "flag": "llm.tool.web_search", "project": "default", "environment": "production"}


def test_sandbox_blocks_template_escapes_in_playbooks(gateway: Gateway, playbook_from) -> None:
    pb = playbook_from("""
name: escape
target: llm-gateway
steps:
  - name: climb the class tree
    method: POST
    url: "{{ target }}/v1/answer"
    json: {question: "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
""")
    result = gateway.run(pb, {})
    assert result.status == "failed" and gateway.sent == []
    assert "template refused by the sandbox" in result.error
    assert "__subclasses__" not in (result.steps[0].request_preview_masked.get("json") or {}).get("question", "")


def test_secrets_object_exposes_no_internals(gateway: Gateway, playbook_from) -> None:
    pb = playbook_from("""
name: peek
target: llm-gateway
steps:
  - name: peek
    url: "{{ target }}/healthz?x={{ secrets._values }}"
""")
    result = gateway.run(pb, {})
    assert result.status == "failed" and gateway.sent == []
    assert CONTROL_TOKEN not in result.model_dump_json()
