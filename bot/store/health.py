"""Is the database there: the health check, and which errors mean it is not.

The HTTP edge answers an outage with 503 and ``Retry-After`` (senders retry; nothing is lost)
and any other failure with 500. This module is what the edge asks, so that the edge itself
imports no database layer.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from bot.store.db import is_database_unavailable, ping

# Every error the database driver raises comes as one of these; an outage is one kind of it.
DatabaseError = DBAPIError


def check_database(engine: Engine) -> None:
    """Raises when the database cannot answer a trivial query."""
    ping(engine)


def is_outage(exc: BaseException) -> bool:
    """The database cannot be reached, or is locked: a retry may well succeed."""
    return is_database_unavailable(exc)
