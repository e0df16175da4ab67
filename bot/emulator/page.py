"""The watch page: a readable view of the workspace and a place to act as a user.

Server-rendered with jinja2 (autoescape on); a little vanilla JS polls ``/ui/state`` and posts
user actions, which the emulator turns into real signed Slack requests via the driver. Message
text is rendered as Slack renders mrkdwn (bold, italic, strike, code, links, mentions), built from
escaped pieces only; a plain message typed on the page is posted as the chosen person.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from bot.emulator.driver import BotReply
from bot.emulator.state import Message, Workspace

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


_LINK_SCHEMES = ("http://", "https://", "mailto:")
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_CODE_BLOCK = re.compile(r"```\n?(.+?)```", re.S)
_CODE = re.compile(r"`([^`\n]+)`")
# Slack's emphasis: the marker hugs the words and is not inside a word (snake_case stays as it is).
_EMPHASIS = tuple((re.compile(rf"(?<![\w{m}])\{m}(?=\S)([^{m}\n]+?)(?<=\S)\{m}(?![\w{m}])"), tag)
                  for m, tag in (("*", "strong"), ("_", "em"), ("~", "del")))


def _wrap_in(tag: str) -> Callable[[re.Match[str]], str]:
    """A replacement that wraps the match's text in ``tag`` (one per tag: a loop's lambda would see the last)."""
    return lambda m: f"<{tag}>{m.group(1)}</{tag}>"


def mrkdwn(ws: Workspace, text: str | None) -> Markup:
    """Slack mrkdwn as HTML: every piece of the text is escaped before a tag is put around it."""
    pieces: list[str] = []

    def keep(fragment: str) -> str:
        pieces.append(fragment)
        return f"\x00{len(pieces) - 1}\x00"

    def token(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith(("@", "#", "!")):
            return keep(f'<span class="mention">{escape(readable(ws, match.group(0)))}</span>')
        if target.startswith(_LINK_SCHEMES):
            return keep(f'<a href="{escape(html.unescape(target))}" target="_blank" rel="noopener">'
                        f"{escape(html.unescape(label or target))}</a>")
        return match.group(0)  # `<title>` in help text is a placeholder, not a link: show it as typed

    marked = _TOKEN.sub(token, text or "")
    escaped = str(escape(html.unescape(marked)))
    escaped = _CODE_BLOCK.sub(lambda m: keep(f"<pre>{m.group(1)}</pre>"), escaped)
    escaped = _CODE.sub(lambda m: keep(f"<code>{m.group(1)}</code>"), escaped)
    for pattern, tag in _EMPHASIS:
        escaped = pattern.sub(_wrap_in(tag), escaped)
    while _PLACEHOLDER.search(escaped):  # a code span can hold a mention's placeholder
        escaped = _PLACEHOLDER.sub(lambda m: pieces[int(m.group(1))], escaped)
    return Markup(escaped)


def clock(ts: str) -> str:
    """A message ts as the time of day on this machine (``14:03:27``); older days get their date."""
    try:
        when = datetime.fromtimestamp(float(ts))
    except (TypeError, ValueError):
        return ts
    return when.strftime("%H:%M:%S" if when.date() == datetime.now().date() else "%Y-%m-%d %H:%M")


def post_as(ws: Workspace, channel_id: str, user: str, text: str) -> Message:
    """A plain message typed on the page, stored as Slack stores a person's message (``&<>`` escaped)."""
    if not text.strip():
        raise LookupError("type a message, or a /command")
    with ws.lock:
        channel = ws.channels.get(channel_id)
        if channel is None:
            raise LookupError(f"no channel {channel_id}")
        if user not in ws.users:
            raise LookupError(f"no user {user}")
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        message = Message(ts=ws.next_ts(), channel=channel_id, user=user, text=escaped)
        channel.messages.append(message)
        return message


def _render(ws: Workspace, name: str, **ctx: Any) -> str:
    return TEMPLATES.get_template(name).render(
        ws=ws, readable=lambda t: readable(ws, t), mrkdwn=lambda t: mrkdwn(ws, t), clock=clock,
        user_name=lambda u: ws.users[u].name if u in ws.users else u, **ctx)


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

    async def message(request: Request) -> JSONResponse:
        data = await request.json()
        try:
            posted = post_as(ws, str(data["channel"]), str(data["user"]), str(data["text"]))
        except (LookupError, TypeError) as exc:
            return JSONResponse({"status": 0, "error": str(exc).strip("'\"")}, status_code=400)
        return JSONResponse({"posted": posted.ts, "at": clock(posted.ts)})

    return [
        Route("/", index),
        Route("/ui/state", state),
        Route("/ui/command", act(lambda d: emu.command(d["text"], user=d["user"], channel=d["channel"])),
              methods=["POST"]),
        Route("/ui/click", act(lambda d: emu.click(d["channel"], d["ts"], d["action_id"], d.get("value"),
                                                   user=d["user"])), methods=["POST"]),
        Route("/ui/select", act(lambda d: emu.select(d["channel"], d["ts"], d["action_id"], d["value"],
                                                     user=d["user"])), methods=["POST"]),
        Route("/ui/message", message, methods=["POST"]),
        Route("/ui/react", act(lambda d: emu.react(d["channel"], d["ts"], d.get("name", "pushpin"),
                                                   user=d["user"])), methods=["POST"]),
        Route("/ui/submit", act(lambda d: emu.submit_view(d["view_id"], d["values"], user=d["user"])),
              methods=["POST"]),
    ]
