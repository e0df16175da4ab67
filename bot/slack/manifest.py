"""What warroom asks of a Slack workspace: bot scopes, subscribed events and the app manifest.

The emulator grants its token exactly ``BOT_SCOPES``, so a call that would need anything more
fails locally with ``missing_scope`` the same way it would in a real workspace.
"""

from __future__ import annotations

import yaml

# Minimal bot scopes. Each line says which warroom feature breaks without it.
BOT_SCOPES: dict[str, str] = {
    "commands": "the /incident slash command",
    "chat:write": "post and update the incident card, runbook, timeline lines and ephemeral replies",
    "channels:manage": "create public incident channels, invite responders, set topic/purpose, archive",
    "groups:write": "the same for private incident channels (conversations.create is_private=true)",
    "channels:read": "conversations.info/members and member_joined_channel events in public channels",
    "groups:read": "the same in private incident channels (who may acknowledge, resolve, run actions)",
    "channels:history": "read a pinned (pushpin-reacted) message's text for the timeline",
    "groups:history": "the same in private incident channels",
    "pins:write": "pin the incident card in the incident channel",
    "bookmarks:write": "bookmark the dashboard, runbook and incident page in the channel",
    "reactions:read": "receive reaction_added/removed so a pushpin adds a message to the timeline",
    "reactions:write": "mark a 📌 message with ✅ once it is on the timeline",
    "users:read": "show responders' names (users.info); required alongside users:read.email",
    "users:read.email": "map runbook owners given by email to Slack users (users.lookupByEmail)",
    "usergroups:read": "expand @ml-oncall style user groups into members to invite",
    "im:write": "tell a person by direct message when an ephemeral reply and the response_url both fail",
}

# Web API method -> scopes that allow it (any one is enough). An empty tuple means the method
# needs no scope (auth.test, views.*: Slack checks the trigger_id instead).
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.delete": ("chat:write",),
    "conversations.create": ("channels:manage", "groups:write"),
    "conversations.invite": ("channels:manage", "groups:write"),
    "conversations.setTopic": ("channels:manage", "groups:write"),
    "conversations.setPurpose": ("channels:manage", "groups:write"),
    "conversations.archive": ("channels:manage", "groups:write"),
    "conversations.info": ("channels:read", "groups:read"),
    "conversations.members": ("channels:read", "groups:read"),
    "conversations.list": ("channels:read", "groups:read"),
    "conversations.history": ("channels:history", "groups:history"),
    "conversations.replies": ("channels:history", "groups:history"),
    "conversations.open": ("im:write",),
    "pins.add": ("pins:write",),
    "bookmarks.add": ("bookmarks:write",),
    "reactions.add": ("reactions:write",),
    "reactions.get": ("reactions:read",),
    "views.open": (),
    "views.update": (),
    "views.push": (),
    "users.info": ("users:read",),
    "users.lookupByEmail": ("users:read.email",),
    "usergroups.users.list": ("usergroups:read",),
    "usergroups.list": ("usergroups:read",),
}

EVENTS: list[str] = ["reaction_added", "reaction_removed", "member_joined_channel"]


def manifest(url: str, name: str = "warroom") -> str:
    """Slack app manifest (YAML) for an app whose HTTP endpoint lives at ``url``."""
    request_url = f"{url.rstrip('/')}/slack/events"
    doc = {
        "display_information": {
            "name": name,
            "description": "Incident response for teams that run LLM features in production",
            "background_color": "#2c2d30",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": [
                {
                    "command": "/incident",
                    "url": request_url,
                    "description": "Declare, acknowledge, mitigate and resolve incidents",
                    "usage_hint": "help | declare [sev1-4] <title> | ack | status [text] | resolve [summary]",
                    "should_escape": True,  # mentions arrive as <@U…> ids, never display names
                }
            ],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": {"request_url": request_url, "bot_events": list(EVENTS)},
            "interactivity": {"is_enabled": True, "request_url": request_url},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)
