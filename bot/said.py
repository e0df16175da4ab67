"""A line warroom writes about people: the words and the people it names, kept apart.

The domain says "Acknowledged by ⟨Priya⟩ (MTTA 3m)" as parts: text, and `Person` for a Slack
user. Each surface decides how a person reads: a mention in Slack (`bot.slack.text.mrkdwn`), a
name on the pages, in the API's text and in the postmortem (`bot.people.display`); warroom's own
actors ("warroom", "warroom (auto)") are text, so they read the same everywhere.

On a timeline row a line is stored as plain text, each person written ``@`` and their id, and the
people's offsets in ``data["mentions"]``. The raw text reads well to anyone querying the table,
and text a person typed is never taken for a mention: only the recorded offsets are. Rows written
before (``<@U…>`` in their text) and mentions a person typed in Slack are ordinary text here;
every surface keeps rendering those as it always did.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Slack user ids (U…, W… for Enterprise Grid); tests use readable ones like U_PRIYA.
USER_ID = re.compile(r"^[UW][A-Z0-9_]+$")
MENTIONS = "mentions"  # the key in a timeline row's data


@dataclass(frozen=True)
class Person:
    """A Slack user named in a line; ``user`` is their id."""

    user: str


Part = str | Person


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class Said:
    parts: tuple[Part, ...] = ()

    def __add__(self, other: Said | Part) -> Said:
        return said(self, other)

    def __radd__(self, other: Part) -> Said:
        return said(other, self)

    def __str__(self) -> str:
        return self.stored()[0]

    @property
    def people(self) -> list[str]:
        return [p.user for p in self.parts if isinstance(p, Person)]

    def replace_words(self, old: str, new: str) -> Said:
        """``str.replace`` on the words; the people stay as they are."""
        return Said(tuple(p.replace(old, new) if isinstance(p, str) else p for p in self.parts))

    def render(self, person: Callable[[str], str], text: Callable[[str], str] = _same) -> str:
        """The line for one surface: ``person`` writes a user id, ``text`` treats the words."""
        return "".join(person(p.user) if isinstance(p, Person) else text(p) for p in self.parts)

    def stored(self) -> tuple[str, list[dict[str, Any]]]:
        """The row's text, and where its people are in it (``{"at": offset, "user": id}``)."""
        out: list[str] = []
        mentions: list[dict[str, Any]] = []
        length = 0
        for part in self.parts:
            if isinstance(part, Person):
                mentions.append({"at": length, "user": part.user})
                part = "@" + part.user
            out.append(part)
            length += len(part)
        return "".join(out), mentions

    @classmethod
    def from_row(cls, text: str, data: Mapping[str, Any] | None = None) -> Said:
        """A stored line back as parts. An offset that does not hold ``@`` + its id (a row someone
        edited by hand) is left as text rather than guessed at."""
        parts: list[Part] = []
        start = 0
        for mention in sorted((data or {}).get(MENTIONS) or [], key=lambda m: m.get("at", 0)):
            at, user = mention.get("at"), mention.get("user")
            if not isinstance(at, int) or not isinstance(user, str) or at < start:
                continue
            if text[at:at + 1 + len(user)] != "@" + user:
                continue
            parts += [text[start:at], Person(user)]
            start = at + 1 + len(user)
        parts.append(text[start:])
        return said(*parts)


def said(*parts: Said | Part | None) -> Said:
    """A line from text, people and other lines; empty text is dropped and adjacent text joined,
    so two lines that read the same are equal."""
    flat: list[Part] = []
    for part in parts:
        for piece in part.parts if isinstance(part, Said) else (part,):
            if isinstance(piece, Person):
                flat.append(piece)
            elif piece and flat and isinstance(flat[-1], str):
                flat[-1] += piece
            elif piece:
                flat.append(piece)
    return Said(tuple(flat))


def who(actor: str | None) -> Part:
    """An actor as a part: a Slack user as a `Person`; warroom's own actors (the scheduler,
    Alertmanager, "warroom (auto)") as their name."""
    if not actor:
        return "someone"
    return Person(actor) if USER_ID.match(actor) else actor


def as_row(text: str | Said, data: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """What `timeline.record` stores for a line: plain text, and the people's offsets in ``data``."""
    row_data = dict(data or {})
    if isinstance(text, Said):
        text, mentions = text.stored()
        if mentions:
            row_data[MENTIONS] = mentions
    return text, row_data


def of_error(exc: BaseException) -> Said:
    """An exception's message as a line: a `Said` it was raised with, or its text."""
    message = exc.args[0] if len(exc.args) == 1 else None
    return message if isinstance(message, Said) else said(str(exc))
