"""The emulated workspace: users, groups, channels, messages and everything hung on them.

Plain data guarded by one lock: the uvicorn thread mutates it while tests read it from theirs.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SEED = Path(__file__).with_name("seed.yaml")


@dataclass
class User:
    id: str
    name: str
    real_name: str
    email: str
    is_bot: bool = False

    def to_api(self, team_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": self.real_name,
            "is_bot": self.is_bot,
            "deleted": False,
            "profile": {"real_name": self.real_name, "display_name": self.name, "email": self.email},
        }


@dataclass
class Usergroup:
    id: str
    handle: str
    name: str
    users: list[str]


@dataclass
class Message:
    ts: str
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)  # name -> users
    ephemeral_to: str | None = None  # set for chat.postEphemeral: only this user sees it
    edited: bool = False
    metadata: dict[str, Any] | None = None  # {"event_type", "event_payload"} from chat.postMessage

    def to_api(self, *, with_metadata: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text}
        if self.metadata and with_metadata:
            out["metadata"] = self.metadata
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.reactions:
            out["reactions"] = [
                {"name": n, "users": list(u), "count": len(u)} for n, u in self.reactions.items()
            ]
        return out


@dataclass
class Bookmark:
    id: str
    channel_id: str
    title: str
    link: str
    type: str = "link"
    emoji: str | None = None


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    topic: str = ""
    purpose: str = ""
    members: list[str] = field(default_factory=list)
    archived: bool = False
    created: int = field(default_factory=lambda: int(time.time()))
    messages: list[Message] = field(default_factory=list)  # oldest first
    pins: list[str] = field(default_factory=list)  # message ts
    bookmarks: list[Bookmark] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_private": self.is_private,
            "is_archived": self.archived,
            "created": self.created,
            "topic": {"value": self.topic},
            "purpose": {"value": self.purpose},
            "num_members": len(self.members),
        }

    def message(self, ts: str) -> Message | None:
        return next((m for m in self.messages if m.ts == ts and m.ephemeral_to is None), None)


@dataclass
class View:
    id: str
    user: str
    view: dict[str, Any]
    root_view_id: str
    previous_view_id: str | None = None
    closed: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # response_action "errors", shown under inputs
    hash: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Trigger:
    id: str
    user: str
    created: float
    used: bool = False


@dataclass
class Call:
    """One Web API request as the emulator saw it."""

    method: str
    args: dict[str, Any]
    token: str | None
    time: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResponseUrl:
    id: str
    user: str
    channel: str
    message_ts: str | None  # set when the response_url came from a message (block_actions)


@dataclass
class Response:
    """A message posted to a response_url."""

    response_url_id: str
    user: str
    channel: str
    body: dict[str, Any]

    @property
    def response_type(self) -> str:
        return str(self.body.get("response_type") or "ephemeral")

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")


class Workspace:
    """All mutable emulator state. Hold ``lock`` while reading or changing several fields."""

    def __init__(self, seed: dict[str, Any]) -> None:
        self.lock = threading.RLock()
        self._seed = seed
        self._load(seed)

    def reset(self) -> None:
        """Back to the seed, in place (the server threads keep their reference)."""
        with self.lock:
            self._load(self._seed)

    def _load(self, seed: dict[str, Any]) -> None:
        team = seed.get("team", {})
        self.team_id: str = team.get("id", "T0WARROOM")
        self.team_domain: str = team.get("domain", "warroom")
        self.team_name: str = team.get("name", self.team_domain)
        bot = seed.get("bot", {})
        self.bot_user_id: str = bot.get("user_id", "U0WARROOM")
        self.bot_id: str = bot.get("bot_id", "B0WARROOM")
        self.app_id: str = bot.get("app_id", "A0WARROOM")
        self.users: dict[str, User] = {
            self.bot_user_id: User(self.bot_user_id, bot.get("name", "warroom"), bot.get("name", "warroom"), "", True)
        }
        for u in seed.get("users", []):
            self.users[u["id"]] = User(u["id"], u["name"], u.get("real_name", u["name"]), u.get("email", ""))
        self.usergroups: dict[str, Usergroup] = {
            g["id"]: Usergroup(g["id"], g["handle"], g.get("name", g["handle"]), list(g.get("users", [])))
            for g in seed.get("usergroups", [])
        }
        self.channels: dict[str, Channel] = {}
        for c in seed.get("channels", []):
            self.channels[c["id"]] = Channel(
                c["id"], c["name"], bool(c.get("is_private")), c.get("topic", ""), c.get("purpose", ""),
                list(c.get("members", [])),
            )
        self.views: dict[str, View] = {}
        self.triggers: dict[str, Trigger] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.responses: list[Response] = []
        self.calls: list[Call] = []
        self._ids = itertools.count(1)
        self._last_us = 1_700_000_000 * 1_000_000  # ts in integer microseconds

    @classmethod
    def from_seed(cls, seed: str | Path | dict[str, Any] | None = None) -> Workspace:
        if isinstance(seed, dict):
            return cls(seed)
        return cls(yaml.safe_load(Path(seed or DEFAULT_SEED).read_text()))

    # ids -----------------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def next_ts(self) -> str:
        """Slack message ts: seconds.micro, unique and increasing per workspace."""
        with self.lock:
            self._last_us = max(self._last_us + 100, time.time_ns() // 1000)
            return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def new_trigger(self, user: str) -> str:
        with self.lock:
            tid = f"{next(self._ids)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
            self.triggers[tid] = Trigger(tid, user, time.monotonic())
            return tid

    def new_response_url(self, user: str, channel: str, message_ts: str | None) -> str:
        with self.lock:
            rid = secrets.token_urlsafe(12)
            self.response_urls[rid] = ResponseUrl(rid, user, channel, message_ts)
            return rid

    # lookups -------------------------------------------------------------------------------
    def channel_by_name(self, name: str) -> Channel | None:
        name = name.lstrip("#")
        with self.lock:
            return next((c for c in self.channels.values() if c.name == name), None)

    def user_by_email(self, email: str) -> User | None:
        with self.lock:
            return next((u for u in self.users.values() if u.email and u.email.lower() == email.lower()), None)

    def visible_messages(self, channel_id: str, viewer: str | None = None) -> list[Message]:
        """Channel messages oldest first; ephemeral ones only for their user."""
        with self.lock:
            ch = self.channels.get(channel_id)
            if ch is None:
                return []
            return [m for m in ch.messages if m.ephemeral_to is None or m.ephemeral_to == viewer]

    def open_views(self, user: str) -> list[View]:
        with self.lock:
            return [v for v in self.views.values() if v.user == user and not v.closed]
