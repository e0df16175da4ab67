"""Who is looking at the web pages: one-time sign-in links given in Slack, and browser sessions.

A person types ``/incident web`` in Slack; the bot answers (only to them) with a link holding a
random token. The link works once and for a few minutes. Redeeming it starts a session whose
random token lives in an HttpOnly cookie. The database keeps only SHA-256 hashes of both tokens,
so a copy of the database (a backup, a read replica) signs nobody in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.clock import as_utc, utcnow
from bot.errors import UserError
from bot.store.db import affected_rows, transaction
from bot.store.models import WebSession, WebSignInLink

TOKEN_BYTES = 32


class LinkNotValid(UserError):
    """The sign-in link is unknown, used already, or expired."""


@dataclass(frozen=True)
class Person:
    """A signed-in person: their Slack user id, and the token that proves this browser is theirs."""

    user_id: str
    session_token: str

    @property
    def csrf_token(self) -> str:
        # Derived from the cookie, which another site cannot read: a form carrying it came from our page.
        return hmac.new(self.session_token.encode(), b"warroom form", hashlib.sha256).hexdigest()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(session: Session, user_id: str, *, valid_for: timedelta) -> str:
    """A new one-time sign-in token for ``user_id``; only its hash is stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    session.add(WebSignInLink(token_hash=_hash(token), user_id=user_id, created_at=now, expires_at=now + valid_for))
    session.flush()
    return token


def new_link(engine: Engine, user_id: str, *, valid_for: timedelta) -> str:
    """`issue_link` in its own transaction (`/incident web`): the token is stored when this returns."""
    with transaction(engine) as session:
        return issue_link(session, user_id, valid_for=valid_for)


def link_owner(session: Session, token: str) -> str | None:
    """Whose link this is while it can still be used; reading it changes nothing."""
    link = session.execute(select(WebSignInLink).where(col(WebSignInLink.token_hash) == _hash(token))
                           ).scalar_one_or_none()
    if link is None or link.used_at is not None or as_utc(link.expires_at) <= utcnow():
        return None
    return link.user_id


def redeem_link(session: Session, token: str, *, session_for: timedelta) -> Person:
    """Use the link (once: the conditional UPDATE lets one of two racing clicks win) and start a session."""
    user_id = link_owner(session, token)
    if user_id is None:
        raise LinkNotValid("This sign-in link was used already or has expired.")
    now = utcnow()
    used = session.execute(update(WebSignInLink)
                           .where(col(WebSignInLink.token_hash) == _hash(token), col(WebSignInLink.used_at).is_(None))
                           .values(used_at=now))
    if affected_rows(used) != 1:
        raise LinkNotValid("This sign-in link was used already.")
    # Sessions and links that can no longer be used are of no use to anyone: drop them on the way.
    session.execute(delete(WebSession).where(col(WebSession.expires_at) < now))
    session.execute(delete(WebSignInLink).where(col(WebSignInLink.expires_at) < now - timedelta(days=1)))
    session_token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(WebSession(token_hash=_hash(session_token), user_id=user_id, created_at=now,
                           expires_at=now + session_for))
    session.flush()
    return Person(user_id=user_id, session_token=session_token)


def person_for(session: Session, session_token: str) -> Person | None:
    """The person a session cookie belongs to, or None when it is unknown or expired."""
    row = session.execute(select(WebSession).where(col(WebSession.token_hash) == _hash(session_token))
                          ).scalar_one_or_none()
    if row is None or as_utc(row.expires_at) <= utcnow():
        return None
    return Person(user_id=row.user_id, session_token=session_token)


def end_session(session: Session, session_token: str) -> None:
    session.execute(delete(WebSession).where(col(WebSession.token_hash) == _hash(session_token)))


# ---- what the web pages call: each one transaction of its own ----

def owner_of_link(engine: Engine, token: str) -> str | None:
    with transaction(engine) as session:
        return link_owner(session, token)


def redeem(engine: Engine, token: str, *, session_for: timedelta) -> Person:
    """Raises `LinkNotValid` for a link used already, expired or unknown."""
    with transaction(engine) as session:
        return redeem_link(session, token, session_for=session_for)


def signed_in(engine: Engine, session_token: str) -> Person | None:
    with transaction(engine) as session:
        return person_for(session, session_token)


def sign_out(engine: Engine, session_token: str) -> None:
    with transaction(engine) as session:
        end_session(session, session_token)
