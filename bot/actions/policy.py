"""Who may run a playbook, who may approve it, and what makes two requests "the same run"."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.said import Person, Said, said

from .playbook import Playbook


class Decision(BaseModel):
    """``reason`` names people as parts (`bot.said`): a mention in Slack, a name elsewhere."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    allowed: bool
    reason: Said


def _may_act(pb: Playbook, user_id: str, user_groups: set[str], channel_members: set[str]) -> bool:
    if not pb.allowed:
        return user_id in channel_members
    groups = {g if g.startswith("@") else f"@{g}" for g in user_groups}
    return user_id in pb.allowed or any(entry in groups for entry in pb.allowed if entry.startswith("@"))


def _who(pb: Playbook) -> str:
    return ", ".join(pb.allowed) if pb.allowed else "members of the incident channel"


def check_requester(pb: Playbook, user_id: str, user_groups: set[str], channel_members: set[str]) -> Decision:
    if _may_act(pb, user_id, user_groups, channel_members):
        return Decision(allowed=True, reason=said(Person(user_id), f" may run {pb.name}"))
    return Decision(allowed=False, reason=said(Person(user_id), f" may not run {pb.name}: only {_who(pb)} may"))


def check_approver(
    pb: Playbook, requester: str, approver: str, approver_groups: set[str] | None = None,
    channel_members: set[str] | None = None,
) -> Decision:
    if pb.approval == "none":
        return Decision(allowed=True, reason=said(f"{pb.name} needs no approval"))
    if approver == requester:
        return Decision(allowed=False,
                        reason=said(Person(approver), f" requested this {pb.name} run and cannot approve it; "
                                    "a second person must"))
    if not _may_act(pb, approver, approver_groups or set(), channel_members or set()):
        return Decision(
            allowed=False, reason=said(Person(approver), f" may not approve {pb.name}: only {_who(pb)} may")
        )
    return Decision(
        allowed=True, reason=said(Person(approver), f" approved {pb.name} requested by ", Person(requester))
    )


def idempotency_key(incident_id: str | int, playbook: str, params: Mapping[str, Any]) -> str:
    """Same incident, playbook and params → same key, whatever order the params came in."""
    canonical = json.dumps({"incident": str(incident_id), "playbook": playbook, "params": dict(params)},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
