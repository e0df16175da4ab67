"""Engine, sessions and migrations for SQLite and PostgreSQL.

SQLite: every transaction starts with ``BEGIN IMMEDIATE`` so two writers queue on the database
lock instead of failing halfway through a read-then-write (pysqlite's deferred BEGIN would). WAL
keeps readers from blocking the writer. Inside one process the writers also queue on a
first-come-first-served lock (`WriterQueue`) before that BEGIN: SQLite's own busy handler polls
with growing sleeps and wakes waiters in no order, which under load gave seconds of p99 latency.
Across processes the busy handler still arbitrates. PostgreSQL: row locks (``FOR UPDATE``) do
the same job.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, event, text
from sqlalchemy.engine import Connection, CursorResult, Engine, Result
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, create_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_LOCK_SECONDS = 30  # how long a writer waits for the database, in the queue as in busy_timeout


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_LOCK_SECONDS,
                                                  "factory": QueuedSQLiteConnection})
        _serialise_sqlite_writers(engine)
        return engine
    if url.startswith(("postgresql://", "postgres://")):
        # psycopg 3 is the driver we ship; plain URLs would pick psycopg2.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    # Sessions in UTC, whatever the server's own zone: timestamps come back with ``timezone.utc``
    # (not a ZoneInfo that every comparison and ``as_utc`` must convert from), and SQL's date
    # arithmetic never depends on where the server runs.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args={"options": "-c TimeZone=UTC"})


class WriterQueue:
    """A lock handed to waiters strictly in arrival order.

    ``threading.Lock`` lets a releasing thread take the lock straight back (barging), so a waiter
    can starve; here ``release`` passes ownership to the oldest waiter, which is then woken.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    @property
    def waiting(self) -> int:
        with self._mutex:
            return len(self._waiters)

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as we gave up: it is ours
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # ownership moves to it; _held stays True
            else:
                self._held = False


class QueuedSQLiteConnection(sqlite3.Connection):
    """A pysqlite connection that gives the engine's `WriterQueue` back when its transaction ends.

    The release has to follow the real COMMIT/ROLLBACK (SQLAlchemy's commit/rollback events fire
    before it), hence a connection class rather than an event.
    """

    writer_queue: WriterQueue | None = None
    holds_writer_lock = False

    def take_writer_lock(self) -> None:
        if self.writer_queue is None or self.holds_writer_lock:
            return
        if not self.writer_queue.acquire(SQLITE_LOCK_SECONDS):
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
        self.holds_writer_lock = True

    def give_back_writer_lock(self) -> None:
        if self.holds_writer_lock and self.writer_queue is not None:
            self.holds_writer_lock = False
            self.writer_queue.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_back_writer_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_back_writer_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_back_writer_lock()


def _serialise_sqlite_writers(engine: Engine) -> None:
    queue = WriterQueue()  # one per engine: it stands for this process's share of one database file

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        if isinstance(dbapi_conn, QueuedSQLiteConnection):
            dbapi_conn.writer_queue = queue
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_LOCK_SECONDS * 1000}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        dbapi_conn = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, QueuedSQLiteConnection):
            dbapi_conn.take_writer_lock()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if isinstance(dbapi_conn, QueuedSQLiteConnection):
                dbapi_conn.give_back_writer_lock()
            raise


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def is_database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached, or is locked: a 503, since a retry may well succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    return isinstance(exc, OperationalError) or bool(exc.connection_invalidated)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every migration (``warroom db upgrade``; ``warroom serve`` calls it on start)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        if not is_postgres(engine):
            conn.exec_driver_sql("COMMIT") if conn.in_transaction() else None
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        conn.rollback()


def insert_or_ignore(session: Session, model: type, values: dict, conflict: list[str]) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the id when this call inserted the row.

    The unique constraint decides, not a prior SELECT, so two processes racing on the same key
    end with one row whichever commits first.
    """
    stmt = upsert_ignoring(model.__table__, session.get_bind().dialect.name, tuple(conflict))  # type: ignore[attr-defined]
    return session.connection().execute(stmt, values).scalar_one_or_none()


def affected_rows(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` is typed as returning a ``Result``;
    for such a statement it is a ``CursorResult``, which carries the count."""
    return cast("CursorResult[Any]", result).rowcount


@lru_cache(maxsize=256)
def upsert_ignoring(table: Table, dialect: str, conflict: tuple[str, ...], returning: tuple[str, ...] = ()) -> Insert:
    """``INSERT INTO table … ON CONFLICT (conflict) DO NOTHING RETURNING pk[, returning]``, built once.

    Values come as execution parameters, so the statement object (and its compiled SQL) is reused
    instead of being rebuilt and re-validated on every call; a list of parameter dicts becomes one
    multi-row INSERT (SQLAlchemy's "insertmanyvalues").
    """
    from sqlalchemy.dialects import postgresql, sqlite

    pk = next(iter(table.primary_key.columns))
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = insert.on_conflict_do_nothing(index_elements=list(conflict))
    return stmt.returning(pk, *(table.c[name] for name in returning))
