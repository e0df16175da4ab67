"""Who is who: auth.test, users, user groups."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bot.emulator.methods.registry import ApiError, Args, Handler
from bot.emulator.state import Workspace


def auth_test(ws: Workspace, args: Args) -> dict[str, Any]:
    """Bolt calls this at start-up to learn its own bot user id."""
    bot = ws.users[ws.bot_user_id]
    return {"url": f"https://{ws.team_domain}.slack.com/", "team": ws.team_name, "user": bot.name,
            "team_id": ws.team_id, "user_id": ws.bot_user_id, "bot_id": ws.bot_id,
            "is_enterprise_install": False}


def users_info(ws: Workspace, args: Args) -> dict[str, Any]:
    user = ws.users.get(args.require("user", "user_not_found"))
    if user is None:
        raise ApiError("user_not_found")
    return {"user": user.to_api(ws.team_id)}


def lookup_by_email(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rule: no match is ``users_not_found`` (plural)."""
    user = ws.user_by_email(args.require("email", "users_not_found"))
    if user is None:
        raise ApiError("users_not_found")
    return {"user": user.to_api(ws.team_id)}


def usergroup_users(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rule: an unknown ``usergroup`` id (``S…``) is ``no_such_subteam``."""
    group = ws.usergroups.get(args.require("usergroup", "no_such_subteam"))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"users": list(group.users)}


def usergroups_list(ws: Workspace, args: Args) -> dict[str, Any]:
    groups = [
        {"id": g.id, "team_id": ws.team_id, "handle": g.handle, "name": g.name, "user_count": len(g.users),
         **({"users": list(g.users)} if args.flag("include_users") else {})}
        for g in ws.usergroups.values()
    ]
    return {"usergroups": groups}


# This module's Web API methods, by Slack method name (read by the emulator's API).
METHODS: Mapping[str, Handler] = MappingProxyType({
    "auth.test": auth_test,
    "users.info": users_info,
    "users.lookupByEmail": lookup_by_email,
    "usergroups.users.list": usergroup_users,
    "usergroups.list": usergroups_list,
})
