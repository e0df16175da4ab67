from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.emulator import Emulator

MODAL = {"type": "modal", "callback_id": "label_trace", "title": {"type": "plain_text", "text": "Label"},
         "blocks": [{"type": "input", "block_id": "why", "label": {"type": "plain_text", "text": "Why"},
                     "element": {"type": "plain_text_input", "action_id": "reason"}}]}


def api_error(call, **kwargs) -> str:
    with pytest.raises(SlackApiError) as err:
        call(**kwargs)
    return str(err.value.response["error"])


def test_a_trigger_id_opens_one_modal_for_its_user(client: WebClient, emu: Emulator) -> None:
    trigger = emu.state.new_trigger("U0PRIYA")
    view = client.views_open(trigger_id=trigger, view=MODAL)["view"]

    assert view["id"] in emu.state.views and emu.state.views[view["id"]].user == "U0PRIYA"
    assert api_error(client.views_open, trigger_id=trigger, view=MODAL) == "exchanged_trigger_id"
    assert api_error(client.views_open, trigger_id="123.456.abc", view=MODAL) == "invalid_trigger_id"


def test_a_trigger_id_expires_after_three_seconds(client: WebClient, emu: Emulator) -> None:
    trigger = emu.state.new_trigger("U0PRIYA")
    emu.state.triggers[trigger].created -= 3.5  # as if the bot took too long to answer

    assert api_error(client.views_open, trigger_id=trigger, view=MODAL) == "expired_trigger_id"


def test_views_update_and_push(client: WebClient, emu: Emulator) -> None:
    opened = client.views_open(trigger_id=emu.state.new_trigger("U0SAM"), view=MODAL)["view"]
    updated = client.views_update(view_id=opened["id"], view={**MODAL, "title": {"type": "plain_text", "text": "New"}})
    pushed = client.views_push(trigger_id=emu.state.new_trigger("U0SAM"), view=MODAL)["view"]

    assert updated["view"]["title"]["text"] == "New"
    assert pushed["previous_view_id"] == opened["id"]
    assert [v.id for v in emu.state.open_views("U0SAM")] == [opened["id"], pushed["id"]]
    assert api_error(client.views_update, view_id="V0NOPE", view=MODAL) == "not_found"


def test_users_and_user_groups_come_from_the_seed(client: WebClient) -> None:
    assert client.users_info(user="U0PRIYA")["user"]["real_name"] == "Priya"
    assert client.users_lookupByEmail(email="sam@example.com")["user"]["id"] == "U0SAM"
    assert api_error(client.users_lookupByEmail, email="nobody@example.com") == "users_not_found"
    assert client.usergroups_users_list(usergroup="S0MLONCALL")["users"] == ["U0PRIYA", "U0SAM"]
    assert api_error(client.usergroups_users_list, usergroup="S0NOPE") == "no_such_subteam"
    handles = {g["handle"]: g["id"] for g in client.usergroups_list()["usergroups"]}
    assert handles == {"ml-oncall": "S0MLONCALL", "sre": "S0SRE"}
