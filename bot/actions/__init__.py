"""Playbooks: declarative, verified, undoable HTTP actions (pure: no DB, no Slack).

Errors: ``PlaybookError`` (broken files), ``ParamError`` (refused input), ``RenderError``
(template problems), ``HostRefused`` (URL outside the allow-list); runs report failures in
``RunResult.error`` instead of raising.
"""

from __future__ import annotations

from .hosts import HostAllowList, HostRefused
from .params import ParamError, parse_args, validate_params
from .playbook import Playbook, PlaybookError, check_playbooks, load_playbooks
from .policy import Decision, check_approver, check_requester, idempotency_key
from .render import RenderError, secrets_from_env
from .runner import RunEvent, RunResult, StepResult, VerifyResult, run_playbook, run_undo
from .targets import load_targets

__all__ = [
    "Decision", "HostAllowList", "HostRefused", "ParamError", "Playbook", "PlaybookError", "RenderError",
    "RunEvent", "RunResult", "StepResult", "VerifyResult", "check_approver", "check_playbooks",
    "check_requester", "idempotency_key", "load_playbooks", "load_targets", "parse_args", "run_playbook",
    "run_undo", "secrets_from_env", "validate_params",
]
