"""User-facing words for the Slack edge: errors, hints and help, in one place."""

from __future__ import annotations

import logging

from bot.errors import ExternalError, UserError, new_error_id
from bot.said import of_error
from bot.slack.text import mrkdwn

log = logging.getLogger(__name__)

NOT_IN_INCIDENT = ("This channel is not an incident channel. Run the command in the incident's channel, "
                   "or name the incident: `/incident {sub} 42`.")
WORKING = "⏳ Working on it… the answer will follow here."

# `/incident help`, generated from the command definitions (`bot.slack.command_table`): the title,
# the commands by their first name, line by line in this order, and the closing hint.
HELP_TITLE = "*`/incident` commands*"
HELP_LINES: tuple[tuple[str, ...], ...] = (
    ("declare",),
    ("ack", "sev", "commander"),
    ("status", "note"),
    ("cause",),
    ("followup", "followups"),
    ("resolve", "reopen", "close"),
    ("merge", "split"),
    ("list", "timeline"),
    ("actions", "fallback", "rollback"),
    ("disable-tool", "enable-tool", "undo", "silence"),
    ("auto",),
    ("postmortem", "evals"),
    ("web",),
)
HELP_FOOTER = ("Outside an incident channel, name the incident: `/incident ack 42`. "
               "React with 📌 to add a message to the timeline.")


def for_user(exc: BaseException) -> str:
    """The text a user sees for ``exc``: the message for their own mistakes, an id otherwise."""
    if isinstance(exc, UserError):
        return f"⚠️ {mrkdwn(of_error(exc))}"
    if isinstance(exc, ExternalError):
        return f"⚠️ {exc} (error {exc.error_id}). It will be retried; if it keeps failing, tell your warroom admin."
    error_id = new_error_id()
    log.error("unexpected error in a Slack handler", exc_info=exc, extra={"error_id": error_id})
    return f"⚠️ Something went wrong on our side (error {error_id}). Nothing was changed; try again."
