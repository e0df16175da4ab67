"""Bodies Slack sends to an app: slash commands, block_actions, view_submission, event_callback.

Pure builders over the workspace; ``driver.py`` signs and sends them.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bot.emulator.state import Message, View, Workspace

VERIFICATION_TOKEN = "emulator-verification-token"  # deprecated by Slack, still sent


def user_ref(ws: Workspace, user_id: str) -> dict[str, Any]:
    user = ws.users.get(user_id)
    name = user.name if user else user_id
    return {"id": user_id, "username": name, "name": name, "team_id": ws.team_id}


def escape_command_text(ws: Workspace, text: str) -> str:
    """What Slack does with ``should_escape: true``: ``&<>`` become entities and ``@name`` of a
    known user becomes ``<@U123|name>``, so the app receives ids, not display names."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    by_name = {u.name: u.id for u in ws.users.values()}
    return re.sub(r"@([a-z0-9._-]+)", lambda m: f"<@{by_name[m.group(1)]}|{m.group(1)}>"
                  if m.group(1) in by_name else m.group(0), text)


def slash_command(ws: Workspace, line: str, user: str, channel: str, response_url: str,
                  trigger_id: str) -> dict[str, str]:
    command, _, text = line.strip().partition(" ")
    text = escape_command_text(ws, text)
    ch = ws.channels.get(channel)
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "team_domain": ws.team_domain,
        "channel_id": channel,
        "channel_name": ch.name if ch else "directmessage",
        "user_id": user,
        "user_name": ws.users[user].name if user in ws.users else user,
        "command": command,
        "text": text.strip(),
        "api_app_id": ws.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def find_element(msg_or_view_blocks: list[dict[str, Any]], action_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(block, element) for an interactive element, in actions/input blocks or section accessories."""
    for block in msg_or_view_blocks:
        candidates = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block, element
    ids = [e.get("action_id") for b in msg_or_view_blocks
           for e in [*(b.get("elements") or []), b.get("accessory") or {}, b.get("element") or {}]
           if isinstance(e, dict) and e.get("action_id")]
    raise LookupError(f"no element with action_id {action_id!r}; this surface has {ids}")


def find_option(element: dict[str, Any], value: str) -> dict[str, Any]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    for option in options:
        if option.get("value") == value:
            return {"text": option.get("text"), "value": value}
    raise LookupError(f"option {value!r} not in {[o.get('value') for o in options]}")


def block_actions(ws: Workspace, msg: Message, user: str, action: dict[str, Any], response_url: str,
                  trigger_id: str, state_values: dict[str, Any] | None = None) -> dict[str, Any]:
    ch = ws.channels[msg.channel]
    message = {**msg.to_api(), "bot_id": ws.bot_id, "app_id": ws.app_id, "team": ws.team_id}
    return {
        "type": "block_actions",
        "user": user_ref(ws, user),
        "api_app_id": ws.app_id,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": msg.ts, "channel_id": ch.id,
                      "is_ephemeral": msg.ephemeral_to is not None},
        "trigger_id": trigger_id,
        "team": {"id": ws.team_id, "domain": ws.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": ch.id, "name": ch.name},
        "message": message,
        "state": {"values": state_values or {}},
        "response_url": response_url,
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
    }


def input_value(element: dict[str, Any], raw: Any) -> dict[str, Any]:
    """One ``state.values[block_id][action_id]`` entry, shaped per element type like Slack's."""
    kind = element.get("type", "plain_text_input")
    if isinstance(raw, dict) and "type" in raw:
        return raw
    if raw in (None, "") and kind in ("static_select", "radio_buttons", "users_select", "conversations_select"):
        key = {"users_select": "selected_user", "conversations_select": "selected_conversation"}.get(kind,
                                                                                                     "selected_option")
        return {"type": kind, key: None}
    if kind in ("static_select", "radio_buttons"):
        return {"type": kind, "selected_option": find_option(element, str(raw))}
    if kind in ("checkboxes", "multi_static_select"):
        values = raw if isinstance(raw, list) else [raw]
        return {"type": kind, "selected_options": [find_option(element, str(v)) for v in values]}
    if kind == "users_select":
        return {"type": kind, "selected_user": raw}
    if kind == "conversations_select":
        return {"type": kind, "selected_conversation": raw}
    if kind == "datepicker":
        return {"type": kind, "selected_date": raw}
    return {"type": kind, "value": None if raw is None else str(raw)}


def view_state(view: View, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Accept ``{block_id: {action_id: v}}`` or the shorthand ``{action_id: v}``."""
    blocks = view.view.get("blocks") or []
    state: dict[str, dict[str, Any]] = {}
    for key, raw in values.items():
        block = next((b for b in blocks if b.get("block_id") == key), None)
        pairs = raw.items() if block is not None and isinstance(raw, dict) else [(key, raw)]
        for action_id, value in pairs:
            found_block, element = find_element(blocks, action_id)
            state.setdefault(found_block.get("block_id", ""), {})[action_id] = input_value(element, value)
    return state


def view_submission(ws: Workspace, view: View, user: str, values: dict[str, Any], trigger_id: str,
                    view_api: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": ws.team_id, "domain": ws.team_domain},
        "user": user_ref(ws, user),
        "api_app_id": ws.app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": {**view_api, "state": {"values": view_state(view, values)}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def event_callback(ws: Workspace, event: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "api_app_id": ws.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": ws.team_id, "user_id": ws.bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": f"4-{event_id}",
    }


def reaction_event(ws: Workspace, msg: Message, name: str, user: str, removed: bool) -> dict[str, Any]:
    return {
        "type": "reaction_removed" if removed else "reaction_added",
        "user": user,
        "reaction": name,
        "item_user": msg.user,
        "item": {"type": "message", "channel": msg.channel, "ts": msg.ts},
        "event_ts": f"{time.time():.6f}",
    }
