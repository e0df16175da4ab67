"""The watch page: a readable view of the workspace and a place to act as a user.

Server-rendered with jinja2 (autoescape on); a little vanilla JS polls ``/ui/state`` and posts
user actions, which the emulator turns into real signed Slack requests via the driver.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from bot.emulator.driver import BotReply
from bot.emulator.state import Workspace

if TYPE_CHECKING:
    from bot.emulator.server import Emulator

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True,
                        trim_blocks=True, lstrip_blocks=True)

_TOKEN = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def readable(ws: Workspace, text: str | None) -> str:
    """Slack's mrkdwn tokens as plain words (``<@U1>`` -> ``@priya``). Output is still escaped by jinja."""

    def one(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            user = ws.users.get(target[1:])
            return f"@{label or (user.name if user else target[1:])}"
        if target.startswith("#"):
            channel = ws.channels.get(target[1:])
            return f"#{label or (channel.name if channel else target[1:])}"
        if target.startswith("!subteam^"):
            group = ws.usergroups.get(target[9:])
            return f"@{label or (group.handle if group else target[9:])}"
        if target.startswith("!"):
            return f"@{label or target[1:]}"
        return label or target

    return _TOKEN.sub(one, text or "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _render(ws: Workspace, name: str, **ctx: Any) -> str:
    return TEMPLATES.get_template(name).render(
        ws=ws, readable=lambda t: readable(ws, t), user_name=lambda u: ws.users[u].name if u in ws.users else u, **ctx)


def _fragments(ws: Workspace, channel_id: str, user: str) -> dict[str, str]:
    with ws.lock:
        channel = ws.channels.get(channel_id)
        views = ws.open_views(user)
        return {
            "channels": _render(ws, "_channels.html", channels=list(ws.channels.values()), current=channel_id,
                                user=user),
            "messages": _render(ws, "_messages.html", channel=channel, user=user,
                                messages=ws.visible_messages(channel_id, user)),
            "modal": _render(ws, "_modal.html", view=views[-1] if views else None),
        }


def _reply_json(reply: BotReply) -> JSONResponse:
    return JSONResponse({"status": reply.status, "body": reply.body[:2000], "elapsed_s": round(reply.elapsed_s, 3)})


def routes(emu: Emulator) -> list[Route]:
    ws = emu.state

    def pick(request: Request) -> tuple[str, str]:
        first = next(iter(ws.channels), "")
        return request.query_params.get("channel", first), request.query_params.get("user", "U0PRIYA")

    def index(request: Request) -> HTMLResponse:
        channel, user = pick(request)
        humans = [u for u in ws.users.values() if not u.is_bot]
        return HTMLResponse(_render(ws, "page.html", channel=channel, user=user, users=humans,
                                    fragments=_fragments(ws, channel, user), bot_url=emu.bot_url))

    def state(request: Request) -> JSONResponse:
        channel, user = pick(request)
        return JSONResponse(_fragments(ws, channel, user))

    def act(fn):  # noqa: ANN001, ANN202 - wraps a sync UI action; Starlette runs it in a thread
        async def endpoint(request: Request) -> JSONResponse:
            data = await request.json()
            try:
                return _reply_json(await run_in_threadpool(fn, data))
            except (LookupError, RuntimeError, OSError) as exc:  # shown on the page, not a 500
                return JSONResponse({"status": 0, "error": str(exc)}, status_code=400)

        return endpoint

    return [
        Route("/", index),
        Route("/ui/state", state),
        Route("/ui/command", act(lambda d: emu.command(d["text"], user=d["user"], channel=d["channel"])),
              methods=["POST"]),
        Route("/ui/click", act(lambda d: emu.click(d["channel"], d["ts"], d["action_id"], d.get("value"),
                                                   user=d["user"])), methods=["POST"]),
        Route("/ui/select", act(lambda d: emu.select(d["channel"], d["ts"], d["action_id"], d["value"],
                                                     user=d["user"])), methods=["POST"]),
        Route("/ui/react", act(lambda d: emu.react(d["channel"], d["ts"], d.get("name", "pushpin"),
                                                   user=d["user"])), methods=["POST"]),
        Route("/ui/submit", act(lambda d: emu.submit_view(d["view_id"], d["values"], user=d["user"])),
              methods=["POST"]),
    ]
