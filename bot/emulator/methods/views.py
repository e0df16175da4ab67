"""views.*: modals opened from a trigger_id."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bot.emulator.methods.registry import ApiError, Args, Handler
from bot.emulator.state import View, Workspace

TRIGGER_TTL_S = 3.0


def _use_trigger(ws: Workspace, args: Args) -> str:
    """Slack rules: a trigger_id works once (``exchanged_trigger_id``), within 3 s
    (``expired_trigger_id``); anything else is ``invalid_trigger_id``. Returns the user it belongs to."""
    trigger = ws.triggers.get(args.require("trigger_id", "invalid_trigger_id"))
    if trigger is None:
        raise ApiError("invalid_trigger_id")
    if trigger.used:
        raise ApiError("exchanged_trigger_id")
    if time.monotonic() - trigger.created > TRIGGER_TTL_S:
        raise ApiError("expired_trigger_id")
    trigger.used = True
    return trigger.user


def _view_body(args: Args) -> dict[str, Any]:
    view = args.structured("view")
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise ApiError("invalid_arguments", detail="view must be an object with type modal")
    if len(str(view.get("external_id", ""))) > 255:
        raise ApiError("invalid_arguments", detail="external_id longer than 255")
    # Like messages, view blocks without a block_id get one; submissions key state.values by it.
    blocks = [{**b, "block_id": b.get("block_id") or secrets.token_hex(3)} for b in view.get("blocks") or []]
    return {**view, "blocks": blocks}


def view_to_api(ws: Workspace, v: View) -> dict[str, Any]:
    return {**v.view, "id": v.id, "team_id": ws.team_id, "hash": v.hash, "root_view_id": v.root_view_id,
            "previous_view_id": v.previous_view_id, "app_id": ws.app_id, "bot_id": ws.bot_id,
            "callback_id": v.view.get("callback_id", ""), "private_metadata": v.view.get("private_metadata", ""),
            "state": {"values": {}}}


def views_open(ws: Workspace, args: Args) -> dict[str, Any]:
    """Opens a modal for the user the trigger_id belongs to."""
    with ws.lock:
        view = _view_body(args)
        user = _use_trigger(ws, args)
        vid = ws.new_id("V")
        ws.views[vid] = View(vid, user, view, root_view_id=vid)
        return {"view": view_to_api(ws, ws.views[vid])}


def views_push(ws: Workspace, args: Args) -> dict[str, Any]:
    """Pushes a modal on top of the user's open one (needs a fresh trigger_id too)."""
    with ws.lock:
        view = _view_body(args)
        user = _use_trigger(ws, args)
        stack = ws.open_views(user)
        if not stack:
            raise ApiError("not_found")
        vid = ws.new_id("V")
        ws.views[vid] = View(vid, user, view, root_view_id=stack[0].root_view_id, previous_view_id=stack[-1].id)
        return {"view": view_to_api(ws, ws.views[vid])}


def views_update(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: by ``view_id`` or ``external_id`` (``not_found``); a stale ``hash`` is ``hash_conflict``."""
    with ws.lock:
        view = _view_body(args)
        ref, ext = args.get("view_id"), args.get("external_id")
        target = ws.views.get(ref) if ref else next(
            (v for v in ws.views.values() if ext and v.view.get("external_id") == ext), None)
        if target is None:
            raise ApiError("not_found")
        if args.get("hash") and args.get("hash") != target.hash:
            raise ApiError("hash_conflict")
        target.view = view
        target.hash = f"{time.time_ns():x}"
        return {"view": view_to_api(ws, target)}


# This module's Web API methods, by Slack method name (read by the emulator's API).
METHODS: Mapping[str, Handler] = MappingProxyType({
    "views.open": views_open,
    "views.push": views_push,
    "views.update": views_update,
})
