from __future__ import annotations

from bot.actions import Playbook, check_approver, check_requester, idempotency_key
from bot.slack.text import mrkdwn

CHANNEL = {"U_PRIYA", "U_SAM"}


def restricted(pb: Playbook) -> Playbook:
    return pb.model_copy(update={"allowed": ["@ml-oncall", "U_LEAD"]})


def test_only_channel_members_may_run_an_unrestricted_playbook(playbooks: dict[str, Playbook]) -> None:
    pb = playbooks["fallback"]
    assert check_requester(pb, "U_PRIYA", set(), CHANNEL).allowed
    refused = check_requester(pb, "U_STRANGER", set(), CHANNEL)
    assert not refused.allowed
    assert refused.reason.people == ["U_STRANGER"]  # a person, as data
    assert mrkdwn(refused.reason) == "<@U_STRANGER> may not run fallback: only members of the incident channel may"


def test_allowed_list_admits_named_users_and_groups_only(playbooks: dict[str, Playbook]) -> None:
    pb = restricted(playbooks["rollback"])
    assert check_requester(pb, "U_PRIYA", {"ml-oncall"}, CHANNEL).allowed
    assert check_requester(pb, "U_LEAD", set(), set()).allowed
    refused = check_requester(pb, "U_SAM", {"@frontend"}, CHANNEL)
    assert (
        not refused.allowed and mrkdwn(refused.reason) == "<@U_SAM> may not run rollback: only @ml-oncall, U_LEAD may"
    )


def test_requester_cannot_approve_their_own_rollback(playbooks: dict[str, Playbook]) -> None:
    pb = playbooks["rollback"]
    decision = check_approver(pb, "U_PRIYA", "U_PRIYA", set(), CHANNEL)
    assert not decision.allowed
    assert (
        mrkdwn(decision.reason) == "<@U_PRIYA> requested this rollback run and cannot approve it; a second person must"
    )
    assert check_approver(pb, "U_PRIYA", "U_SAM", set(), CHANNEL).allowed


def test_approver_must_also_be_allowed(playbooks: dict[str, Playbook]) -> None:
    decision = check_approver(restricted(playbooks["rollback"]), "U_PRIYA", "U_SAM", {"@frontend"}, CHANNEL)
    assert not decision.allowed and "may not approve rollback" in str(decision.reason)


def test_playbooks_without_approval_need_none(playbooks: dict[str, Playbook]) -> None:
    assert check_approver(playbooks["fallback"], "U_PRIYA", "U_PRIYA").allowed


def test_idempotency_key_ignores_param_order_but_not_values() -> None:
    a = idempotency_key(7, "disable-tool", {"tool": "web_search", "note": "x"})
    assert a == idempotency_key("7", "disable-tool", {"note": "x", "tool": "web_search"})
    assert a != idempotency_key(7, "disable-tool", {"tool": "order_lookup", "note": "x"})
    assert a != idempotency_key(8, "disable-tool", {"tool": "web_search", "note": "x"})
    assert a != idempotency_key(7, "enable-tool", {"tool": "web_search", "note": "x"})
