"""`/incident`'s subcommands belong to one app, and `/incident help` is generated from them."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.slack.app import build_slack
from bot.slack.command_table import command
from bot.slack.text import escape_placeholders
from tests.conftest import SIGNING_SECRET
from tests.slack.conftest import INCIDENTS, PRIYA, reply_text

# The wording and order the README and every user know; generated now, it must not drift.
DOCUMENTED_HELP = escape_placeholders("""*`/incident` commands*
• `declare [sev1-4] <title>` — open an incident (no title: a form)
• `ack` — acknowledge · `sev <1-4>` — change severity · `commander @user`
• `status [text]` — show or post a status update · `note <text>` — add to the timeline
• `cause <change>` — name the cause: a change on the card (`v42`, `change 12`) or your words
• `followup <text> [@owner]` · `followups` — follow-up items for the postmortem
• `resolve [summary]` · `reopen` · `close` (after the postmortem; archives the channel)
• `merge <id>… [into <id>]` — merge incidents into this one · `split <group>` — give an alert group its own incident
• `list` — open incidents · `timeline` — last events
• `actions` — what this incident's runbook offers · `fallback [route]` · `rollback [bundle]`
• `disable-tool <tool>` · `enable-tool <tool>` · `undo <run>` · `silence <duration>`
• `auto off` · `auto on` — stop (or let) warroom run its runbook's automatic actions here
• `postmortem` — draft the postmortem from the timeline · `evals` — this incident's eval cases, to label
• `web` — a one-time sign-in link for warroom's pages (only you see it)
Outside an incident channel, name the incident: `/incident ack 42`. React with 📌 to add a message to the timeline.""")


def answer(app: App, text: str) -> str:
    """What ``app`` answers a signed ``/incident <text>`` with (its ack's text)."""
    body = urlencode({"command": "/incident", "text": text, "user_id": PRIYA, "channel_id": INCIDENTS,
                      "trigger_id": "1.2.3", "response_url": "http://127.0.0.1:9/unused", "team_id": "T0WARROOM"})
    timestamp = str(int(time.time()))
    headers = {"content-type": ["application/x-www-form-urlencoded"], "x-slack-request-timestamp": [timestamp],
               "x-slack-signature": [SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp,
                                                                                          body=body)]}
    response = app.dispatch(BoltRequest(body=body, headers=headers))
    assert response.status == 200, response.body
    return json.loads(response.body)["text"] if response.body.startswith("{") else response.body


def test_help_and_the_unknown_subcommand_reply_list_the_commands_as_documented(slack):
    assert reply_text(slack.command("/incident help")) == DOCUMENTED_HELP
    assert reply_text(slack.command("/incident")) == DOCUMENTED_HELP
    assert reply_text(slack.command("/incident frobnicate")) == "Unknown subcommand `frobnicate`.\n" + DOCUMENTED_HELP


def test_two_apps_in_one_process_keep_their_own_commands(slack):
    first, second = (build_slack(slack.runtime, slack.warroom.actions),
                     build_slack(slack.runtime, slack.warroom.actions))
    first.commands.add(command("ping", help="`ping` — is warroom there?")(lambda ctx, inv: "pong"))

    assert answer(first.app, "ping") == "pong"
    assert answer(second.app, "ping").startswith("Unknown subcommand `ping`.")
    # The help follows each app's own definitions: a command outside the usual lines still shows.
    assert answer(first.app, "help").endswith("• `ping` — is warroom there?\n" + DOCUMENTED_HELP.splitlines()[-1])
    assert answer(second.app, "help") == DOCUMENTED_HELP


def test_a_command_defined_twice_in_one_app_is_refused(slack):
    table = build_slack(slack.runtime, slack.warroom.actions).commands
    with pytest.raises(ValueError, match="/incident note is defined twice"):
        table.add(command("note")(lambda ctx, inv: "a second note"))
