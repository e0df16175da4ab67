"""User-facing words for the Slack edge: errors, hints and help, in one place."""

from __future__ import annotations

import logging

from bot.errors import ExternalError, UserError, new_error_id
from bot.said import of_error
from bot.slack.text import escape_placeholders, mrkdwn

log = logging.getLogger(__name__)

NOT_IN_INCIDENT = ("This channel is not an incident channel. Run the command in the incident's channel, "
                   "or name the incident: `/incident {sub} 42`.")
WORKING = "⏳ Working on it… the answer will follow here."

HELP = escape_placeholders("""*`/incident` commands*
• `declare [sev1-4] <title>` — open an incident (no title: a form)
• `ack` — acknowledge · `sev <1-4>` — change severity · `commander @user`
• `status [text]` — show or post a status update · `note <text>` — add to the timeline
• `followup <text> [@owner]` · `followups` — follow-up items for the postmortem
• `resolve [summary]` · `reopen` · `close` (after the postmortem; archives the channel)
• `list` — open incidents · `timeline` — last events
• `actions` — what this incident's runbook offers · `fallback [route]` · `rollback [bundle]`
• `disable-tool <tool>` · `enable-tool <tool>` · `undo <run>` · `silence <duration>`
• `auto off` · `auto on` — stop (or let) warroom run its runbook's automatic actions here
• `postmortem` — draft the postmortem from the timeline · `evals` — this incident's eval cases, to label
• `web` — a one-time sign-in link for warroom's pages (only you see it)
Outside an incident channel, name the incident: `/incident ack 42`. React with 📌 to add a message to the timeline.""")


def for_user(exc: BaseException) -> str:
    """The text a user sees for ``exc``: the message for their own mistakes, an id otherwise."""
    if isinstance(exc, UserError):
        return f"⚠️ {mrkdwn(of_error(exc))}"
    if isinstance(exc, ExternalError):
        return f"⚠️ {exc} (error {exc.error_id}). It will be retried; if it keeps failing, tell your warroom admin."
    error_id = new_error_id()
    log.error("unexpected error in a Slack handler", exc_info=exc, extra={"error_id": error_id})
    return f"⚠️ Something went wrong on our side (error {error_id}). Nothing was changed; try again."
