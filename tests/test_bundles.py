"""Bundle diffs and how a change is told: pure functions, no database."""

from __future__ import annotations

from bot.releases.bundles import ComponentChange, describe_change, diff


def test_diff_lists_known_components_in_order_then_other_keys_sorted():
    old = {"retriever_snapshot": "r1", "prompt_version": "p1", "zeta": 1, "alpha": "a", "same": True}
    new = {"retriever_snapshot": "r2", "prompt_version": "p2", "zeta": 2, "beta": "b", "same": True}
    assert diff(old, new) == [
        ComponentChange("prompt_version", "p1", "p2"),
        ComponentChange("retriever_snapshot", "r1", "r2"),
        ComponentChange("alpha", "a", None),
        ComponentChange("beta", None, "b"),
        ComponentChange("zeta", 1, 2),
    ]


def test_diff_against_nothing_is_every_component_added():
    assert diff(None, {"model_route": "m"}) == [ComponentChange("model_route", None, "m")]
    assert diff({"model_route": "m"}, {"model_route": "m"}) == []


def test_describe_change_reads_like_a_sentence():
    changes = [ComponentChange("prompt_version", "answer-v41", "answer-v42"),
               ComponentChange("retriever_snapshot", "policy-2026-02-01", "policy-2026-03-14")]
    assert describe_change(changes) == ("prompt answer-v41→answer-v42, "
                                        "retriever snapshot policy-2026-02-01→policy-2026-03-14")
    assert describe_change([ComponentChange("tool_contracts", ["a@1"], ["a@1", "b@2"]),
                            ComponentChange("safe_mode", False, True),
                            ComponentChange("canary_pct", 10, None)]) == (
        "tool contracts [a@1]→[a@1, b@2], safe mode off→on, canary pct 10→none")
    assert describe_change([]) == "no component changed"
