"""warroom's exceptions.

    WarroomError
    ├── UserError            shown to the user where they are (ephemeral, modal, thread)
    │   ├── NotFound
    │   ├── PermissionDenied
    │   └── InvalidTransition
    └── ExternalError        Slack or a control plane failed; logged with an id the user also sees
"""

from __future__ import annotations

import secrets


class WarroomError(Exception):
    pass


class UserError(WarroomError):
    """A problem the user can fix; the message is written for them."""


class NotFound(UserError):
    """The incident, run or trace named does not exist."""


class PermissionDenied(UserError):
    """The user may not do this here."""


class InvalidTransition(UserError):
    """The incident's state does not allow this."""


class ExternalError(WarroomError):
    """A call to Slack or a control plane failed after its retries."""

    def __init__(self, message: str, *, error_id: str | None = None) -> None:
        super().__init__(message)
        self.error_id = error_id or new_error_id()


def new_error_id() -> str:
    """A short token shown to the user and written to the log next to the traceback."""
    return "E" + secrets.token_hex(4).upper()
